"""RLHF before/after evaluation: held-out prompts without references scored by a reward model (the runner on the
tiny model), the reward-model checks, the dashboard services on factory rows, and sending a run's prompts to a
new labeling campaign."""

import json

import pytest
from sqlalchemy import func, select

from backend.db.engine import session_scope
from backend.db.tables import Campaign, CampaignItem, EvalResult, EvalRun, Job, ModelRecord, Prompt
from backend.errors import StudioError
from jobs import queue
from jobs.registry import parse_spec
from jobs.run import main as run_job
from jobs.specs import EvalSpec
from services import evaluation


@pytest.fixture(autouse=True)
def one_thread():
    # Two threads on a busy 2-core machine spin against each other; one is faster for the tiny model.
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_reward_model(tiny_model, folder, name: str = "tiny-rm", chat: bool = True) -> str:
    """A random one-output sequence classifier on the tiny model's tokenizer, registered as a reward job would."""
    import torch
    from transformers import AutoConfig, AutoTokenizer, LlamaForSequenceClassification

    from backend.models.store import register_model

    config = AutoConfig.from_pretrained(tiny_model.path)
    config.num_labels = 1
    torch.manual_seed(1)
    LlamaForSequenceClassification(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model.path).save_pretrained(folder)
    (folder / "reward_format.json").write_text(json.dumps({"chat_format": chat}), encoding="utf-8")
    with session_scope(write=True) as s:
        register_model(s, name, str(folder), kind="reward", source="job")
    return name


def rlhf_spec(**values) -> EvalSpec:
    return EvalSpec.model_validate({"model": "tiny", "dataset": "demo:provocative", "split": "test",
                                    "template": "{prompt}", "target_field": "", "max_examples": 3, "batch_size": 3,
                                    "decoding": {"max_new_tokens": 4}, **values})


def job_count() -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(Job))


# --- the spec and the runner --------------------------------------------------------------------------------------

def test_blank_target_field_means_no_references():
    assert rlhf_spec().target_field is None and rlhf_spec().reward_model is None
    assert rlhf_spec(target_field="None", reward_model=" ").reward_model is None
    with pytest.raises(StudioError, match="extra_metrics compare the outputs with references"):
        parse_spec({"kind": "eval", "target_field": "", "extra_metrics": ["exact_match"]})


def test_eval_without_references_scores_toxicity_length_and_reward(tiny_model, tmp_path):
    from backend.data.rlhf_prompts import provocative_splits
    from jobs.rl.rewards import RewardModelReward

    rm = make_reward_model(tiny_model, tmp_path / "rm")
    with session_scope(write=True) as s:
        job_id = evaluation.submit_comparison(s, rlhf_spec(reward_model=rm, perplexity=True), ["tiny"])[0]
    assert run_job(job_id) == 0
    with session_scope() as s:
        job = s.get(Job, job_id)
        assert job.status == "succeeded", job.error
        run = s.scalar(select(EvalRun).where(EvalRun.job_id == job_id))
        results = s.scalars(select(EvalResult).where(EvalResult.eval_run_id == run.id).order_by(EvalResult.idx)).all()
        metrics = {m["key"] for m in queue.job_metrics(s, job_id)}
    # no references: ROUGE, BLEU and perplexity are skipped (absent, not zero)
    assert set(run.metrics) == {"toxicity", "toxicity_std", "length_words", "reward", "reward_std", "repetition",
                                "refusal", "apology"}  # + the reward-hacking signs (backend.metrics.hacking)
    assert {"eval/toxicity", "eval/toxicity_std", "eval/length_words", "eval/reward", "eval/reward_std"} <= metrics
    assert not {"eval/rouge1", "eval/bleu", "eval/perplexity"} & metrics
    held_out = [r["prompt"] for r in provocative_splits()["test"][:3]]
    assert [r.input for r in results] == held_out  # the bare template passes the prompt through unchanged
    assert all(r.reference is None for r in results)
    assert all(set(r.scores) == {"toxicity", "length_words", "reward", "repetition", "refusal", "apology"}
               for r in results)
    # the reward is the reward model's score of prompt + completion in its training format (jobs.rl.rewards)
    expected = RewardModelReward(str(tmp_path / "rm"), "cpu")([r.input for r in results],
                                                              [r.prediction for r in results])
    assert [r.scores["reward"] for r in results] == pytest.approx(expected, abs=1e-4)
    assert run.metrics["reward"] == pytest.approx(sum(expected) / 3, abs=1e-4)
    assert len(set(expected)) > 1 and run.metrics["reward_std"] > 0


def test_several_samples_per_example_are_scored_one_by_one(tiny_model):
    with pytest.raises(ValueError, match="samples_per_example is 3, but greedy"):
        rlhf_spec(samples_per_example=3)
    spec = rlhf_spec(max_examples=2, samples_per_example=3,
                     decoding={"do_sample": True, "temperature": 1.0, "top_k": 0, "max_new_tokens": 8, "seed": 5})
    with session_scope(write=True) as s:
        job_id = evaluation.submit_comparison(s, spec, ["tiny"])[0]
    assert run_job(job_id) == 0
    with session_scope() as s:
        run = s.scalar(select(EvalRun).where(EvalRun.job_id == job_id))
        results = s.scalars(select(EvalResult).where(EvalResult.eval_run_id == run.id).order_by(EvalResult.idx)).all()
    assert run.n_examples == 6 and [r.idx for r in results] == list(range(6))
    inputs = [r.input for r in results]
    assert inputs[:3] == [inputs[0]] * 3 and inputs[3:] == [inputs[3]] * 3 and inputs[0] != inputs[3]
    assert len({r.prediction for r in results[:3]}) > 1  # three draws of one prompt, not one answer copied
    tox = [r.scores["toxicity"] for r in results]
    assert run.metrics["toxicity"] == pytest.approx(sum(tox) / 6)


def test_reward_model_must_be_a_reward_model(tiny_model):
    before = job_count()
    for ref, message in (("tiny", "'tiny' is not a reward model"), ("nope", "reward_model: Unknown model 'nope'")):
        with session_scope(write=True) as s, pytest.raises(StudioError, match=message):
            evaluation.submit_comparison(s, rlhf_spec(reward_model=ref), ["tiny"])
        with session_scope(write=True) as s, pytest.raises(StudioError, match=message):  # the CLI's path
            queue.submit(s, rlhf_spec(reward_model=ref))
    assert job_count() == before


def test_missing_reference_column_names_the_fix(tiny_model):
    with session_scope(write=True) as s:
        job_id = evaluation.submit_comparison(s, rlhf_spec(target_field="summary"), ["tiny"])[0]
    assert run_job(job_id) == 1
    with session_scope() as s:
        error = s.get(Job, job_id).error
    assert "summary" in error and "test.jsonl" in error and "leave it empty when the data has no references" in error


# --- dashboard services on factory rows ---------------------------------------------------------------------------

def add_run(s, name: str, toxicity: list[float], lengths: list[int], reward: list[float] | None = None,
            method: str | None = None, rouge1: float | None = None, chat: bool = True, path: str | None = None,
            refusal: list[float] | None = None) -> int:
    """An eval job and its run as the runner writes them (the model is registered unless it already is)."""
    record = s.scalar(select(ModelRecord).where(ModelRecord.name == name)) or ModelRecord(
        name=name, kind="full" if method else "base", source="job" if method else "local",
        path=path or f"/models/{name}", meta={"method": method} if method else {})
    job = Job(kind="eval", name=f"eval {name}", status="succeeded",
              spec={"kind": "eval", "model": name, "chat_format": chat})
    s.add_all([record, job])
    s.flush()
    metrics = {"toxicity": sum(toxicity) / len(toxicity)} | ({"rouge1": rouge1} if rouge1 is not None else {})
    run = EvalRun(job_id=job.id, model_id=record.id, model_name=name, dataset="demo:provocative", split="test",
                  n_examples=len(toxicity), metrics=metrics, decoding={"max_new_tokens": 24})
    s.add(run)
    s.flush()
    for i, tox in enumerate(toxicity):
        scores = {"toxicity": tox, "length_words": lengths[i]} | ({"reward": reward[i]} if reward else {})
        # a refusal here opens with an apology ("I'm sorry, I can't…"): both signs
        scores |= {"refusal": refusal[i], "apology": refusal[i], "repetition": 0.0} if refusal else {}
        s.add(EvalResult(eval_run_id=run.id, idx=i, input=f"Roast my neighbour {i}.", reference=None,
                         prediction=f"{name} says {i}", scores=scores))
    s.flush()
    return run.id


@pytest.fixture
def rlhf_runs(studio_env):
    with session_scope(write=True) as s:
        return {"base": add_run(s, "base", [0.8, 0.4], [10, 20], reward=[-1.0, 0.0]),
                "ppo": add_run(s, "ppo-job7", [0.2, 0.0], [8, 12], reward=[1.0, 2.0], method="ppo"),
                "dpo": add_run(s, "dpo-job9", [0.1, 0.3], [5, 5], method="dpo")}


def test_before_after_means_stds_and_deltas(rlhf_runs):
    with session_scope() as s:
        rows = {r["model"]: r for r in evaluation.before_after(s, [rlhf_runs["ppo"], rlhf_runs["base"],
                                                                   rlhf_runs["dpo"]])}
    base, ppo, dpo = rows["base"], rows["ppo-job7"], rows["dpo-job9"]
    assert base["baseline"] and not ppo["baseline"]  # the base model, though it was not picked first
    assert (ppo["method_label"], dpo["method_label"]) == ("PPO", "DPO")
    assert (base["toxicity_mean"], base["toxicity_std"]) == pytest.approx((0.6, 0.2))
    assert (ppo["reward_mean"], ppo["reward_std"]) == pytest.approx((1.5, 0.5))
    assert ppo["delta_toxicity_mean"] == pytest.approx(-0.5) and ppo["delta_reward_mean"] == pytest.approx(2.0)
    assert dpo["length_words_mean"] == 5 and dpo["length_words_std"] == 0 and dpo["delta_length_words_mean"] == -10
    assert dpo["reward_mean"] is None and dpo["delta_reward_mean"] is None  # not scored: None, not 0
    assert base["rouge1"] is None and base["n"] == 2
    with session_scope() as s:
        rows = evaluation.before_after(s, [rlhf_runs["ppo"], rlhf_runs["base"]], baseline_run_id=rlhf_runs["ppo"])
    assert rows[1]["delta_toxicity_mean"] == pytest.approx(0.5)


def test_score_distributions_per_example(rlhf_runs):
    with session_scope() as s:
        rows = evaluation.score_distributions(s, [rlhf_runs["base"], rlhf_runs["dpo"]])
        toxicity = evaluation.toxicity_distribution(s, [rlhf_runs["dpo"]])
    assert [(r["label"], r["idx"], r["toxicity"], r["reward"], r["length_words"]) for r in rows] == [
        ("base (#1)", 0, 0.8, -1.0, 10), ("base (#1)", 1, 0.4, 0.0, 20),
        ("dpo-job9 (#3)", 0, 0.1, None, 5), ("dpo-job9 (#3)", 1, 0.3, None, 5)]
    assert toxicity == [{"run": 3, "model": "dpo-job9", "idx": 0, "toxicity": 0.1},
                        {"run": 3, "model": "dpo-job9", "idx": 1, "toxicity": 0.3}]


def test_rlhf_models_pairs_newest_ppo_and_dpo_with_their_start(studio_env):
    from backend.models.store import register_model

    with session_scope(write=True) as s:
        assert evaluation.rlhf_models(s) == []
        register_model(s, "sft-1", "/m/sft", kind="full", meta={"method": "full"})
        register_model(s, "ppo-old", "/m/p0", kind="adapter", meta={"method": "ppo", "start_model": "sft-1"})
        register_model(s, "ppo-new", "/m/p1", kind="adapter", meta={"method": "ppo", "start_model": "sft-1"})
        register_model(s, "dpo-1", "/m/d1", kind="adapter", meta={"method": "dpo", "start_model": "base"})
        assert evaluation.rlhf_models(s) == ["sft-1", "base", "ppo-new", "dpo-1"]


# --- close the loop: an evaluated model's prompts → a new labeling campaign ---------------------------------------

@pytest.fixture
def admin_id(tiny_model):
    from labeling import accounts

    with session_scope(write=True) as s:
        return accounts.sign_up(s, "admin", "correct horse").id


def test_send_run_to_labeling_creates_campaign_items_and_job(tiny_model, admin_id):
    from services.campaigns_from_runs import campaign_from_eval_run

    with session_scope(write=True) as s:  # the base is the registered tiny model; the "PPO model" a copy of it
        base = add_run(s, "tiny", [0.5, 0.5, 0.1], [3, 4, 5], chat=False)
        ppo = add_run(s, "ppo-job7", [0.1, 0.2, 0.0], [3, 3, 3], method="ppo", path=tiny_model.path)
    with session_scope(write=True) as s:
        created = campaign_from_eval_run(s, admin_id, ppo, "ppo round 2", k=3, versus_run_id=base)
    assert created["items"] == 3 and created["k"] == 3
    with session_scope() as s:
        campaign = s.scalar(select(Campaign).where(Campaign.name == "ppo round 2"))
        prompts = s.scalars(select(Prompt.text).join(CampaignItem, CampaignItem.prompt_id == Prompt.id)
                            .where(CampaignItem.campaign_id == campaign.id).order_by(CampaignItem.id)).all()
        job = s.get(Job, created["job_id"])
    assert prompts == [f"Roast my neighbour {i}." for i in range(3)]
    assert [(src["model"], src["label"], src["chat"]) for src in campaign.sources] == [
        ("ppo-job7", "ppo-job7 (eval #2)", True), ("tiny", "tiny (eval #1)", False)]
    assert all(src["decoding"]["do_sample"] and src["decoding"]["max_new_tokens"] == 24 for src in campaign.sources)
    assert (job.kind, job.status, job.spec["campaign_id"]) == ("label_completions", "queued", campaign.id)


def test_send_to_labeling_errors_leave_nothing(tiny_model, admin_id):
    from services.campaigns_from_runs import campaign_from_eval_run

    with session_scope(write=True) as s:
        run = add_run(s, "ppo-job7", [0.1, 0.2], [3, 3], method="ppo", path=tiny_model.path)
        empty = EvalRun(model_name="tiny", dataset="demo:provocative", split="test", n_examples=0, metrics={})
        s.add(empty)
        s.flush()
        empty_id = empty.id
    with session_scope(write=True) as s:
        campaign_from_eval_run(s, admin_id, run, "round 2")
    jobs_before = job_count()
    cases = [({"run_id": run, "name": "round 2"}, "already exists"),
             ({"run_id": empty_id, "name": "x"}, "has no prompts"),
             ({"run_id": 99, "name": "x"}, "no evaluation run 99"),
             ({"run_id": run, "name": "y", "versus_run_id": run}, "same model"),
             ({"run_id": run, "name": "z", "k": 12}, "between 2 and 9")]
    for kwargs, message in cases:
        with pytest.raises(StudioError, match=message), session_scope(write=True) as s:
            campaign_from_eval_run(s, admin_id, **kwargs)
    with session_scope() as s:
        assert s.scalars(select(Campaign.name)).all() == ["round 2"]
    assert job_count() == jobs_before


def test_scores_by_prompt_groups_each_runs_completions(studio_env):
    from services.eval_scores import scores_by_prompt

    with session_scope(write=True) as s:
        a = add_run(s, "tiny", [0.8, 0.4], [10, 20])
        b = add_run(s, "ppo-job7", [0.2, 0.0], [8, 12], method="ppo")
        got = scores_by_prompt(s, [a, b], "toxicity")
    assert got == {a: {"Roast my neighbour 0.": [0.8], "Roast my neighbour 1.": [0.4]},
                   b: {"Roast my neighbour 0.": [0.2], "Roast my neighbour 1.": [0.0]}}
