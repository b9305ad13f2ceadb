"""Numbers with their uncertainty: the one statistics module every comparison in the studio uses.

- ``mean_interval``: a mean with its 95 % bootstrap interval. Scores are resampled by *example* (prompt): when a
  prompt has several sampled completions they are kept together, because completions of one prompt are not
  independent draws — resampling them one by one would make the interval too narrow.
- ``paired_difference``: model B against model A on the same examples — the paired bootstrap interval of the
  difference of means (per-prompt differences resampled) and a two-sided sign-flip permutation p-value. A
  difference whose interval covers 0 is *noise*: the studio says so.
- ``holm``: Holm–Bonferroni adjustment when several models are compared with one baseline at once (controls the
  chance of any false "significant" at 5 %, less conservative than Bonferroni).
- ``prompts_needed``: from a pilot run's per-prompt scores, how many prompts × samples detect a given effect.
- ``verdict`` / ``describe`` / ``format_interval`` / ``METHOD``: how a difference and an interval are said to people.
- ``summary_interval`` / ``unpaired_difference``: the fallback for numbers kept only as mean, sd and count (the PPO
  job's held-out evaluations): a normal approximation that errs on the wide side. Never used when scores exist.

Everything is seeded (same data, same seed → same interval) and vectorised with numpy: 2,000 resamples of
1,000 prompts take a few milliseconds.
"""

import math
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 2000
SEED = 0


@dataclass(frozen=True)
class Interval:
    """A mean and its interval; ``n`` examples (prompts) behind it, ``n_obs`` scores (completions)."""

    mean: float
    low: float
    high: float
    n: int
    n_obs: int
    confidence: float = CONFIDENCE

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Difference:
    """``after − before`` on the same examples with its paired interval and p-value."""

    delta: float
    low: float
    high: float
    p_value: float
    n: int  # examples present in both runs
    n_obs: int  # scores behind the two means together
    before: float
    after: float
    confidence: float = CONFIDENCE
    p_adjusted: float | None = None  # after a multiple-comparison correction (Holm), when one was applied

    @property
    def significant(self) -> bool:
        """The interval excludes 0 and the p-value (Holm-adjusted, when a correction was applied) is below
        1 − confidence. Both are asked: with a handful of prompts a percentile bootstrap interval is too narrow,
        while the sign-flip test stays honest (2 prompts can never give p below 0.5)."""
        excludes_zero = self.low > 0 or self.high < 0
        p = self.p_value if self.p_adjusted is None else self.p_adjusted
        return excludes_zero and p < 1 - self.confidence

    @property
    def relative(self) -> float | None:
        return None if self.before == 0 else self.delta / self.before

    def as_dict(self) -> dict:
        return {**asdict(self), "significant": self.significant, "relative": self.relative}


def _groups(values: Sequence[float], groups: Sequence[Hashable] | None) -> tuple[np.ndarray, np.ndarray, list]:
    """Per-group sums and counts (group order = first appearance); finite values only."""
    if groups is None:
        groups = range(len(values))
    if len(groups) != len(values):
        raise ValueError(f"{len(values)} values but {len(groups)} group labels")
    sums: dict = {}
    counts: dict = {}
    for value, group in zip(values, groups, strict=True):
        if value is None or not math.isfinite(float(value)):
            continue
        sums[group] = sums.get(group, 0.0) + float(value)
        counts[group] = counts.get(group, 0) + 1
    keys = list(sums)
    return np.array([sums[k] for k in keys]), np.array([counts[k] for k in keys], dtype=float), keys


def _percentiles(draws: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return float(low), float(high)


def mean_interval(values: Sequence[float], groups: Sequence[Hashable] | None = None, *,
                  resamples: int = RESAMPLES, seed: int = SEED, confidence: float = CONFIDENCE) -> Interval:
    """The mean of ``values`` with a percentile bootstrap interval, resampling whole groups (prompts).

    Args:
        values: one score per completion (None/NaN are left out).
        groups: the example each score belongs to (e.g. the prompt text); None = every score is its own example.
        resamples: bootstrap resamples (1,000+ for a stable 95 % interval).
        seed: the generator's seed: the same data and seed give the same interval.
        confidence: 0.95 for a 95 % interval.

    Raises:
        ValueError: no finite values.
    """
    sums, counts, _ = _groups(values, groups)
    return grouped_mean_interval(sums, counts, resamples=resamples, seed=seed, confidence=confidence)


BOOTSTRAP_CHUNK = 4_000_000  # resampled indices drawn at a time: bounds memory (2,000 × 100k would be 1.6 GB)


def _packed_whole_numbers(sums: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray | None, int]:
    """``sums << shift | counts`` as one int64 per group when both are small whole numbers (win counts and duels)
    whose resampled totals cannot overflow; ``(None, 0)`` otherwise."""
    if sums.min() < 0 or (sums != np.floor(sums)).any() or (counts != np.floor(counts)).any():
        return None, 0
    n = len(sums)
    shift = int(counts.max() * n).bit_length()
    if shift + int(sums.max() * n).bit_length() > 62:
        return None, 0
    return (sums.astype(np.int64) << shift) | counts.astype(np.int64), shift


def grouped_mean_interval(sums: np.ndarray, counts: np.ndarray, *, resamples: int = RESAMPLES, seed: int = SEED,
                          confidence: float = CONFIDENCE) -> Interval:
    """``mean_interval`` from per-group sums and counts (what a caller that already grouped its scores has)."""
    return grouped_mean_intervals([(sums, counts)], resamples=resamples, seed=seed, confidence=confidence)[0]


def grouped_mean_intervals(groups: Sequence[tuple[np.ndarray, np.ndarray]], *, resamples: int = RESAMPLES,
                           seed: int = SEED, confidence: float = CONFIDENCE) -> list[Interval]:
    """``grouped_mean_interval`` of several ``(sums, counts)`` at once, each exactly as if computed alone.

    Drawing the resampled indices is most of the cost, so it is done once for all the entries with the same
    number of groups (alone, each would draw the very same indices from the same seed), a block of rows at a
    time: the generator yields the same stream whether ``resamples × groups`` indices are drawn at once or in
    blocks, so the intervals are the same, in a fraction of the memory and time.
    """
    arrays = [(np.asarray(s, dtype=float), np.asarray(c, dtype=float)) for s, c in groups]
    results: list[Interval | None] = [None] * len(arrays)
    by_size: dict[int, list[int]] = {}
    for i, (sums, counts) in enumerate(arrays):
        if not len(sums):
            raise ValueError("no scores to summarise")
        if len(sums) == 1:
            mean = float(sums.sum() / counts.sum())
            results[i] = Interval(mean, mean, mean, 1, int(counts.sum()), confidence)
        else:
            by_size.setdefault(len(sums), []).append(i)
    for n, members in by_size.items():
        rng = np.random.default_rng(seed)
        rows = max(1, BOOTSTRAP_CHUNK // n)
        index_type = np.int32 if n < 2**31 else np.int64
        packs = [_packed_whole_numbers(*arrays[i]) for i in members]
        draws = np.empty((len(members), resamples))
        for start in range(0, resamples, rows):
            picks = rng.integers(0, n, size=(min(rows, resamples - start), n), dtype=index_type)
            for j, i in enumerate(members):
                sums, counts = arrays[i]
                packed, shift = packs[j]
                if packed is None:
                    draws[j, start:start + len(picks)] = sums[picks].sum(axis=1) / counts[picks].sum(axis=1)
                else:  # one gather instead of two; whole numbers add up exactly in any order: the same draws
                    total = packed[picks].sum(axis=1)
                    draws[j, start:start + len(picks)] = (total >> shift).astype(float) / (total & ((1 << shift) - 1))
        for j, i in enumerate(members):
            sums, counts = arrays[i]
            low, high = _percentiles(draws[j], confidence)
            results[i] = Interval(float(sums.sum() / counts.sum()), low, high, n, int(counts.sum()), confidence)
    return results


def _paired_means(before: Sequence[float], after: Sequence[float], groups_before: Sequence[Hashable] | None,
                  groups_after: Sequence[Hashable] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Per-example means of both runs on the examples they share, and each example's weight (its score count)."""
    sums_a, counts_a, keys_a = _groups(before, groups_before)
    sums_b, counts_b, keys_b = _groups(after, groups_after)
    where_b = {k: i for i, k in enumerate(keys_b)}
    shared = [(i, where_b[k]) for i, k in enumerate(keys_a) if k in where_b]
    if not shared:
        raise ValueError("the two runs share no examples: compare runs on the same dataset and split")
    ia = np.array([i for i, _ in shared])
    ib = np.array([j for _, j in shared])
    mean_a = sums_a[ia] / counts_a[ia]
    mean_b = sums_b[ib] / counts_b[ib]
    weights = counts_a[ia] + counts_b[ib]
    return mean_a, mean_b, weights, int(counts_a[ia].sum() + counts_b[ib].sum())


def paired_difference(before: Sequence[float], after: Sequence[float],
                      groups_before: Sequence[Hashable] | None = None, groups_after: Sequence[Hashable] | None = None,
                      *, resamples: int = RESAMPLES, seed: int = SEED,
                      confidence: float = CONFIDENCE) -> Difference:
    """``mean(after) − mean(before)`` over the examples both runs scored, with a paired interval and p-value.

    Each example contributes its mean score in each run (several samples per prompt are averaged first), and
    examples are weighted by how many scores they hold. The interval resamples examples (so the pairing is kept);
    the p-value flips the sign of each example's difference at random (a paired permutation test, two-sided),
    which is exact in the limit and needs no normality.

    Args:
        before, after: one score per completion for the baseline and the compared run.
        groups_before, groups_after: the example of each score (e.g. the prompt); None = position (the i-th score
            of one run pairs with the i-th of the other).

    Raises:
        ValueError: no shared examples.
    """
    mean_a, mean_b, weights, n_obs = _paired_means(before, after, groups_before, groups_after)
    diffs = mean_b - mean_a
    w = weights / weights.sum()
    before_mean, after_mean = float(np.dot(w, mean_a)), float(np.dot(w, mean_b))
    delta = after_mean - before_mean
    n = len(diffs)
    if n == 1:
        return Difference(delta, delta, delta, 1.0, 1, n_obs, before_mean, after_mean, confidence)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n, size=(resamples, n))
    draws = (diffs[picks] * weights[picks]).sum(axis=1) / weights[picks].sum(axis=1)
    low, high = _percentiles(draws, confidence)
    signs = rng.choice(np.array([-1.0, 1.0]), size=(resamples, n))
    null = (signs * diffs * w).sum(axis=1)
    # (k + 1) / (B + 1): a permutation p-value is never exactly 0 with a finite number of resamples
    p_value = float((np.sum(np.abs(null) >= abs(delta) - 1e-12) + 1) / (resamples + 1))
    return Difference(delta, low, high, min(p_value, 1.0), n, n_obs, before_mean, after_mean, confidence)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the input order (each ≤ 1, monotone in the sorted order)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * float(p_values[i])))
        adjusted[i] = running
    return adjusted


def with_holm(differences: Sequence[Difference]) -> list[Difference]:
    """The same differences with ``p_adjusted`` set by Holm's method (several models against one baseline)."""
    from dataclasses import replace

    adjusted = holm([d.p_value for d in differences])
    return [replace(d, p_adjusted=p) for d, p in zip(differences, adjusted, strict=True)]


def variance_parts(values: Sequence[float], groups: Sequence[Hashable]) -> tuple[float, float]:
    """(between-prompt variance of prompt means, within-prompt variance of single scores) of a pilot run."""
    by_group: dict = {}
    for value, group in zip(values, groups, strict=True):
        if value is not None and math.isfinite(float(value)):
            by_group.setdefault(group, []).append(float(value))
    if len(by_group) < 2:
        raise ValueError("a pilot run needs scores on at least 2 prompts to estimate the variance")
    means = np.array([np.mean(v) for v in by_group.values()])
    within = [np.var(v, ddof=1) for v in by_group.values() if len(v) > 1]
    within_var = float(np.mean(within)) if within else 0.0
    sizes = np.array([len(v) for v in by_group.values()])
    # the spread of prompt means also holds within-prompt noise / m: take it out to get the prompts' own spread
    between_var = max(float(np.var(means, ddof=1)) - within_var * float(np.mean(1 / sizes)), 0.0)
    return between_var, within_var


def prompts_needed(values: Sequence[float], groups: Sequence[Hashable], effect: float, *,
                   samples_per_prompt: int = 1, alpha: float = 0.05, power: float = 0.8,
                   paired_correlation: float = 0.5) -> int:
    """Prompts needed so a paired comparison detects a change of ``effect`` (absolute) in the mean score.

    From a pilot run's scores (several samples per prompt when it sampled): the variance of one prompt's mean of
    ``samples_per_prompt`` samples is between + within / samples. A paired difference has variance
    2 (1 − ρ) × that, with ρ the correlation of the two models' prompt means (0.5 is a cautious default: the same
    prompt tends to provoke both models alike). n = ((z₁₋α/₂ + z_power) σ_d / effect)².
    """
    from statistics import NormalDist

    if effect <= 0:
        raise ValueError("the effect to detect must be above 0")
    between, within = variance_parts(values, groups)
    per_prompt = between + within / max(samples_per_prompt, 1)
    sd_diff = math.sqrt(max(2 * (1 - paired_correlation) * per_prompt, 1e-12))
    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)
    return max(2, math.ceil((z * sd_diff / effect) ** 2))


def verdict(diff: Difference, *, lower_is_better: bool | None = False) -> str:
    """``better`` / ``worse`` for a significant difference (``higher`` / ``lower`` for a score with no better
    direction, ``lower_is_better=None``, e.g. length), else ``noise`` (the interval covers 0)."""
    if not diff.significant:
        return "noise"
    if lower_is_better is None:
        return "higher" if diff.delta > 0 else "lower"
    return "better" if (diff.delta < 0) == lower_is_better else "worse"


def format_interval(mean: float, low: float, high: float, *, digits: int = 3, signed: bool = False) -> str:
    """``0.481 [0.452, 0.509]`` (``signed``: ``+0.012 [−0.003, +0.027]``, for differences)."""
    spec = f"{'+' if signed else ''}.{digits}f"
    return f"{mean:{spec}} [{low:{spec}}, {high:{spec}}]"


METHOD = (f"{CONFIDENCE:.0%} bootstrap intervals resampling prompts ({RESAMPLES:,} resamples, seed {SEED}); "
          "differences paired on the same prompts, p from a sign-flip permutation test")


def summary_interval(mean: float, std: float, n: int, n_obs: int | None = None, *,
                     confidence: float = CONFIDENCE) -> Interval:
    """An approximate interval from a stored mean and standard deviation when the scores themselves were not kept:
    mean ± z · sd / √n (normal approximation), ``std`` the population sd of the ``n_obs`` scores, ``n`` the
    independent examples (prompts). With several samples per prompt, the sd of all scores over √prompts is at
    least the spread of prompt means over √prompts: the interval errs on the wide side."""
    from statistics import NormalDist

    n_obs = n_obs or n
    if n < 1:
        raise ValueError("no scores to summarise")
    if n == 1:
        return Interval(mean, mean, mean, 1, n_obs, confidence)
    sd = std * math.sqrt(n_obs / (n_obs - 1)) if n_obs > 1 else std  # population → sample sd
    half = NormalDist().inv_cdf(1 - (1 - confidence) / 2) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, n_obs, confidence)


def unpaired_difference(before: Interval, after: Interval) -> Difference:
    """``after − before`` from two intervals alone (normal approximation, standard errors from the half-widths):
    for numbers whose per-example scores were not kept. On the same prompts a paired comparison would be
    narrower, so this one errs on the side of "noise"."""
    from statistics import NormalDist

    z = NormalDist().inv_cdf(1 - (1 - after.confidence) / 2)
    se = math.hypot((before.high - before.low) / (2 * z), (after.high - after.low) / (2 * z))
    delta = after.mean - before.mean
    if se == 0:
        return Difference(delta, delta, delta, 1.0, min(before.n, after.n), before.n_obs + after.n_obs,
                          before.mean, after.mean, after.confidence)
    p_value = 2 * (1 - NormalDist().cdf(abs(delta) / se))
    return Difference(delta, delta - z * se, delta + z * se, p_value, min(before.n, after.n),
                      before.n_obs + after.n_obs, before.mean, after.mean, after.confidence)


def describe(diff: Difference, *, lower_is_better: bool | None = False, digits: int = 3) -> str:
    """One line for people: ``−0.025 [−0.041, −0.009], p = 0.002, n = 21 — better`` or ``… — noise``."""
    p = diff.p_adjusted if diff.p_adjusted is not None else diff.p_value
    p_name = "p (Holm)" if diff.p_adjusted is not None else "p"
    return (f"{format_interval(diff.delta, diff.low, diff.high, digits=digits, signed=True)}, {p_name} = {p:.3g}, "
            f"n = {diff.n} — {verdict(diff, lower_is_better=lower_is_better)}")
