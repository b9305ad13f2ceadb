"""Per-example scores of evaluation runs, grouped by prompt: intervals, paired deltas, sample sizes.

Every number the evaluation views compare goes through here and ``backend.metrics.stats``. Scores are grouped by the
prompt (``EvalResult.input``), so the samples of one prompt stay together, and two runs pair by prompt.
"""

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.db.lookup import get_or_raise
from backend.db.tables import EvalResult, EvalRun
from backend.metrics import stats
from backend.metrics.hacking import HACKING_SIGNS

HIGHER_IS_BETTER = ("rouge1", "rouge2", "rougeL", "rougeLsum", "bleu", "reward")
LOWER_IS_BETTER = ("toxicity", "perplexity", *HACKING_SIGNS)  # a rise in a reward-hacking sign is worse

Scores = dict[int, dict[str, tuple[list[float], list[str], list[int]]]]  # run → metric → (scores, prompts, idx)


def lower_is_better(metric: str) -> bool | None:
    """True for toxicity, perplexity, repetition; False for ROUGE, BLEU, reward; None (no better side) otherwise."""
    return True if metric in LOWER_IS_BETTER else False if metric in HIGHER_IS_BETTER else None


def result_rows(session: Session, run_ids: list[int]) -> list[tuple[int, int, str, dict]]:
    """``(run, idx, input, scores)`` of every completion of the runs: one query."""
    return list(session.execute(select(EvalResult.eval_run_id, EvalResult.idx, EvalResult.input, EvalResult.scores)
                                .where(EvalResult.eval_run_id.in_(run_ids))
                                .order_by(EvalResult.eval_run_id, EvalResult.idx)))


def by_metric(rows, metrics=None) -> Scores:
    """Rows ``(run, idx, input, scores)`` → run → metric → (numeric scores, their prompts, their idx)."""
    out: Scores = {}
    for run_id, idx, prompt, scores in rows:
        for key in metrics or (scores or {}):
            value = (scores or {}).get(key)
            if isinstance(value, int | float):
                values, prompts, where = out.setdefault(run_id, {}).setdefault(key, ([], [], []))
                values.append(float(value))
                prompts.append(prompt)
                where.append(idx)
    return out


def interval_of(data) -> dict[str, Any] | None:
    try:
        return stats.mean_interval(data[0], data[1]).as_dict() if data else None
    except ValueError:  # only NaN
        return None


def paired_by_prompt(before, after) -> tuple[stats.Difference, str] | None:
    """Pair by prompt; runs whose prompts differ in text (another template) pair by position (idx) instead."""
    for by, where in (("prompt", 1), ("position", 2)):
        try:
            return stats.paired_difference(before[0], after[0], before[where], after[where]), by
        except ValueError:
            continue
    return None


def uncertainty(scores: Scores, run_ids: list[int], base_id: int, metrics) -> dict[int, dict[str, dict]]:
    """Per run: ``{"intervals": {metric: interval | None}, "vs_baseline": {metric: difference | None}}``.

    An interval is ``stats.Interval.as_dict()`` (mean, low, high, n prompts, n_obs completions, confidence); None
    where the run has no per-example score of the metric. A difference is ``stats.Difference.as_dict()`` (delta,
    low, high, p_value, p_adjusted, significant, relative, n, n_obs, before, after) + ``verdict`` (better / worse,
    higher / lower for a score with no better side, noise), ``correction`` ("Holm" when more than one run is
    compared with the baseline on the metric, else None) and ``paired_by``; None for the baseline itself and
    where either side lacks per-example scores.
    """
    out = {r: {"intervals": {}, "vs_baseline": {}} for r in run_ids}
    for metric in metrics:
        base = scores.get(base_id, {}).get(metric)
        pairs = {r: paired_by_prompt(base, scores[r][metric]) for r in run_ids
                 if r != base_id and base and metric in scores.get(r, {})}
        others = [r for r in pairs if pairs[r] is not None]
        diffs = [pairs[r][0] for r in others]
        if len(diffs) > 1:
            diffs = stats.with_holm(diffs)
        for r in run_ids:
            out[r]["intervals"][metric] = interval_of(scores.get(r, {}).get(metric))
            out[r]["vs_baseline"][metric] = None
        for r, d in zip(others, diffs, strict=True):
            out[r]["vs_baseline"][metric] = {**d.as_dict(), "paired_by": pairs[r][1],
                                             "verdict": stats.verdict(d, lower_is_better=lower_is_better(metric)),
                                             "correction": "Holm" if d.p_adjusted is not None else None}
    return out


def prompt_count(scores: Scores, run_id: int) -> int:
    """Distinct prompts the run answered (0 without per-example scores)."""
    return len({prompt for data in scores.get(run_id, {}).values() for prompt in data[1]})


def scores_by_prompt(session: Session, run_ids: list[int], metric: str) -> dict[int, dict[str, list[float]]]:
    """``{run: {prompt: [score of each completion]}}`` for one metric (one query for every run)."""
    out: dict[int, dict[str, list[float]]] = {run_id: {} for run_id in run_ids}
    for run_id, _, prompt, scores in result_rows(session, run_ids):
        value = (scores or {}).get(metric)
        if isinstance(value, int | float):
            out[run_id].setdefault(prompt, []).append(float(value))
    return out


def per_example_metrics(session: Session, run_id: int) -> list[str]:
    """The scores a run kept per completion (what a sample-size estimate can start from)."""
    get_or_raise(session, EvalRun, run_id, "evaluation run")
    first = session.scalar(select(EvalResult.scores).where(EvalResult.eval_run_id == run_id).limit(1)) or {}
    return sorted(k for k, v in first.items() if isinstance(v, int | float))


def prompts_needed(session: Session, pilot_run_id: int, metric: str, effect: float,
                   samples_per_prompt: int = 1) -> dict[str, Any]:
    """How many prompts (× ``samples_per_prompt`` samples) a paired comparison needs to detect a change of
    ``effect`` (absolute) in the mean ``metric``, with 80 % power at the 5 % level, from a finished run's
    per-example scores as the pilot (``stats.prompts_needed``).

    Returns ``{"prompts", "completions", "metric", "effect", "samples_per_prompt", "pilot_run", "pilot_prompts",
    "between_sd", "within_sd", "explanation"}``; a pilot without the metric or with fewer than 2 prompts, or an
    effect ≤ 0, raises ``StudioError``.
    """
    import math

    from backend.errors import StudioError

    get_or_raise(session, EvalRun, pilot_run_id, "evaluation run")
    data = by_metric(result_rows(session, [pilot_run_id]), [metric]).get(pilot_run_id, {}).get(metric)
    if not data:
        raise StudioError(f"Run {pilot_run_id} has no per-example '{metric}' scores (it has: "
                          f"{', '.join(per_example_metrics(session, pilot_run_id)) or 'none'}).")
    try:
        n = stats.prompts_needed(data[0], data[1], effect, samples_per_prompt=samples_per_prompt)
        between, within = stats.variance_parts(data[0], data[1])
    except ValueError as exc:
        raise StudioError(f"{exc}.") from None
    pilot = len(set(data[1]))
    return {"prompts": n, "completions": n * samples_per_prompt, "metric": metric, "effect": effect,
            "samples_per_prompt": samples_per_prompt, "pilot_run": pilot_run_id, "pilot_prompts": pilot,
            "between_sd": math.sqrt(between), "within_sd": math.sqrt(within),
            "explanation": f"About {n:,} prompts × {samples_per_prompt} sample(s) detect a change of ±{effect:g} in "
                           f"mean {metric} 8 times in 10 (5 % level, paired on the same prompts), given run "
                           f"{pilot_run_id}'s spread: {math.sqrt(between):.3g} between prompts, "
                           f"{math.sqrt(within):.3g} between samples of one prompt ({pilot} pilot prompts)."}
