"""Outcome tables for the README: evaluation runs against a baseline, every number with its 95 % interval.

    python benchmarks/outcome_report.py --runs 1 2 3 --metrics rouge1 rouge2 rougeL
    python benchmarks/outcome_report.py --runs 1 2 3 --metrics rouge1 --share 2 3   # LoRA's share of full FT's gain

Reads the studio database of ``STUDIO_DATA_DIR`` through the same service the Evaluation page uses
(``services.evaluation.compare_runs``: bootstrap by prompt, paired deltas, Holm). ``--share A B`` adds the share
of B's gain over the baseline that A reaches, (A − base) / (B − base), with a paired bootstrap interval over prompts.
"""

import argparse

import numpy as np

from backend.db.engine import session_scope
from backend.errors import StudioError
from backend.metrics import stats
from services import eval_scores, evaluation


def _cell(interval: dict | None, value: float | None) -> str:
    if interval:
        return stats.format_interval(interval["mean"], interval["low"], interval["high"])
    return "–" if value is None else f"{value:.3f}"


def _delta(diff: dict | None) -> str:
    if not diff:
        return "–"
    p = diff["p_adjusted"] if diff.get("p_adjusted") is not None else diff["p_value"]
    return (f"{diff['delta']:+.3f} [{diff['low']:+.3f}, {diff['high']:+.3f}], p = {p:.2g}"
            f"{' (Holm)' if diff.get('p_adjusted') is not None else ''} — {diff['verdict']}")


def share_of_gain(session, base: int, run_a: int, run_b: int, metric: str, resamples: int = 2000,
                  seed: int = 0) -> tuple[float, float, float, int]:
    """(A − base) / (B − base) of the per-prompt mean ``metric``, with a percentile bootstrap over shared prompts."""
    by_run = eval_scores.scores_by_prompt(session, [base, run_a, run_b], metric)
    shared = sorted(set.intersection(*(set(v) for v in by_run.values())))
    means = np.array([[np.mean(by_run[run][p]) for p in shared] for run in (base, run_a, run_b)])
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(shared), size=(resamples, len(shared)))
    sampled = means[:, picks].mean(axis=2)  # (3, resamples)
    ratio = (sampled[1] - sampled[0]) / (sampled[2] - sampled[0])
    point = (means[1].mean() - means[0].mean()) / (means[2].mean() - means[0].mean())
    low, high = np.percentile(ratio, [2.5, 97.5])
    return float(point), float(low), float(high), len(shared)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, nargs="+", required=True, help="evaluation run ids")
    parser.add_argument("--baseline", type=int, help="baseline run (default: the first base model's run)")
    parser.add_argument("--metrics", nargs="+", default=["rouge1", "rouge2", "rougeL", "bleu"])
    parser.add_argument("--share", type=int, nargs=2, metavar=("A", "B"), help="A's share of B's gain")
    args = parser.parse_args()
    with session_scope() as s:
        rows = evaluation.compare_runs(s, args.runs, args.baseline)
        base = next(r for r in rows if r["baseline"])
        print("| model | prompts | " + " | ".join(f"{m} | Δ {m}" for m in args.metrics) + " |")
        print("|---|---|" + "---|---|" * len(args.metrics))
        for r in rows:
            cells = [f"{_cell(r['intervals'].get(m), r.get(m))} | {_delta(r['vs_baseline'].get(m))}"
                     for m in args.metrics]
            print(f"| {r['model']} (#{r['run']}) | {r['n_prompts']} | " + " | ".join(cells) + " |")
        if args.share:
            for metric in args.metrics:
                point, low, high, n = share_of_gain(s, base["run"], *args.share, metric)
                print(f"\nshare of run {args.share[1]}'s {metric} gain reached by run {args.share[0]}: "
                      f"{point:.0%} [{low:.0%}, {high:.0%}] over {n} prompts")


if __name__ == "__main__":
    try:
        main()
    except StudioError as exc:
        raise SystemExit(f"error: {exc}") from None
