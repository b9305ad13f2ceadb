"""Dashboard data services on factory rows: compare runs (deltas against the base, trainable parameters,
training time), per-example side by side, toxicity distribution and summary; mixing splits is refused."""

import pytest

from backend.db.engine import session_scope
from backend.db.tables import EvalResult, EvalRun, Job, ModelRecord
from backend.errors import StudioError
from jobs import queue
from services import evaluation

# The course's dialogsum table: base, full fine-tuning, LoRA (ROUGE-1/2/L/Lsum).
TABLE = {"base": (0.2334, 0.0760, 0.2014, 0.2015), "full": (0.4216, 0.1804, 0.3384, 0.3384),
         "lora": (0.4081, 0.1633, 0.3251, 0.3249)}


def add_model(s, name, kind="base", meta=None, job_id=None, base_id=None):
    record = ModelRecord(name=name, kind=kind, source="job" if job_id else "local", path=f"/models/{name}",
                         meta=meta or {}, job_id=job_id, base_model_id=base_id)
    s.add(record)
    s.flush()
    return record


def add_run(s, model, metrics, predictions, split="test", toxicity=None, references=None):
    run = EvalRun(model_id=model.id if model else None, model_name=model.name if model else "folder",
                  dataset="demo:dialogsum", split=split, n_examples=len(predictions), metrics=metrics)
    s.add(run)
    s.flush()
    references = references or [f"reference {i}" for i in range(len(predictions))]
    for i, text in enumerate(predictions):  # three examples: per-example ROUGE-1 averages to the run's value
        scores = {"rouge1": metrics["rouge1"] + (0, 0.01, -0.01)[i % 3],
                  "toxicity": (toxicity or [0.1] * len(predictions))[i]}
        s.add(EvalResult(eval_run_id=run.id, idx=i, input=f"dialogue {i}", reference=references[i], prediction=text,
                         scores=scores))
    s.flush()
    return run.id


@pytest.fixture
def three_runs(studio_env):
    with session_scope(write=True) as s:
        job = Job(kind="sft", name="lora", status="succeeded", spec={"kind": "sft", "peft": "lora"})
        s.add(job)
        s.flush()
        queue.log_metrics(s, job.id, 30, {"train_runtime": 95.0})
        base = add_model(s, "base")
        full = add_model(s, "full-ft", "full", {"method": "full", "trainable_params": 1000, "total_params": 1000,
                                                "train_runtime": 300.0})
        lora = add_model(s, "lora-ft", "adapter", {"method": "lora", "trainable_params": 14, "total_params": 1014},
                         job_id=job.id, base_id=base.id)
        ids = {name: add_run(s, model, dict(zip(("rouge1", "rouge2", "rougeL", "rougeLsum"), TABLE[name],
                                                strict=True)) | {"toxicity": 0.1}, [f"{name} says {i}" for i in range(3)])
               for name, model in (("lora", lora), ("base", base), ("full", full))}
    return ids


def test_compare_runs_deltas_and_training_cost(three_runs):
    with session_scope() as s:
        rows = {r["method"]: r for r in evaluation.compare_runs(s, list(three_runs.values()))}
    assert rows["base"]["baseline"] and rows["base"]["method_label"] == "base (zero-shot)"
    assert rows["full"]["change_rouge1"] == pytest.approx(0.806, abs=5e-4)  # +80.6% over the base
    assert rows["lora"]["delta_rouge1"] == pytest.approx(0.4081 - 0.2334)
    assert rows["base"]["delta_rouge1"] == 0
    assert (rows["full"]["trainable_share"], rows["full"]["train_runtime"]) == (1.0, 300.0)
    assert rows["lora"]["trainable_params"] == 14 and rows["lora"]["train_runtime"] == 95.0  # from job metrics
    assert rows["base"]["trainable_params"] == 0
    with session_scope() as s:  # LoRA against full fine-tuning: −3.2%
        rows = {r["method"]: r for r in evaluation.compare_runs(s, list(three_runs.values()), three_runs["full"])}
    assert rows["lora"]["change_rouge1"] == pytest.approx(-0.032, abs=5e-4)


def test_runs_on_other_examples_are_not_compared(three_runs):
    with session_scope(write=True) as s:
        other = add_run(s, None, {"rouge1": 0.3}, ["x", "y", "z"], split="validation")
    with pytest.raises(StudioError, match="different examples"), session_scope() as s:
        evaluation.compare_runs(s, [three_runs["base"], other])
    with pytest.raises(StudioError, match="no evaluation run 999"), session_scope() as s:
        evaluation.compare_runs(s, [999])


def test_per_example_side_by_side(three_runs):
    with session_scope() as s:
        rows = evaluation.per_example_diff(s, three_runs["base"], three_runs["full"])
    assert len(rows) == 3
    first = rows[0]
    assert first["prediction_a"].startswith("base") and first["prediction_b"].startswith("full")
    assert first["diff"] == pytest.approx(first["score_b"] - first["score_a"]) and first["diff"] > 0
    assert [r["diff"] for r in rows] == sorted((r["diff"] for r in rows), reverse=True)
    with pytest.raises(StudioError, match="'bleu' was not scored"), session_scope() as s:
        evaluation.per_example_diff(s, three_runs["base"], three_runs["full"], metric="bleu")


def test_per_example_refuses_different_references(three_runs):
    with session_scope(write=True) as s:
        other = add_run(s, None, {"rouge1": 0.3}, ["x", "y", "z"], references=["a", "b", "c"])
    with pytest.raises(StudioError, match="different references"), session_scope() as s:
        evaluation.per_example_diff(s, three_runs["base"], other)


def test_toxicity_distribution_and_improvement(studio_env):
    with session_scope(write=True) as s:
        before = add_run(s, add_model(s, "before"), {"rouge1": 0.2}, ["a", "b"], toxicity=[0.2, 0.4])
        after = add_run(s, add_model(s, "after"), {"rouge1": 0.2}, ["c", "d"], toxicity=[0.15, 0.25])
    with session_scope() as s:
        dist = evaluation.toxicity_distribution(s, [before, after])
        summary = {r["model"]: r for r in evaluation.toxicity_summary(s, [before, after])}
    assert [(r["model"], r["toxicity"]) for r in dist] == [("before", 0.2), ("before", 0.4), ("after", 0.15),
                                                           ("after", 0.25)]
    assert summary["before"]["mean"] == pytest.approx(0.3) and summary["before"]["std"] == pytest.approx(0.1)
    assert summary["after"]["mean_improvement"] == pytest.approx((0.3 - 0.2) / 0.3)
    assert summary["after"]["std_improvement"] == pytest.approx((0.1 - 0.05) / 0.1)


def test_side_by_side_every_model_sorted_by_difference(three_runs):
    ids = [three_runs["base"], three_runs["full"], three_runs["lora"]]
    with session_scope() as s:
        rows = evaluation.side_by_side(s, ids, "rouge1", run_a=three_runs["base"], run_b=three_runs["full"])
        with pytest.raises(StudioError, match="at least two runs"):
            evaluation.side_by_side(s, ids[:1])
        with pytest.raises(StudioError, match="must be among"):
            evaluation.side_by_side(s, ids[:2], run_b=three_runs["lora"])
    assert [r["idx"] for r in rows] == [0, 1, 2]  # same gain everywhere: index order is kept
    first = rows[0]
    assert first["reference"] == "reference 0"
    assert first[f"base (#{three_runs['base']})"] == "base says 0"
    assert first[f"full-ft (#{three_runs['full']})"] == "full says 0"
    assert first[f"lora-ft (#{three_runs['lora']})"] == "lora says 0"
    assert first["diff"] == pytest.approx(TABLE["full"][0] - TABLE["base"][0])
    assert first[f"rouge1 lora-ft (#{three_runs['lora']})"] == pytest.approx(TABLE["lora"][0])


def test_share_above_threshold():
    assert evaluation.share_above([0.1, 0.6, 0.9, 0.5], 0.5) == 0.5  # strictly above
    assert evaluation.share_above([], 0.5) == 0.0
