"""Comparing scores between runs (pure): absolute and relative change, mean and spread.

Conventions: ``relative_change`` is (after − before) / before, so ROUGE-1 going from 0.2334 (base) to
0.4216 (full fine-tuning) is +0.806 (+80.6%), and LoRA's 0.4081 against full's 0.4216 is −0.032.
``improvement`` is the opposite sign, for lower-is-better scores such as toxicity: a mean toxicity
going from 0.032297799189109355 to 0.0271528000858697 is a 15.93% improvement.
"""

import math
from collections.abc import Sequence


def relative_change(before: float, after: float) -> float | None:
    """(after − before) / before; None when ``before`` is 0 (no meaningful ratio)."""
    if before == 0:
        return None
    return (after - before) / before


def improvement(before: float, after: float) -> float | None:
    """(before − after) / before, for scores where lower is better (toxicity, perplexity)."""
    change = relative_change(before, after)
    return None if change is None else -change


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population standard deviation (as ``numpy.std``); raises ``ValueError`` on no values."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("no values to summarise")
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
