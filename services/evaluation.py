"""Evaluation services: queue evaluation jobs and read their results for the dashboards."""

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.data.rlhf_prompts import ensure_demo_prompts
from backend.db.lookup import get_or_raise
from backend.db.tables import EvalResult, EvalRun
from jobs import queue
from jobs.specs import EvalSpec

METRICS = ("rouge1", "rouge2", "rougeL", "rougeLsum", "bleu", "toxicity", "length_words")


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


# --- comparisons for the dashboards -------------------------------------------------------------------------
# Every function returns a list of flat dicts (pandas-ready). Scores compare only on the same dataset split:
# ROUGE on different tasks or examples is not comparable, so mixing them is refused rather than charted.

HIGHER_IS_BETTER = ("rouge1", "rouge2", "rougeL", "rougeLsum", "bleu")
LOWER_IS_BETTER = ("toxicity", "perplexity")
RLHF_METHODS = ("ppo", "dpo", "grpo")  # jobs whose models a before/after evaluation compares with their start
METHOD_LABELS = {"base": "base (zero-shot)", "full": "full fine-tuning", "lora": "LoRA",
                 "prompt_tuning": "prompt tuning", "merged": "LoRA (merged)", "ppo": "PPO", "dpo": "DPO",
                 "grpo": "GRPO"}


def dataset_splits(ref: str) -> list[str]:
    """The splits of an evaluation dataset (``demo:provocative`` is written on first use)."""
    from jobs.data import dataset_splits as splits_of

    ensure_demo_prompts(ref)
    return splits_of(ref)


def submit_comparison(session: Session, spec: EvalSpec, models: list[str]) -> list[int]:
    """Queue one evaluation of each model with the same split, template and decoding (``spec`` with its model
    replaced), so the runs compare; returns the job ids. A model that fails its checks raises ``StudioError``;
    inside one ``session_scope`` nothing is then queued (the transaction rolls back)."""
    from backend.errors import StudioError

    if not models:
        raise StudioError("Pick at least one model to evaluate.")
    return [queue.submit(session, spec.model_copy(update={"model": m, "name": f"{spec.name or 'eval'} {m}"})).id
            for m in dict.fromkeys(models)]


def _method(record) -> str:
    if record is None:
        return "base"
    method = (record.meta or {}).get("method")
    if method:
        return method
    return {"adapter": "lora", "full": "full"}.get(record.kind, "base")


def _training_time(session: Session, record) -> float | None:
    if record is None:
        return None
    runtime = (record.meta or {}).get("train_runtime")
    if runtime is None and record.job_id is not None:
        rows = [m["value"] for m in queue.job_metrics(session, record.job_id) if m["key"] == "train_runtime"]
        runtime = rows[-1] if rows else None
    return runtime


def _runs(session: Session, run_ids: list[int]) -> list[EvalRun]:
    from backend.errors import StudioError

    if not run_ids:
        raise StudioError("Pick at least one evaluation run.")
    runs = [get_or_raise(session, EvalRun, run_id, "evaluation run") for run_id in dict.fromkeys(run_ids)]
    first = runs[0]
    for run in runs[1:]:
        if (run.dataset, run.split, run.n_examples) != (first.dataset, first.split, first.n_examples):
            raise StudioError(f"Runs {first.id} and {run.id} scored different examples ({first.dataset}/{first.split}, "
                              f"{first.n_examples} rows vs {run.dataset}/{run.split}, {run.n_examples} rows): "
                              "compare runs on the same split and number of examples.")
    return runs


def _baseline(runs: list[EvalRun], methods: dict[int, str], baseline_run_id: int | None) -> int:
    """``baseline_run_id``, else the first run of a base model (zero-shot), else the first run."""
    from backend.errors import StudioError

    if baseline_run_id is not None and baseline_run_id not in methods:
        raise StudioError(f"The baseline run {baseline_run_id} is not among the compared runs.")
    return baseline_run_id or next((r.id for r in runs if methods[r.id] == "base"), runs[0].id)


def compare_runs(session: Session, run_ids: list[int], baseline_run_id: int | None = None) -> list[dict[str, Any]]:
    """One row per run: method, every metric, its change against the baseline, trainable parameters and
    training time.

    The baseline is ``baseline_run_id``, else the first run of a base model (zero-shot), else the first run.
    Columns: ``run, model, method, method_label, baseline, n`` + each metric + ``delta_<metric>`` (run − baseline)
    + ``change_<metric>`` ((run − baseline) / baseline) + ``trainable_params, total_params, trainable_share,
    train_runtime`` (None where unknown; a base model trains 0 parameters).
    """
    from backend.db.tables import ModelRecord
    from backend.metrics.deltas import relative_change

    runs = _runs(session, run_ids)
    records = {r.id: session.get(ModelRecord, r.model_id) if r.model_id else None for r in runs}
    methods = {r.id: _method(records[r.id]) for r in runs}
    base_id = _baseline(runs, methods, baseline_run_id)
    base_metrics = next(r.metrics for r in runs if r.id == base_id)
    keys = [k for k in (*HIGHER_IS_BETTER, *LOWER_IS_BETTER, "length_words") if any(k in r.metrics for r in runs)]
    keys += sorted({k for r in runs for k in r.metrics} - set(keys))
    out = []
    for run in runs:
        record, method = records[run.id], methods[run.id]
        meta = (record.meta or {}) if record is not None else {}
        trainable = 0 if method == "base" else meta.get("trainable_params")
        total = meta.get("total_params")
        row: dict[str, Any] = {"run": run.id, "model": run.model_name, "method": method,
                               "method_label": METHOD_LABELS.get(method, method), "baseline": run.id == base_id,
                               "n": run.n_examples}
        for key in keys:
            value, before = run.metrics.get(key), base_metrics.get(key)
            row[key] = value
            both = value is not None and before is not None
            row[f"delta_{key}"] = value - before if both else None
            row[f"change_{key}"] = relative_change(before, value) if both else None
        row.update(trainable_params=trainable, total_params=total,
                   trainable_share=trainable / total if trainable is not None and total else None,
                   train_runtime=_training_time(session, record))
        out.append(row)
    return out


def per_example_diff(session: Session, run_a: int, run_b: int, metric: str = "rouge1",
                     descending: bool = True) -> list[dict[str, Any]]:
    """The two runs' predictions side by side per example, with ``diff`` = score_b − score_a.

    Rows ``{idx, input, reference, prediction_a, prediction_b, score_a, score_b, diff}`` sorted by ``diff``
    (largest first by default). Raises ``StudioError`` when the runs are not on the same examples or the
    metric was not scored per example.
    """
    from backend.errors import StudioError

    runs = _runs(session, [run_a, run_b])
    if len(runs) < 2:
        raise StudioError("Pick two different runs to compare.")
    a, b = ({r.idx: r for r in session.scalars(select(EvalResult).where(EvalResult.eval_run_id == run.id))}
            for run in runs)
    rows = []
    for idx in sorted(set(a) & set(b)):
        ra, rb = a[idx], b[idx]
        if ra.reference != rb.reference:
            raise StudioError(f"Runs {run_a} and {run_b} have different references at example {idx}: they were not "
                              "scored on the same data.")
        sa, sb = ra.scores.get(metric), rb.scores.get(metric)
        if sa is None or sb is None:
            known = sorted(k for k, v in ra.scores.items() if isinstance(v, int | float))
            raise StudioError(f"'{metric}' was not scored per example (available: {', '.join(known)}).")
        rows.append({"idx": idx, "input": ra.input, "reference": ra.reference, "prediction_a": ra.prediction,
                     "prediction_b": rb.prediction, "score_a": sa, "score_b": sb, "diff": sb - sa})
    return sorted(rows, key=lambda r: r["diff"], reverse=descending)


DISTRIBUTIONS = ("toxicity", "reward", "length_words")  # per-example scores the before/after histograms show


def score_distributions(session: Session, run_ids: list[int]) -> list[dict[str, Any]]:
    """Per-example scores of the runs for histograms: ``{run, model, label, idx, toxicity, reward,
    length_words}``, one row per example (a score the run did not compute is None; ``label`` is
    "<model> (#run)"). One query for every run; the runs must be on the same examples (``_runs``)."""
    runs = {r.id: r for r in _runs(session, run_ids)}
    results = session.execute(select(EvalResult.eval_run_id, EvalResult.idx, EvalResult.scores)
                              .where(EvalResult.eval_run_id.in_(list(runs))).order_by(EvalResult.idx))
    by_run: dict[int, list[dict[str, Any]]] = {run_id: [] for run_id in runs}
    for run_id, idx, scores in results:
        run = runs[run_id]
        by_run[run_id].append({"run": run_id, "model": run.model_name, "label": f"{run.model_name} (#{run_id})",
                               "idx": idx, **{k: (scores or {}).get(k) for k in DISTRIBUTIONS}})
    return [row for run_id in runs for row in by_run[run_id]]


def toxicity_distribution(session: Session, run_ids: list[int]) -> list[dict[str, Any]]:
    """Per-example toxicity scores ``{run, model, idx, toxicity}`` for histograms / box plots per model."""
    return [{k: row[k] for k in ("run", "model", "idx", "toxicity")} for row in score_distributions(session, run_ids)
            if row["toxicity"] is not None]


def before_after(session: Session, run_ids: list[int], baseline_run_id: int | None = None,
                 distributions: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One row per run for the before/after table: ``run, model, label, method, method_label, baseline, n`` and,
    from the per-example scores, ``<score>_mean``/``<score>_std`` for toxicity, reward and length_words (None
    when the run did not compute it: no reward model), ``rouge1`` from the run's metrics (None without references),
    and ``delta_<column>`` = run − baseline for each mean and ROUGE-1 (None where either side lacks it).

    The baseline is ``baseline_run_id``, else the first run of a base model, else the first run (as
    ``compare_runs``). Database reads only: one query for the runs' models and one for their examples, unless
    the caller already holds ``score_distributions`` of these runs (the dashboard charts them too).
    """
    from backend.db.tables import ModelRecord
    from backend.metrics.deltas import mean_std

    runs = _runs(session, run_ids)
    records = {r.id: session.get(ModelRecord, r.model_id) if r.model_id else None for r in runs}
    methods = {r.id: _method(records[r.id]) for r in runs}
    base_id = _baseline(runs, methods, baseline_run_id)
    values: dict[int, dict[str, list[float]]] = {r.id: {k: [] for k in DISTRIBUTIONS} for r in runs}
    for row in distributions if distributions is not None else score_distributions(session, [r.id for r in runs]):
        for key in DISTRIBUTIONS:
            if row[key] is not None:
                values[row["run"]][key].append(row[key])
    rows = []
    for run in runs:
        row: dict[str, Any] = {"run": run.id, "model": run.model_name, "label": f"{run.model_name} (#{run.id})",
                               "method": methods[run.id], "method_label": METHOD_LABELS.get(methods[run.id],
                                                                                            methods[run.id]),
                               "baseline": run.id == base_id, "n": run.n_examples}
        for key in DISTRIBUTIONS:
            mean, std = mean_std(values[run.id][key]) if values[run.id][key] else (None, None)
            row[f"{key}_mean"], row[f"{key}_std"] = mean, std
        row["rouge1"] = run.metrics.get("rouge1")
        rows.append(row)
    base = next(r for r in rows if r["baseline"])
    for row in rows:
        for key in [f"{k}_mean" for k in DISTRIBUTIONS] + ["rouge1"]:
            both = row[key] is not None and base[key] is not None
            row[f"delta_{key}"] = row[key] - base[key] if both else None
    return rows


def rlhf_models(session: Session) -> list[str]:
    """Models for a before/after comparison: the newest PPO, DPO and GRPO models with the models they started from
    (start models first), or [] when no RLHF job has produced a model yet."""
    from backend.db.tables import ModelRecord

    newest = {}
    for record in session.scalars(select(ModelRecord).order_by(ModelRecord.id.desc())):
        method = (record.meta or {}).get("method")
        if method in RLHF_METHODS and method not in newest:
            newest[method] = record
    picked = [newest[m] for m in RLHF_METHODS if m in newest]
    starts = [(r.meta or {}).get("start_model") for r in picked]
    return list(dict.fromkeys([s for s in starts if s] + [r.name for r in picked]))


def toxicity_summary(session: Session, run_ids: list[int], baseline_run_id: int | None = None) -> list[dict[str, Any]]:
    """Mean and std of toxicity per run, and their improvement over the baseline run ((before − after) / before,
    the course's formula; the baseline defaults to the first run)."""
    from backend.metrics.deltas import improvement, mean_std

    by_run: dict[int, list[dict]] = {}
    for row in toxicity_distribution(session, run_ids):
        by_run.setdefault(row["run"], []).append(row)
    stats = {run: (rows[0]["model"], len(rows), *mean_std([r["toxicity"] for r in rows])) for run, rows in by_run.items()}
    base = baseline_run_id if baseline_run_id in stats else next(iter(stats), None)
    out = []
    for run, (model, n, mean, std) in stats.items():
        _, _, base_mean, base_std = stats[base]
        out.append({"run": run, "model": model, "n": n, "mean": mean, "std": std, "baseline": run == base,
                    "mean_improvement": improvement(base_mean, mean), "std_improvement": improvement(base_std, std)})
    return out


def side_by_side(session: Session, run_ids: list[int], metric: str = "rouge1", run_a: int | None = None,
                 run_b: int | None = None, descending: bool = True) -> list[dict[str, Any]]:
    """Every compared run's prediction per example beside the reference, sorted by a score difference.

    Rows ``{idx, input, reference, "<model> (#run)": prediction…, "<metric> <model> (#run)": score…, diff}`` where
    ``diff`` = score of ``run_b`` − score of ``run_a`` (default: the first and the last run), largest first, so
    the top rows are where ``run_b`` improved most and the bottom rows where it regressed. Only examples every run
    scored appear; runs on different references are refused (``per_example_diff``'s check).
    """
    from backend.errors import StudioError

    runs = _runs(session, run_ids)
    if len(runs) < 2:
        raise StudioError("Pick at least two runs to compare their predictions.")
    ids = [r.id for r in runs]
    run_a, run_b = run_a or ids[0], run_b or ids[-1]
    if run_a not in ids or run_b not in ids:
        raise StudioError("The two runs to sort by must be among the compared runs.")
    pair = per_example_diff(session, run_a, run_b, metric, descending)  # checks references and the metric
    labels = {r.id: f"{r.model_name} (#{r.id})" for r in runs}
    results = {r.id: {x.idx: x for x in session.scalars(select(EvalResult).where(EvalResult.eval_run_id == r.id))}
               for r in runs}
    rows = []
    for row in pair:
        if not all(row["idx"] in results[i] for i in ids):
            continue
        out = {"idx": row["idx"], "input": row["input"], "reference": row["reference"]}
        for i in ids:
            if results[i][row["idx"]].reference != row["reference"]:
                raise StudioError(f"Run {i} has a different reference at example {row['idx']}: it was not scored "
                                  "on the same data.")
            out[labels[i]] = results[i][row["idx"]].prediction
        for i in ids:
            out[f"{metric} {labels[i]}"] = results[i][row["idx"]].scores.get(metric)
        out["diff"] = row["diff"]
        rows.append(out)
    return rows


def share_above(scores: list[float], threshold: float) -> float:
    """Share (0–1) of scores strictly above ``threshold`` (0 for no scores): the toxicity dashboard's rate."""
    return sum(1 for s in scores if s > threshold) / len(scores) if scores else 0.0
