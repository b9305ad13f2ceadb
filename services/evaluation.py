"""Evaluation services: queue evaluation jobs and read their results for the dashboards (the intervals and paired
deltas come from ``services.eval_scores``)."""

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.data.rlhf_prompts import ensure_demo_prompts
from backend.db.lookup import get_or_raise
from backend.db.tables import EvalResult, EvalRun
from backend.metrics import stats
from backend.metrics.hacking import HACKING_SIGNS
from jobs import queue
from jobs.specs import EvalSpec
from services.eval_scores import (
    HIGHER_IS_BETTER,
    LOWER_IS_BETTER,
    by_metric,
    lower_is_better,
    prompt_count,
    result_rows,
    uncertainty,
)

METRICS = ("rouge1", "rouge2", "rougeL", "rougeLsum", "bleu", "toxicity", "length_words")


def eval_runs(session: Session) -> list[dict[str, Any]]:
    runs = session.scalars(select(EvalRun).order_by(EvalRun.id))
    return [{"run": r.id, "model": r.model_name, "dataset": r.dataset, "split": r.split, "n": r.n_examples,
             "created": r.created_at.strftime("%m-%d %H:%M"), **{m: r.metrics.get(m) for m in METRICS}}
            for r in runs]


def run_label(run: dict[str, Any]) -> str:
    """How the pages name a run of ``eval_runs``: ``#3 tiny-lora (40 × demo:dialogsum test)``."""
    return f"#{run['run']} {run['model']} ({run['n']} × {run['dataset']} {run['split']})"


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

RLHF_METHODS = ("ppo", "dpo", "grpo")  # jobs whose models a before/after evaluation compares with their start
METHOD_LABELS = {"base": "base (zero-shot)", "full": "full fine-tuning", "lora": "LoRA",
                 "prompt_tuning": "prompt tuning", "merged": "LoRA (merged)", "ppo": "PPO", "dpo": "DPO",
                 "grpo": "GRPO"}


def dataset_splits(ref: str) -> list[str]:
    """The splits of an evaluation dataset (``demo:provocative`` is written on first use)."""
    from jobs.data import dataset_splits as splits_of

    ensure_demo_prompts(ref)
    return splits_of(ref)


def submit_comparison(session: Session, spec: EvalSpec, models: list[str],
                      submission_token: str | None = None) -> list[int]:
    """Queue one evaluation of each model with the same split, template and decoding (``spec`` with its model
    replaced), so the runs compare; returns the job ids. A model that fails its checks raises ``StudioError``;
    inside one ``session_scope`` nothing is then queued (the transaction rolls back). ``submission_token`` (one
    per form submission, at most 60 characters) makes it idempotent: the same token again returns the same jobs."""
    from backend.errors import StudioError

    if not models:
        raise StudioError("Pick at least one model to evaluate.")
    specs = [spec.model_copy(update={"model": m, "name": f"{spec.name or 'eval'} {m}"}) for m in dict.fromkeys(models)]
    tokens = [f"{submission_token}-{i}" if submission_token else None for i in range(len(specs))]
    return [job.id for job in queue.submit_many(session, specs, tokens)]  # every check before the write lock


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


def baseline_run(session: Session, run_ids: list[int]) -> int:
    """The run the comparisons measure against: the first run of a base model (zero-shot), else the first run."""
    from backend.db.tables import ModelRecord

    runs = _runs(session, run_ids)
    methods = {r.id: _method(session.get(ModelRecord, r.model_id) if r.model_id else None) for r in runs}
    return _baseline(runs, methods, None)


def compare_runs(session: Session, run_ids: list[int], baseline_run_id: int | None = None) -> list[dict[str, Any]]:
    """One row per run: method, every metric with its interval, its paired change against the baseline,
    trainable parameters and training time.

    The baseline is ``baseline_run_id``, else the first run of a base model (zero-shot), else the first run.
    Columns: ``run, model, method, method_label, baseline, n`` (completions), ``n_prompts`` + each metric (the
    run's stored value: corpus BLEU, mean ROUGE…) + ``delta_<metric>`` (run − baseline: the paired difference of
    the per-example means where both runs scored the metric per example, else of the stored values) +
    ``change_<metric>`` (delta / baseline) + ``trainable_params, total_params, trainable_share, train_runtime``
    (None where unknown; a base model trains 0 parameters) + ``intervals`` and ``vs_baseline`` ({metric: …}, see
    ``uncertainty``: per-example means with their 95 % intervals, paired deltas with interval, p, Holm and
    verdict; None for a metric with no per-example scores, e.g. perplexity). For BLEU the interval is the mean
    sentence BLEU's: the stored value is corpus BLEU, which has no per-example version.
    Database reads: the runs, their models and one query for every run's per-example scores.
    """
    from backend.db.tables import ModelRecord
    from backend.metrics.deltas import relative_change

    runs = _runs(session, run_ids)
    records = {r.id: session.get(ModelRecord, r.model_id) if r.model_id else None for r in runs}
    methods = {r.id: _method(records[r.id]) for r in runs}
    base_id = _baseline(runs, methods, baseline_run_id)
    base_metrics = next(r.metrics for r in runs if r.id == base_id)
    scores = by_metric(result_rows(session, [r.id for r in runs]))
    known = {k for r in runs for k in r.metrics} | {k for by_key in scores.values() for k in by_key}
    keys = [k for k in (*HIGHER_IS_BETTER, *LOWER_IS_BETTER, "length_words") if k in known]
    keys += sorted(known - set(keys))
    spread = uncertainty(scores, [r.id for r in runs], base_id, keys)
    means = {r: {k: v and v["mean"] for k, v in spread[r]["intervals"].items()} for r in spread}
    out = []
    for run in runs:
        record, method = records[run.id], methods[run.id]
        meta = (record.meta or {}) if record is not None else {}
        trainable = 0 if method == "base" else meta.get("trainable_params")
        total = meta.get("total_params")
        row: dict[str, Any] = {"run": run.id, "model": run.model_name, "method": method,
                               "method_label": METHOD_LABELS.get(method, method), "baseline": run.id == base_id,
                               "n": run.n_examples, "n_prompts": prompt_count(scores, run.id)}
        for key in keys:  # the stored value, else (a score kept only per example) the per-example mean
            value, before = run.metrics.get(key, means[run.id][key]), base_metrics.get(key, means[base_id][key])
            row[key] = value
            paired = spread[run.id]["vs_baseline"][key]
            both = value is not None and before is not None
            if paired is not None:
                row[f"delta_{key}"], row[f"change_{key}"] = paired["delta"], paired["relative"]
            else:
                row[f"delta_{key}"] = value - before if both else None
                row[f"change_{key}"] = relative_change(before, value) if both else None
        row.update(trainable_params=trainable, total_params=total,
                   trainable_share=trainable / total if trainable is not None and total else None,
                   train_runtime=_training_time(session, record), **spread[run.id])
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
HACKING = tuple(HACKING_SIGNS)  # reward-hacking signs: did the policy win by repeating itself, declining or apologising?
BEFORE_AFTER = (*DISTRIBUTIONS, *HACKING, "rouge1")  # what its table compares (ROUGE-1 where there are references)


def score_distributions(session: Session, run_ids: list[int]) -> list[dict[str, Any]]:
    """Per-example scores of the runs for histograms: ``{run, model, label, idx, input, toxicity, reward,
    length_words, rouge1}``, one row per completion (a score the run did not compute is None; ``label`` is
    "<model> (#run)"; ``input`` the prompt). One query for every run; the runs must be on the same examples
    (``_runs``)."""
    runs = {r.id: r for r in _runs(session, run_ids)}
    by_run: dict[int, list[dict[str, Any]]] = {run_id: [] for run_id in runs}
    for run_id, idx, prompt, scores in result_rows(session, list(runs)):
        run = runs[run_id]
        by_run[run_id].append({"run": run_id, "model": run.model_name, "label": f"{run.model_name} (#{run_id})",
                               "idx": idx, "input": prompt, **{k: (scores or {}).get(k) for k in BEFORE_AFTER}})
    return [row for run_id in runs for row in by_run[run_id]]


def toxicity_distribution(session: Session, run_ids: list[int]) -> list[dict[str, Any]]:
    """Per-example toxicity scores ``{run, model, idx, toxicity}`` for histograms / box plots per model."""
    return [{k: row[k] for k in ("run", "model", "idx", "toxicity")} for row in score_distributions(session, run_ids)
            if row["toxicity"] is not None]


def before_after(session: Session, run_ids: list[int], baseline_run_id: int | None = None,
                 distributions: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One row per run for the before/after table: ``run, model, label, method, method_label, baseline, n``
    (completions), ``n_prompts`` and, from the per-example scores, ``<score>_mean``/``<score>_std`` for toxicity,
    reward, length_words, repetition and refusal (None when the run did not compute it: no reward model, or an
    evaluation from before repetition and refusal were scored), ``rouge1`` from the run's
    metrics (None without references), ``delta_<column>`` = run − baseline for each mean and ROUGE-1 (the paired
    difference on the shared prompts; None where either side lacks it), and ``intervals`` / ``vs_baseline``
    ({score: …} for toxicity, reward, length_words and rouge1: the means with their 95 % intervals, the paired
    deltas with interval, p, Holm when several runs face the baseline, verdict; see ``uncertainty``).

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
    dist = distributions if distributions is not None else score_distributions(session, [r.id for r in runs])
    scores = by_metric(((row["run"], row["idx"], row["input"], row) for row in dist), BEFORE_AFTER)
    spread = uncertainty(scores, [r.id for r in runs], base_id, BEFORE_AFTER)
    rows = []
    for run in runs:
        row: dict[str, Any] = {"run": run.id, "model": run.model_name, "label": f"{run.model_name} (#{run.id})",
                               "method": methods[run.id], "method_label": METHOD_LABELS.get(methods[run.id],
                                                                                            methods[run.id]),
                               "baseline": run.id == base_id, "n": run.n_examples,
                               "n_prompts": prompt_count(scores, run.id)}
        for key in (*DISTRIBUTIONS, *HACKING):
            values = scores.get(run.id, {}).get(key, ([],))[0]
            row[f"{key}_mean"], row[f"{key}_std"] = mean_std(values) if values else (None, None)
        row["rouge1"] = run.metrics.get("rouge1")
        rows.append(row | spread[run.id])
    base = next(r for r in rows if r["baseline"])
    for row in rows:
        for key, column in [(k, f"{k}_mean") for k in (*DISTRIBUTIONS, *HACKING)] + [("rouge1", "rouge1")]:
            paired, both = row["vs_baseline"][key], row[column] is not None and base[column] is not None
            row[f"delta_{column}"] = paired["delta"] if paired else row[column] - base[column] if both else None
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
    """Toxicity per run: ``run, model, n`` (prompts), ``n_obs`` (completions), ``mean, low, high`` (95 % interval
    by prompt), ``std``, ``baseline``, the paired difference against the baseline run (``delta, delta_low,
    delta_high, p_value, p_adjusted`` (Holm, when more than one run faces the baseline), ``significant, verdict``;
    None on the baseline's row; ``vs_baseline`` holds them as ``uncertainty`` gives them) and the improvement over
    the baseline ((before − after) / before, the course's formula, for the mean and the std). The baseline defaults
    to the first run with toxicity scores."""
    from backend.metrics.deltas import improvement, mean_std

    dist = [row for row in score_distributions(session, run_ids) if row["toxicity"] is not None]
    scores = by_metric(((row["run"], row["idx"], row["input"], row) for row in dist), ["toxicity"])
    models = {row["run"]: row["model"] for row in dist}
    base = baseline_run_id if baseline_run_id in scores else next(iter(scores), None)
    spread = uncertainty(scores, list(scores), base, ["toxicity"])
    out = []
    for run, by_key in scores.items():
        interval, paired = spread[run]["intervals"]["toxicity"], spread[run]["vs_baseline"]["toxicity"] or {}
        mean, std = mean_std(by_key["toxicity"][0])
        base_mean, base_std = mean_std(scores[base]["toxicity"][0])
        out.append({"run": run, "model": models[run], "n": interval["n"], "n_obs": interval["n_obs"], "mean": mean,
                    "low": interval["low"], "high": interval["high"], "std": std, "baseline": run == base,
                    "delta": paired.get("delta"), "delta_low": paired.get("low"), "delta_high": paired.get("high"),
                    "p_value": paired.get("p_value"), "p_adjusted": paired.get("p_adjusted"),
                    "significant": paired.get("significant"), "verdict": paired.get("verdict"),
                    "vs_baseline": paired or None,
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


# --- two runs for the command line, and how many prompts a comparison needs ---------------------------------------

def compare_pair(session: Session, run_a: int, run_b: int, metrics: list[str] | None = None) -> dict[str, Any]:
    """Run B against run A (the baseline) on the same prompts, per metric (``studio eval compare``).

    ``{"a": run, "b": run, "method": how the intervals were made, "metrics": [{"metric", "lower_is_better",
    "a", "b", "difference", "delta", "note"}]}`` where a run is ``{"run", "model", "method", "n", "n_prompts"}``,
    ``a``/``b`` a mean with its interval (``stats.Interval`` fields; for a metric kept only as one number per run,
    e.g. perplexity, ``{"value": …}`` and ``note`` "no per-example scores"), ``difference`` B − A (a number, as
    ``compare_runs``'s ``delta_<metric>``) and ``delta`` B − A paired by prompt (delta, low, high, p_value,
    significant, verdict, …; None without per-example scores on both sides). ``metrics`` picks the metrics
    (default: every one either run has, spreads such as ``toxicity_std`` left out).
    """
    from backend.errors import StudioError

    if run_a == run_b:
        raise StudioError("Pick two different runs to compare.")
    rows = compare_runs(session, [run_a, run_b], baseline_run_id=run_a)
    a, b = rows
    available = [k for k in a["intervals"] if not k.endswith("_std")]
    unknown = [m for m in metrics or [] if m not in a["intervals"]]
    if unknown:
        raise StudioError(f"No metric {', '.join(unknown)} in runs {run_a} and {run_b} (available: "
                          f"{', '.join(available)}).")
    out = []
    for metric in metrics or available:
        sides = [row["intervals"][metric] or ({"value": row[metric]} if row[metric] is not None else None)
                 for row in (a, b)]
        note = None if a["intervals"][metric] and b["intervals"][metric] else "no per-example scores"
        out.append({"metric": metric, "lower_is_better": lower_is_better(metric), "a": sides[0], "b": sides[1],
                    "difference": b[f"delta_{metric}"], "delta": b["vs_baseline"][metric], "note": note})
    run = ("run", "model", "method", "n", "n_prompts")
    return {"a": {k: a[k] for k in run}, "b": {k: b[k] for k in run}, "method": stats.METHOD, "metrics": out}
