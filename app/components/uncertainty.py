"""How the pages write a number with its uncertainty: ``0.481 [0.452, 0.509]`` cells, a delta's interval with its
mark (▲ / ▼ when significant, "noise" otherwise: the interval covers 0 or p ≥ 0.05), error bars and the caption that says how.

The numbers come from the services (``backend.metrics.stats`` behind them); this module only formats them.
"""

from backend.metrics import stats

DIGITS = {"length_words": 1, "perplexity": 2}  # decimals per metric (3 otherwise)


def cell(interval: dict | None, value: float | None = None, metric: str = "") -> str | None:
    """``0.481 [0.452, 0.509]``; a stored value without per-example scores says so; None when there is nothing."""
    digits = DIGITS.get(metric, 3)
    if interval:
        return stats.format_interval(interval["mean"], interval["low"], interval["high"], digits=digits)
    return None if value is None else f"{value:.{digits}f} (no per-example scores)"


def mark(diff: dict) -> str:
    """``▲ better`` / ``▼ worse`` (``▲ higher`` for a score with no better side) when significant, else ``noise``."""
    if not diff["significant"]:
        return "noise"
    return f"{'▲' if diff['delta'] > 0 else '▼'} {diff['verdict']}"


def p_text(diff: dict) -> str:
    if diff.get("p_adjusted") is not None:
        return f"p (Holm) = {diff['p_adjusted']:.2g}"
    return f"p = {diff['p_value']:.2g}"


def delta_interval(diff: dict | None, metric: str = "", baseline: bool = False) -> str | None:
    """The delta column's companion: ``[+0.012, +0.031] ▲ better · p = 0.004`` (``baseline`` on its own row)."""
    if diff is None:
        return "baseline" if baseline else None
    digits = DIGITS.get(metric, 3)
    return f"[{diff['low']:+.{digits}f}, {diff['high']:+.{digits}f}] {mark(diff)} · {p_text(diff)}"


def error_y(centres: list, intervals: list[dict | None]) -> dict:
    """Plotly ``error_y`` with arrays: the distance from each bar's value to its interval's ends (0 where none)."""
    plus = [0.0 if i is None or c is None else i["high"] - c for c, i in zip(centres, intervals, strict=True)]
    minus = [0.0 if i is None or c is None else c - i["low"] for c, i in zip(centres, intervals, strict=True)]
    return {"type": "data", "symmetric": False, "array": plus, "arrayminus": minus, "thickness": 1.2, "width": 4}


def caption(rows: list[dict], corrected: bool) -> str:
    """What the intervals rest on: n per run, the resampling and the correction."""
    sizes = sorted({(r["n_prompts"], r["n"]) for r in rows})
    n = "; ".join(f"{p:,} prompts ({c:,} completions)" for p, c in sizes) if sizes else "no per-example scores"
    holm = (" P-values are Holm-adjusted (Holm), as several models are compared with one baseline."
            if corrected else "")
    return (f"n = {n} per run. Brackets: {stats.METHOD}. A delta whose interval covers 0, or whose p is 0.05 or more, is noise; ▲ / ▼ mark a "
            f"significant change.{holm}")
