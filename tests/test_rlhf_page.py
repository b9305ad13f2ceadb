"""The RLHF run page and its service: the reward-hacking flag by hand, and the page under AppTest on a PPO job whose
metrics rows and samples are written directly, as the runner would."""

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from backend.db.engine import session_scope
from jobs import artifacts, queue
from jobs.registry import parse_spec
from services.rlhf import KL_ALARM_NATS, reward_hacking, run_view

PAGE = Path(__file__).resolve().parent.parent / "app" / "page_rlhf.py"


def rows(scores, kls):
    return [{"step": i + 1, "objective/scores": s, "objective/kl": k} for i, (s, k) in enumerate(zip(scores, kls))]


def test_reward_hacking_flag():
    rising = [0.1, 0.2, 0.3, 0.5, 0.7, 0.9]
    assert reward_hacking(rows(rising, [0.5, 1, 2, 3, 3.5, 3.9]), kl_target=4.0) is None  # KL held near target
    flag = reward_hacking(rows(rising, [0.5, 2, 5, 9, 12, 15]), kl_target=4.0)
    assert flag is not None and flag["limit"] == 8.0 and flag["kl"] == pytest.approx(13.5)
    assert "reward hacking" in flag["message"]
    assert reward_hacking(rows([0.9, 0.8, 0.7, 0.6, 0.5, 0.4], [1, 5, 9, 12, 14, 20]), 4.0) is None  # reward fell
    fixed = rows(rising, [1, 2, 4, 6, KL_ALARM_NATS + 1, KL_ALARM_NATS + 3])
    assert reward_hacking(fixed, None) is not None and reward_hacking(fixed[:4], None) is None
    assert reward_hacking(rows([0.1, 0.9], [0, 50]), 1.0) is None  # too few steps to tell


def fake_run(hacked: bool) -> int:
    """A PPO job with five logged steps, two evaluations and samples, as the runner leaves them."""
    spec = parse_spec({"kind": "ppo", "name": "detox", "policy_model": "tiny"})
    with session_scope(write=True) as s:
        from backend.db.tables import Job

        job = Job(kind="ppo", name="detox", spec=spec.model_dump(mode="json"), status="running")
        s.add(job)
        s.flush()
        job_id = job.id
        for step in range(1, 6):
            kl = (3.0 * step) if hacked else 0.5 * step
            queue.log_metrics(s, job_id, step, {"objective/scores": 0.5 + 0.1 * step, "objective/kl": kl,
                                                "objective/rlhf_reward": 0.5, "policy/entropy": 2.0,
                                                "policy/clipfrac": 0.1, "val/clipfrac": 0.05, "val/loss": 0.3,
                                                "kl_coef": 0.05})
        # as the trainer logs them: means, population sd and the count of 16 held-out prompts × 1 sample
        queue.log_metrics(s, job_id, 0, {"eval/reward": 0.80, "eval/reward_std": 0.2, "eval/toxicity": 0.20,
                                         "eval/toxicity_std": 0.1, "eval/kl": 0.0, "eval/completions": 16})
        queue.log_metrics(s, job_id, 5, {"eval/reward": 0.90, "eval/reward_std": 0.2, "eval/toxicity": 0.10,
                                         "eval/toxicity_std": 0.1, "eval/kl": 2.0, "eval/completions": 16})
    folder = artifacts.job_dir(job_id)
    folder.mkdir(parents=True, exist_ok=True)
    samples = [{"step": st, "prompt": f"Roast my friend {st}", "completion": f"You are lovely {st}", "reward": 0.9}
               for st in (1, 2, 5)]
    (folder / "samples.jsonl").write_text("".join(json.dumps(x) + "\n" for x in samples), encoding="utf-8")
    return job_id


def test_run_view_collects_curves_evaluations_and_samples(studio_env):
    job_id = fake_run(hacked=False)
    with session_scope() as s:
        view = run_view(s, job_id)
    assert [r["step"] for r in view["steps"]] == [1, 2, 3, 4, 5]
    assert [e["step"] for e in view["evals"]] == [0, 5] and view["evals"][1]["eval/toxicity"] == 0.10
    assert len(view["samples"]) == 3 and view["kl_target"] == 4.0 and view["flag"] is None
    # the held-out numbers with the intervals the logged mean, sd and count allow, and the change since step 0
    held = {(r["step"], r["metric"]): r for r in view["held_out"]}
    assert set(held) == {(0, "reward"), (0, "toxicity"), (0, "kl"), (5, "reward"), (5, "toxicity"), (5, "kl")}
    tox = held[5, "toxicity"]
    half = 1.959964 * 0.1 * (16 / 15) ** 0.5 / 4  # z · sample sd / √16 prompts
    assert (tox["interval"]["low"], tox["interval"]["high"]) == pytest.approx((0.1 - half, 0.1 + half))
    assert (tox["interval"]["n"], tox["interval"]["n_obs"]) == (16, 16)
    assert tox["delta"] == pytest.approx(-0.1) and tox["vs_first"]["high"] < 0  # −0.1 with se ≈ 0.037: real
    assert tox["vs_first"]["verdict"] == "better"
    assert held[5, "reward"]["vs_first"]["verdict"] == "noise"  # +0.1 with se ≈ 0.073
    assert held[5, "kl"]["interval"] is None and held[5, "kl"]["delta"] == 2.0  # no spread logged: no interval
    assert held[0, "toxicity"]["delta"] is None and "not the per-completion scores" in view["held_out_note"]


def test_held_out_without_spread_or_with_several_samples():
    from services.rlhf import held_out

    bare = held_out([{"step": 0, "eval/reward": 0.5}, {"step": 3, "eval/reward": 0.7}])
    assert [r["interval"] for r in bare] == [None, None] and bare[1]["delta"] == pytest.approx(0.2)
    assert bare[1]["vs_first"] is None
    sampled = held_out([{"step": 0, "eval/toxicity": 0.2, "eval/toxicity_std": 0.1, "eval/completions": 32}],
                       samples_per_prompt=4)
    assert (sampled[0]["interval"]["n"], sampled[0]["interval"]["n_obs"]) == (8, 32)  # 8 prompts × 4 samples


def test_held_out_paired_from_per_completion_scores():
    from services.rlhf import held_out_paired

    prompts = [f"p{i}" for i in range(12)]
    rows = [{"step": 0, "prompt": p, "reward": 0.5, "toxicity": 0.3, "kl": 0.0} for p in prompts for _ in range(2)]
    rows += [{"step": 10, "prompt": p, "reward": 0.5 + 0.01 * (i % 3), "toxicity": 0.1, "kl": 1.0}
             for i, p in enumerate(prompts) for _ in range(2)]
    out = {(r["step"], r["metric"]): r for r in held_out_paired(rows)}
    assert out[(0, "toxicity")]["interval"]["n"] == 12 and out[(0, "toxicity")]["interval"]["n_obs"] == 24
    tox = out[(10, "toxicity")]["vs_first"]
    assert tox["delta"] == pytest.approx(-0.2) and tox["verdict"] == "better" and tox["n"] == 12
    assert out[(10, "kl")]["delta"] == pytest.approx(1.0) and out[(0, "reward")]["vs_first"] is None


def test_page_without_runs(studio_env):
    at = AppTest.from_file(str(PAGE), default_timeout=60).run()
    assert not at.exception
    assert "No PPO run yet" in at.info[0].value


@pytest.mark.parametrize("hacked", [False, True])
def test_page_shows_a_run_and_flags_reward_hacking(studio_env, hacked):
    fake_run(hacked)
    at = AppTest.from_file(str(PAGE), default_timeout=60).run()
    assert not at.exception
    warnings = [w.value for w in at.warning]
    assert any("reward hacking" in w for w in warnings) == hacked
    assert {m.label for m in at.metric} >= {"step", "reward", "KL", "mean toxicity"}
    toxicity = next(m for m in at.metric if m.label == "mean toxicity")
    assert toxicity.value == "0.100"
    assert len(at.dataframe) == 2  # evaluations and samples
    evals = at.dataframe[0].value
    assert list(evals["step"]) == [0, 5] and evals["toxicity"].iloc[1] == "0.100 [0.049, 0.151]"
    assert "▼ better" in evals["Δ toxicity since step 0"].iloc[1]
    assert "noise" in evals["Δ reward since step 0"].iloc[1]
    assert "(no per-example scores)" in evals["kl"].iloc[1]
    assert "n = 16 prompts (16 completions)" in "\n".join(c.value for c in at.caption)
    assert "since step 0" in toxicity.delta and "better" in toxicity.delta
