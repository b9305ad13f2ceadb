"""Evaluation services: queue evaluation jobs and read their results for the dashboards."""

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.db.tables import EvalResult, EvalRun
from jobs import queue
from jobs.specs import EvalSpec

METRICS = ("rouge1", "rouge2", "rougeL", "rougeLsum", "bleu", "toxicity", "length_words")


def submit_evaluations(session: Session, models: list[str], max_examples: int = 40) -> list[int]:
    """Queue one evaluation job per model on the demo test split; returns the job ids."""
    return [queue.submit(session, EvalSpec(model=m, name=f"eval {m}", max_examples=max_examples)).id
            for m in models]


def eval_runs(session: Session) -> list[dict[str, Any]]:
    runs = session.scalars(select(EvalRun).order_by(EvalRun.id))
    return [{"run": r.id, "model": r.model_name, "dataset": r.dataset, "split": r.split, "n": r.n_examples,
             "created": r.created_at.strftime("%m-%d %H:%M"), **{m: r.metrics.get(m) for m in METRICS}}
            for r in runs]


def latest_per_model(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest run of each model (runs are in id order)."""
    return list({r["model"]: r for r in runs}.values())


def examples(session: Session, run_id: int, limit: int = 200) -> list[dict[str, Any]]:
    rows = session.scalars(select(EvalResult).where(EvalResult.eval_run_id == run_id).order_by(EvalResult.idx)
                           .limit(limit))
    return [{"#": r.idx, "reference": r.reference, "prediction": r.prediction,
             **{k: r.scores.get(k) for k in ("rouge1", "rougeL")}} for r in rows]
