"""Evaluation runner on the tiny model, in-process through ``jobs.run.main``: batched generation, corpus and
per-example scores in eval_runs / eval_results, metrics rows, readable failures."""


import pytest
from factories import job_row, write_dialogues
from sqlalchemy import select

from backend.db.engine import session_scope
from backend.db.tables import EvalResult, EvalRun
from jobs import artifacts, queue
from jobs.run import main as run_job
from jobs.runners.evaluate import METRIC_KEYS
from jobs.specs import EvalSpec


def write_dataset(folder, n=6):
    return write_dialogues(folder, {"train": n, "test": n})


def submit(**values) -> int:
    spec = EvalSpec.model_validate({"model": "tiny", "batch_size": 4, "max_examples": 5,
                                    "decoding": {"max_new_tokens": 8}, **values})
    with session_scope(write=True) as s:
        return queue.submit(s, spec).id


@pytest.mark.parametrize("chat_format", [True, False])
def test_eval_writes_runs_results_and_metrics(tiny_model, tmp_path, chat_format):
    data = write_dataset(tmp_path / "data")
    job_id = submit(dataset=str(data), chat_format=chat_format, name="tiny eval")
    assert run_job(job_id) == 0
    job = job_row(job_id)
    assert job.status == "succeeded", job.error
    assert job.output_model_id is None

    with session_scope() as s:
        run = s.scalar(select(EvalRun).where(EvalRun.job_id == job_id))
        assert run is not None
        assert (run.model_id, run.model_name, run.split, run.n_examples) == (tiny_model.id, "tiny", "test", 5)
        assert run.dataset == str(data) and "{dialogue}" in run.template
        assert run.decoding["max_new_tokens"] == 8
        assert set(METRIC_KEYS) <= set(run.metrics)
        assert all(isinstance(v, float) for v in run.metrics.values())
        results = s.scalars(select(EvalResult).where(EvalResult.eval_run_id == run.id).order_by(EvalResult.idx)).all()
        assert [r.idx for r in results] == list(range(5))
        assert results[2].reference == "Person1 greets Person2 about booking 2."
        assert "hello booking 2" in results[2].input and results[2].input.startswith("Summarize")
        assert all(isinstance(r.prediction, str) for r in results)
        assert all({"rouge1", "bleu", "toxicity", "length_words", "repetition", "refusal", "apology"} <= set(r.scores)
                   for r in results)
        assert all(0 <= r.scores["repetition"] <= 1 and r.scores["refusal"] in (0.0, 1.0) for r in results)
        assert run.metrics["refusal"] == pytest.approx(sum(r.scores["refusal"] for r in results) / 5)

    with session_scope() as s:
        metrics = queue.job_metrics(s, job_id)
    keys = {m["key"] for m in metrics}
    assert {f"eval/{k}" for k in (*METRIC_KEYS, "repetition", "refusal", "apology")} <= keys
    progress = [m["value"] for m in metrics if m["key"] == "eval/progress"]
    assert progress == [pytest.approx(4 / 5), pytest.approx(1.0)]  # two batches of at most 4
    log_text = (artifacts.job_dir(job_id) / "job_spec.yaml").read_text()
    assert "kind: eval" in log_text


def test_eval_missing_column_fails_readably(tiny_model, tmp_path):
    job_id = submit(dataset=str(write_dataset(tmp_path / "data")), target_field="reference_summary")
    assert run_job(job_id) == 1
    job = job_row(job_id)
    assert job.status == "failed"
    assert "reference_summary" in job.error and "test.jsonl" in job.error
    with session_scope() as s:
        assert s.scalar(select(EvalRun).where(EvalRun.job_id == job_id)) is None


def test_eval_prompt_too_long_fails_readably(tiny_model, tmp_path):
    job_id = submit(dataset=str(write_dataset(tmp_path / "data")), decoding={"max_new_tokens": 1020})
    assert run_job(job_id) == 1
    job = job_row(job_id)
    assert job.status == "failed" and "context window" in job.error
