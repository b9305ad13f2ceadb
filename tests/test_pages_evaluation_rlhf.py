"""The Evaluation page's RLHF parts (AppTest): the Before/after view on runs inserted as the runner writes them,
the form's before/after preset with the reward-model picker, and sending a run to a new labeling campaign."""

import pytest
from page_support import button, open_as, page, signed_in, texts, the_admin
from sqlalchemy import select
from test_eval_before_after import add_run

from backend.db.engine import session_scope
from backend.db.tables import Campaign, Job
from backend.models.store import register_model


def rlhf_runs(tiny_path: str, reward: bool = True) -> dict[str, int]:
    """The base model (tiny) and a PPO model evaluated on the same two held-out prompts, without references."""
    with session_scope(write=True) as s:
        return {"base": add_run(s, "tiny", [0.8, 0.4], [10, 20], reward=[-1.0, 0.0] if reward else None),
                "ppo": add_run(s, "ppo-job7", [0.2, 0.0], [8, 12], reward=[1.0, 2.0] if reward else None,
                               method="ppo", path=tiny_path)}


def before_after(at):
    at.radio(key="ev-view").set_value("Before/after")
    return at.run()


def test_before_after_table_deltas_and_histograms(studio):
    rlhf_runs(studio.path)
    at = page("page_evaluation.py")
    assert not at.exception
    assert "no reference-based scores" in texts(at.info)  # Compare runs has nothing to draw without references
    at = before_after(at)
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["model"]) == ["tiny (#1) · base (zero-shot)", "ppo-job7 (#2) · PPO"]
    # means with their 95 % intervals (bootstrap over the two prompts), n beside them
    assert list(table["toxicity"]) == ["0.600 [0.400, 0.800]", "0.100 [0.000, 0.200]"]
    assert list(table["reward-model score"]) == ["-0.500 [-1.000, 0.000]", "1.500 [1.000, 2.000]"]
    assert list(table["prompts"]) == [2, 2] and list(table["n"]) == [2, 2]
    assert table["Δ toxicity"].iloc[1] == pytest.approx(-0.5) and table["Δ reward-model score"].iloc[1] == 2.0
    # the paired delta's interval with its mark and p-value beside the delta; the baseline row says so
    # two prompts: the bootstrap interval excludes 0, but a sign-flip test of 2 prompts cannot reach p < 0.05
    assert table["Δ toxicity 95 % CI"].iloc[1].startswith("[-0.600, -0.400] noise · p = ")
    assert table["Δ toxicity 95 % CI"].iloc[0] == "baseline"
    assert "2,000 resamples, seed 0" in texts(at.caption)
    assert "ROUGE-1" not in table.columns
    charts = at.get("plotly_chart")
    assert len(charts) == 3  # toxicity, reward and length, each overlaid per model
    assert all("ppo-job7 (#2)" in c.proto.spec and "tiny (#1)" in c.proto.spec for c in charts)
    assert "No ROUGE: the data has no references" in texts(at.caption)


def test_before_after_shows_the_reward_hacking_signs(studio):
    with session_scope(write=True) as s:
        add_run(s, "tiny", [0.8, 0.4, 0.6], [10, 20, 15], refusal=[0.0, 0.0, 0.0])
        add_run(s, "ppo-job7", [0.0, 0.0, 0.0], [4, 4, 4], refusal=[1.0, 1.0, 1.0], method="ppo", path=studio.path)
    at = before_after(page("page_evaluation.py"))
    assert not at.exception
    table = at.dataframe[0].value
    # the policy "detoxified" by refusing everything: the refusal rate says so beside the toxicity drop
    assert list(table["refusal rate"]) == ["0.000 [0.000, 0.000]", "1.000 [1.000, 1.000]"]
    assert table["Δ refusal rate"].iloc[1] == pytest.approx(1.0) and "repetition" in table.columns
    assert list(table["apology rate"]) == ["0.000 [0.000, 0.000]", "1.000 [1.000, 1.000]"]
    assert "refusal and apology rates whether it repeated itself, declined or apologised" in texts(at.caption)
    assert len(at.get("plotly_chart")) == 2  # histograms of toxicity and length only, not of the hacking signs


def test_before_after_without_a_reward_model_says_so(studio):
    rlhf_runs(studio.path, reward=False)
    at = before_after(page("page_evaluation.py"))
    assert not at.exception
    assert "reward-model score" not in at.dataframe[0].value.columns
    assert len(at.get("plotly_chart")) == 2  # toxicity and length
    assert "No reward-model score" in texts(at.caption)


def test_preset_fills_held_out_prompts_and_queues_each_model(studio, tmp_path):
    with session_scope(write=True) as s:
        register_model(s, "rm-job3", str(tmp_path / "rm"), kind="reward", source="job")
        register_model(s, "ppo-job5", studio.path, kind="full", source="job",
                       meta={"method": "ppo", "start_model": "tiny"})
    at = open_as("page_evaluation.py", the_admin())  # queueing needs an admin
    button(at, "RLHF before/after: held-out provocative prompts").click()
    at.run()
    assert not at.exception
    assert at.text_input(key="ev-dataset").value == "demo:provocative"
    assert (at.selectbox(key="ev-split").value, at.text_input(key="ev-target").value) == ("test", "")
    assert at.selectbox(key="ev-template").value == "{prompt}" and at.number_input(key="ev-n").value == 21
    assert at.selectbox(key="ev-reward").value == "rm-job3"
    assert at.multiselect(key="ev-models").value == ["tiny", "ppo-job5"]
    button(at, "Run evaluation").click()
    at.run()
    assert not at.exception and "Queued evaluation job(s)" in texts(at.success)
    with session_scope() as s:
        jobs = s.scalars(select(Job).order_by(Job.id)).all()
    assert [j.spec["model"] for j in jobs] == ["tiny", "ppo-job5"]
    for job in jobs:
        spec = job.spec
        assert (spec["dataset"], spec["split"], spec["template"], spec["target_field"]) == (
            "demo:provocative", "test", "{prompt}", None)
        assert (spec["max_examples"], spec["reward_model"], spec["toxicity_model"]) == (21, "rm-job3", None)
        assert spec["samples_per_example"] == 16 and spec["decoding"]["do_sample"] is True  # PPO's rollout sampling
        assert (spec["decoding"]["temperature"], spec["decoding"]["top_k"], spec["decoding"]["seed"]) == (1.0, 0, 1)


def test_send_run_to_a_new_labeling_campaign(studio, monkeypatch):
    from app.components import submit_once

    runs = rlhf_runs(studio.path)
    at = page("page_evaluation.py")
    assert "Sign in as an admin" in texts(at.caption)
    at = open_as("page_evaluation.py", signed_in("admin"))
    assert at.selectbox(key="ev-lc-run").value == runs["ppo"]
    assert at.text_input(key=f"ev-lc-name-{runs['ppo']}").value == "ppo-job7 round 2"
    at.selectbox(key="ev-lc-versus").set_value(runs["base"])
    at.number_input(key="ev-lc-k").set_value(4)
    button(at, "Create campaign and generate completions").click()
    at.run()
    assert not at.exception
    assert "Campaign 'ppo-job7 round 2' created with 2 prompts" in texts(at.success)
    with session_scope() as s:
        campaign = s.scalar(select(Campaign))
        job = s.scalar(select(Job).where(Job.kind == "label_completions"))
    assert (campaign.k, campaign.criterion) == (4, "harmlessness")
    assert [src["model"] for src in campaign.sources] == ["ppo-job7", "tiny"]
    assert job.spec["campaign_id"] == campaign.id and job.status == "queued"
    button(at, "Create campaign and generate completions").click()  # a double click: what the first made
    at.run()
    assert not at.error and "Campaign 'ppo-job7 round 2' created" in texts(at.success)
    monkeypatch.setattr(submit_once, "REPEAT_AFTER_SECONDS", 0.0)  # as if the user clicked again a while later
    button(at, "Create campaign and generate completions").click()  # the same name again: a message, nothing new
    at.run()
    assert "already exists" in texts(at.error) and not at.success
    with session_scope() as s:
        assert len(s.scalars(select(Campaign)).all()) == 1
        assert len(s.scalars(select(Job).where(Job.kind == "label_completions")).all()) == 1
