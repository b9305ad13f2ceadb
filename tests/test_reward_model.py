"""The ``reward`` job: the pairwise loss and ranking-grouped batches by hand, training on a preference file and on a
labeling campaign (held-out accuracy next to the annotators' agreement), and refusals before queueing."""

import json
import math
import random

import pytest
import torch
from sqlalchemy import func, select

from backend.db.engine import session_scope
from backend.db.tables import Job, ModelRecord
from backend.errors import StudioError
from backend.models.store import local_path
from jobs import artifacts, queue
from jobs.registry import parse_spec
from jobs.run import main as run_job
from jobs.runners.reward import batches, pairwise_loss

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_pairwise_loss_by_hand():
    chosen, rejected = torch.tensor([1.0, 0.0, 2.0]), torch.tensor([0.0, 0.0, 0.5])
    ones = torch.ones(3)
    # −log σ(1) = log(1 + e^−1) = 0.31326; −log σ(0) = log 2; −log σ(1.5) = log(1 + e^−1.5) = 0.20141
    expected = [math.log1p(math.exp(-1)), math.log(2), math.log1p(math.exp(-1.5))]
    assert pairwise_loss(chosen, rejected, torch.zeros(3), ones).item() == pytest.approx(sum(expected) / 3, abs=1e-6)
    # a margin of 1 asks for a gap of at least 1 more: −log σ(1 − 1) = log 2 for the first pair
    with_margin = pairwise_loss(chosen[:1], rejected[:1], torch.ones(1), torch.ones(1)).item()
    assert with_margin == pytest.approx(math.log(2))
    weighted = pairwise_loss(chosen, rejected, torch.zeros(3), torch.tensor([1.0, 0.0, 0.0])).item()
    assert weighted == pytest.approx(expected[0])


def test_grouped_batches_keep_rankings_together_weighted_by_pair_count():
    # prompt a: K=3 → C(3,2) = 3 pairs; prompt b: K=4 → 6 pairs; prompt c: K=2 → 1 pair
    rows = [{"prompt": p} for p in ["a"] * 3 + ["b"] * 6 + ["c"]]
    got = batches(rows, batch_size=4, group_by_ranking=True, rng=random.Random(0))
    seen = sorted(i for batch in got for i, _ in batch)
    assert seen == list(range(10))
    for batch in got:
        prompts = {rows[i]["prompt"] for i, _ in batch}
        for p in prompts:  # a ranking is never split across batches
            assert sum(rows[i]["prompt"] == p for i, _ in batch) == sum(r["prompt"] == p for r in rows)
        for i, weight in batch:
            assert weight == pytest.approx({"a": 1 / 3, "b": 1 / 6, "c": 1.0}[rows[i]["prompt"]])
    plain = batches(rows, batch_size=4, group_by_ranking=False, rng=random.Random(0))
    assert [len(b) for b in plain] == [4, 4, 2] and all(w == 1.0 for b in plain for _, w in b)


def preference_rows(n_prompts: int = 16) -> list[dict]:
    """The preferred answer thanks the customer, the rejected one talks about a refund: a lexical preference."""
    rows = []
    for i in range(n_prompts):
        for j in range(2):
            rows.append({"prompt": f"Customer message {i}.{j}: my booking {i}",
                         "chosen": f"hello thanks thanks booking {i}", "rejected": f"refund refund booking {i}"})
    return rows


def reward_spec(**overrides):
    values = {"kind": "reward", "name": "rm", "base_model": "tiny",
              "train": {"max_steps": 12, "batch_size": 8, "learning_rate": 2e-3, "warmup_ratio": 0.0,
                        "max_length": 64, "logging_steps": 5}}
    values.update(overrides)
    return parse_spec(values)


def submit(spec) -> int:
    with session_scope(write=True) as s:
        return queue.submit(s, spec).id


def test_reward_job_on_a_preference_file(tiny_model, tmp_path):
    data = write_jsonl(tmp_path / "prefs.jsonl", preference_rows())
    job_id = submit(reward_spec(data={"dataset": str(data), "test_size": 0.25}))
    assert run_job(job_id) == 0
    with session_scope() as s:
        job = s.get(Job, job_id)
        assert job.status == "succeeded", job.error
        record = s.get(ModelRecord, job.output_model_id)
        assert record.kind == "reward" and record.job_id == job_id and record.meta["start_model"] == "tiny"
        keys = {m["key"] for m in queue.job_metrics(s, job_id)}
    assert {"loss", "accuracy", "margin", "eval_accuracy", "eval_loss", "data/train_pairs"} <= keys
    report = json.loads((artifacts.job_dir(job_id) / "reward_report.json").read_text(encoding="utf-8"))
    assert report["held_out"] and report["test_pairs"] == 8 and report["train_pairs"] == 24
    assert report["eval_accuracy"] >= 0.75, report  # the lexical preference is learned and generalises
    assert len(report["chosen"]) == len(report["rejected"]) == 8
    assert sum(report["chosen"]) / 8 > sum(report["rejected"]) / 8
    # the saved model is a one-output classifier PPO can use as a reward source
    from jobs.rl.rewards import RewardModelReward

    scorer = RewardModelReward(local_path(record.path, record.source), "cpu")
    good, bad = scorer(["Customer message 99.0: my booking 99"] * 2, ["hello thanks thanks booking 99",
                                                                          "refund refund booking 99"])
    assert good > bad


def test_reward_job_on_a_campaign_reports_human_agreement(tiny_model):
    from labeling.synthetic import seed_campaign

    with session_scope(write=True) as s:  # model-a's completions are better; two annotators rank every item
        seed_campaign(s, "rm-demo", n_items=16, k=3, annotators=["ann", "bob"], noise=0.3, seed=1)
    job_id = submit(reward_spec(data={"campaign": "rm-demo", "test_size": 0.25, "consensus": True},
                                group_by_ranking=True, peft="lora", lora={"r": 4, "alpha": 8, "dropout": 0.0},
                                train={"max_steps": 20, "batch_size": 6, "learning_rate": 5e-3, "warmup_ratio": 0.0,
                                       "max_length": 64}))
    assert run_job(job_id) == 0
    report = json.loads((artifacts.job_dir(job_id) / "reward_report.json").read_text(encoding="utf-8"))
    assert report["source"] == "campaign rm-demo" and report["held_out"]
    assert 0.0 < report["human_pairwise_agreement"] <= 1.0
    assert report["eval_accuracy"] > 0.5, report
    with session_scope() as s:
        metrics = queue.job_metrics(s, job_id)
    assert any(m["key"] == "human_agreement" for m in metrics)
    assert (artifacts.job_dir(job_id) / "model" / "config.json").is_file()  # LoRA merged: a plain classifier


def test_too_few_pairs_and_missing_data_are_refused(tiny_model, tmp_path):
    with session_scope() as s:
        before = s.scalar(select(func.count()).select_from(Job))
    data = write_jsonl(tmp_path / "few.jsonl", preference_rows(2))
    with pytest.raises(StudioError, match=r"only 3 training pair\(s\), fewer than data.min_pairs \(8\)"):
        submit(reward_spec(data={"dataset": str(data), "test_size": 0.25}))
    with pytest.raises(StudioError, match="give a labeling campaign"):
        submit(reward_spec())
    with pytest.raises(StudioError, match="not both"):
        reward_spec(data={"dataset": str(data), "campaign": "x"})
    same = write_jsonl(tmp_path / "same.jsonl", [{"prompt": "p", "chosen": "a", "rejected": "a"}] * 10)
    with pytest.raises(StudioError, match="chosen and rejected are the same text"):
        submit(reward_spec(data={"dataset": str(same)}))
    with pytest.raises(StudioError, match="no margin column"):
        submit(reward_spec(data={"dataset": str(data), "use_margin": True}))
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == before
