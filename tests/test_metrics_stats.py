"""The statistics module: intervals that cover, paired tests that detect, Holm by hand, sample sizes by formula."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from backend.metrics.stats import (
    METHOD,
    describe,
    format_interval,
    holm,
    mean_interval,
    paired_difference,
    prompts_needed,
    summary_interval,
    unpaired_difference,
    variance_parts,
    verdict,
    with_holm,
)


def test_mean_interval_matches_scipy_percentile_bootstrap():
    rng = np.random.default_rng(1)
    values = rng.normal(0.3, 0.2, size=60)
    ours = mean_interval(values, resamples=4000, seed=3)
    ref = scipy_stats.bootstrap((values,), np.mean, n_resamples=4000, method="percentile", random_state=3)
    assert ours.mean == pytest.approx(values.mean())
    assert ours.low == pytest.approx(ref.confidence_interval.low, abs=0.01)
    assert ours.high == pytest.approx(ref.confidence_interval.high, abs=0.01)
    assert (ours.n, ours.n_obs) == (60, 60)


def test_same_seed_same_interval_and_nan_left_out():
    values = [0.1, 0.4, float("nan"), 0.3, None, 0.9]
    a, b = mean_interval(values, seed=5), mean_interval(values, seed=5)
    assert a == b and a.n_obs == 4 and a.mean == pytest.approx(0.425)


def test_samples_of_one_prompt_stay_together():
    # 10 prompts, 8 samples each, almost identical within a prompt: the information is 10 prompts, not 80 draws
    rng = np.random.default_rng(0)
    prompt_means = rng.normal(0, 1, size=10)
    values = np.repeat(prompt_means, 8) + rng.normal(0, 0.01, size=80)
    groups = np.repeat(np.arange(10), 8)
    clustered = mean_interval(values, groups)
    naive = mean_interval(values)
    assert clustered.n == 10 and clustered.n_obs == 80
    assert (clustered.high - clustered.low) > 2 * (naive.high - naive.low)


def test_interval_coverage_is_about_95_percent():
    # 400 simulated studies of 40 prompts × 3 samples from a skewed distribution with a known mean
    rng = np.random.default_rng(7)
    hits = 0
    for trial in range(400):
        prompt_effect = rng.exponential(0.1, size=40)
        values = np.repeat(prompt_effect, 3) + rng.normal(0, 0.05, size=120)
        ci = mean_interval(values, np.repeat(np.arange(40), 3), resamples=1000, seed=trial)
        hits += ci.low <= 0.1 <= ci.high
    assert 0.91 <= hits / 400 <= 0.98


def test_paired_difference_detects_a_shift_and_calls_no_shift_noise():
    rng = np.random.default_rng(2)
    base = rng.normal(0.5, 0.3, size=50)
    better = base - 0.1 + rng.normal(0, 0.02, size=50)
    diff = paired_difference(base, better)
    assert diff.delta == pytest.approx(-0.1, abs=0.01) and diff.high < 0 and diff.significant
    assert diff.p_value < 0.01 and diff.n == 50 and diff.relative == pytest.approx(diff.delta / diff.before)
    same = paired_difference(base, base + rng.normal(0, 0.02, size=50))
    assert same.low < 0 < same.high and not same.significant
    assert "noise" in describe(same) and "better" in describe(diff, lower_is_better=True)


def test_pairing_is_by_example_not_by_position():
    before = [0.9, 0.1, 0.5, 0.5]
    after = [0.1, 0.8, 0.4, 0.4]  # the same prompts in another order; "c" has two samples
    diff = paired_difference(before, after, ["a", "b", "c", "c"], ["b", "a", "c", "c"])
    # a: 0.9 → 0.8, b: 0.1 → 0.1, c: 0.5 → 0.4; weights 2, 2, 4 (scores per prompt in both runs)
    assert diff.n == 3 and diff.n_obs == 8 and diff.delta == pytest.approx((-0.1 * 2 + 0 * 2 - 0.1 * 4) / 8)
    assert diff.before == pytest.approx(0.5) and diff.after == pytest.approx(0.425)


def test_sign_flip_p_value_matches_exact_enumeration():
    diffs = np.array([0.3, 0.1, -0.05, 0.2, 0.25, 0.15, -0.1, 0.05])
    observed = abs(diffs.mean())
    exact = np.mean([abs((np.array(s) * diffs).mean()) >= observed - 1e-12
                     for s in itertools.product([-1, 1], repeat=len(diffs))])
    ours = paired_difference(np.zeros(8), diffs, resamples=20000, seed=1)
    assert ours.p_value == pytest.approx(exact, abs=0.01)


def test_paired_interval_matches_a_t_interval_on_normal_data():
    rng = np.random.default_rng(4)
    d = rng.normal(0.05, 0.1, size=200)
    ours = paired_difference(np.zeros(200), d, resamples=5000)
    t = scipy_stats.t.interval(0.95, 199, loc=d.mean(), scale=scipy_stats.sem(d))
    assert ours.low == pytest.approx(t[0], abs=0.004) and ours.high == pytest.approx(t[1], abs=0.004)


def test_holm_by_hand():
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    diffs = with_holm([paired_difference([0, 0, 0, 1], [1, 1, 1, 2]), paired_difference([0, 1], [0, 1])])
    assert all(d.p_adjusted is not None for d in diffs) and "p (Holm)" in describe(diffs[0])


def test_prompts_needed_follows_the_formula():
    # pilot: 30 prompts × 4 samples; between-prompt sd 0.1, within sd 0.2
    rng = np.random.default_rng(9)
    groups = np.repeat(np.arange(30), 4)
    values = np.repeat(rng.normal(0, 0.1, size=30), 4) + rng.normal(0, 0.2, size=120)
    between, within = variance_parts(values, groups)
    n = prompts_needed(values, groups, effect=0.05, samples_per_prompt=4)
    z = 1.959964 + 0.841621
    assert n == math.ceil((z * math.sqrt(2 * 0.5 * (between + within / 4)) / 0.05) ** 2)
    assert prompts_needed(values, groups, effect=0.05, samples_per_prompt=16) < n  # more samples, fewer prompts
    with pytest.raises(ValueError, match="above 0"):
        prompts_needed(values, groups, effect=0)


def test_no_data_is_a_clear_error():
    with pytest.raises(ValueError, match="no scores"):
        mean_interval([])
    with pytest.raises(ValueError, match="share no examples"):
        paired_difference([1.0], [2.0], ["a"], ["b"])


def test_verdict_knows_the_better_side_and_says_noise():
    up = paired_difference([0.1, 0.2, 0.3, 0.4, 0.5] * 4, [0.3, 0.4, 0.5, 0.6, 0.7] * 4)
    flat = paired_difference([0.1, 0.5, 0.3, 0.2], [0.2, 0.4, 0.3, 0.2])
    assert up.significant and not flat.significant
    assert verdict(up) == "better" and verdict(up, lower_is_better=True) == "worse"
    assert verdict(up, lower_is_better=None) == "higher"  # a score with no better side (length)
    assert verdict(flat) == verdict(flat, lower_is_better=True) == "noise"
    assert describe(up).endswith("— better") and describe(up, lower_is_better=True).endswith("— worse")


def test_format_interval_and_the_method_note():
    assert format_interval(0.4812, 0.4523, 0.5091) == "0.481 [0.452, 0.509]"
    assert format_interval(0.012, -0.003, 0.027, signed=True) == "+0.012 [-0.003, +0.027]"
    assert format_interval(12.34, 10.0, 15.0, digits=1) == "12.3 [10.0, 15.0]"
    assert "resampling prompts (2,000 resamples, seed 0)" in METHOD and "95%" in METHOD


def test_summary_interval_matches_a_normal_interval_from_the_scores():
    rng = np.random.default_rng(11)
    values = rng.normal(0.4, 0.2, size=400)
    ours = summary_interval(float(values.mean()), float(values.std()), 400)
    z = scipy_stats.norm.interval(0.95, loc=values.mean(), scale=scipy_stats.sem(values))
    assert (ours.low, ours.high) == pytest.approx(z) and (ours.n, ours.n_obs) == (400, 400)
    boot = mean_interval(values)
    assert ours.low == pytest.approx(boot.low, abs=0.005) and ours.high == pytest.approx(boot.high, abs=0.005)
    # several samples per prompt: n is the prompts, so the interval is wider than the completions alone allow
    assert summary_interval(0.4, 0.2, 100, 400).high - summary_interval(0.4, 0.2, 400).high > 0
    assert summary_interval(0.5, 0.3, 1).low == 0.5


def test_unpaired_difference_combines_the_two_standard_errors():
    before, after = summary_interval(0.2, 0.1, 16), summary_interval(0.1, 0.1, 16)
    diff = unpaired_difference(before, after)
    se = math.hypot(0.1 * math.sqrt(16 / 15) / 4, 0.1 * math.sqrt(16 / 15) / 4)
    assert diff.delta == pytest.approx(-0.1) and diff.high - diff.low == pytest.approx(2 * 1.959964 * se)
    assert diff.p_value == pytest.approx(2 * scipy_stats.norm.sf(0.1 / se)) and diff.significant
    same = unpaired_difference(before, summary_interval(0.21, 0.1, 16))
    assert not same.significant and verdict(same) == "noise"


def test_two_prompts_are_never_significant():
    # the bootstrap interval of 2 identical shifts is [-1, -1] (excludes 0), but a sign-flip test of n = 2 cannot
    # give p below 0.5: the difference is not called significant
    diff = paired_difference([1.0, 1.0], [0.0, 0.0])
    assert diff.high < 0 and diff.p_value == pytest.approx(0.5, abs=0.03) and not diff.significant
