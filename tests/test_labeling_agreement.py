"""Agreement statistics on hand-worked cases (pure; no database)."""

import pytest

from labeling.agreement import (
    agreement_counts,
    annotator_report,
    campaign_alpha,
    consensus_ranking,
    fractional_ranks,
    item_agreement,
    kendall_tau_b,
    krippendorff_alpha,
    pairwise_agreement,
)

N = None


# --- pairwise agreement ------------------------------------------------------------------------------

def test_pairwise_agreement_hand_worked():
    # a = (1, 2, 3): c1>c2, c1>c3, c2>c3.  b = (2, 1, 3): c2>c1, c1>c3, c2>c3.  They agree on 2 of 3 pairs.
    assert agreement_counts([1, 2, 3], [2, 1, 3]) == (2, 3)
    assert pairwise_agreement([1, 2, 3], [2, 1, 3]) == pytest.approx(2 / 3)
    assert pairwise_agreement([1, 2, 3], [1, 2, 3]) == 1.0
    assert pairwise_agreement([1, 2, 3], [3, 2, 1]) == 0.0


def test_ties_and_flags_in_pairwise_agreement():
    # a ties c1, c2; b prefers c1: that pair counts as a disagreement. c1-c3 and c2-c3 agree → 2 of 3.
    assert agreement_counts([1, 1, 3], [1, 2, 3]) == (2, 3)
    # both tie c1, c2: no induced pair on either side, not counted → 2 of 2.
    assert agreement_counts([1, 1, 2], [1, 1, 3]) == (2, 2)
    # b flagged c3: only the c1-c2 pair is shared, and they disagree on it.
    assert agreement_counts([1, 2, 3], [2, 1, N]) == (0, 1)
    # nothing shared to compare → undefined
    assert pairwise_agreement([1, N, N], [N, 1, 2]) is None


# --- Kendall's tau-b ---------------------------------------------------------------------------------

def test_tau_b_hand_worked_without_ties():
    # (1,2,3) vs (2,1,3): C = 2 (c1c3, c2c3), D = 1 (c1c2), n0 = 3 → τ = (2 − 1) / 3 = 1/3
    assert kendall_tau_b([1, 2, 3], [2, 1, 3]) == pytest.approx(1 / 3)
    assert kendall_tau_b([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)


def test_tau_b_hand_worked_with_ties():
    # x = (1,1,2,3), y = (1,2,2,3): n0 = 6; x ties c1c2 (n1 = 1), y ties c2c3 (n2 = 1).
    # C: c1c3, c1c4, c2c4, c3c4 = 4; D = 0 → τ_b = 4 / √(5·5) = 0.8
    assert kendall_tau_b([1, 1, 2, 3], [1, 2, 2, 3]) == pytest.approx(0.8)
    assert kendall_tau_b([1, 1, 1], [1, 2, 3]) is None  # a constant ranking has no τ


@pytest.mark.parametrize("x, y", [
    ([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]),
    ([1, 1, 2, 3, 3, 4], [2, 1, 1, 3, 4, 4]),
    ([3, 1, 2, 2, 5, 4, 4], [1, 2, 3, 3, 4, 5, 5]),
])
def test_tau_b_matches_scipy(x, y):
    stats = pytest.importorskip("scipy.stats")
    assert kendall_tau_b(x, y) == pytest.approx(stats.kendalltau(x, y, variant="b").statistic)


def test_tau_b_leaves_flagged_out():
    # c3 flagged by b: compare (1,2) with (1,2) over c1, c2 only → perfect
    assert kendall_tau_b([1, 2, 3], [1, 2, N]) == pytest.approx(1.0)


# --- Krippendorff's alpha ----------------------------------------------------------------------------

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers × 12 units,
# values 1–5, missing data. Published results: nominal .743, ordinal .815, interval .849.
KRIPPENDORFF_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, N, N, N],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, N, 3],
    [N, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, N],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, N],
]


@pytest.mark.parametrize("level, expected", [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)])
def test_alpha_reproduces_krippendorff_2011(level, expected):
    assert round(krippendorff_alpha(KRIPPENDORFF_2011, level), 3) == expected


def test_alpha_small_hand_worked_case():
    # Two coders, units (1,1), (2,2), (1,2). Coincidences: o11 = 2, o22 = 2, o12 = o21 = 1; n1 = n2 = 3, n = 6.
    # nominal: D_o ∝ o12 + o21 = 2; α = 1 − (n − 1)·2 / (n1·n2·2) = 1 − 5·2/18 = 4/9
    assert krippendorff_alpha([[1, 2, 1], [1, 2, 2]], "nominal") == pytest.approx(4 / 9)
    # ordinal with two values: δ²_12 = (n1 + n2 − (n1 + n2)/2)² = 9 for both cells → same ratio, 4/9
    assert krippendorff_alpha([[1, 2, 1], [1, 2, 2]], "ordinal") == pytest.approx(4 / 9)


def test_alpha_perfect_agreement_is_one_and_systematic_disagreement_negative():
    assert krippendorff_alpha([[1, 2, 3, 1, 2, 3], [1, 2, 3, 1, 2, 3]]) == pytest.approx(1.0)
    assert krippendorff_alpha([[1, 2, 3, 1, 2, 3], [3, 2, 1, 3, 2, 1]]) < 0
    assert krippendorff_alpha([[1, N], [N, 2]]) is None  # no unit has two values
    assert krippendorff_alpha([[2, 2], [2, 2]]) is None  # a single value: undefined


def test_campaign_alpha_over_rankings():
    agree = [{"a": [1, 2, 3], "b": [1, 2, 3]}, {"a": [2, 1, 3], "b": [2, 1, 3]}]
    assert campaign_alpha(agree) == pytest.approx(1.0)
    reversed_ = [{"a": [1, 2, 3], "b": [3, 2, 1]}, {"a": [2, 1, 3], "b": [2, 3, 1]}]
    assert campaign_alpha(reversed_) < 0
    # (1, 1, 3) is read as the dense (1, 1, 2), so tie style does not count as disagreement
    assert campaign_alpha([{"a": [1, 1, 3], "b": [1, 1, 2]}, {"a": [1, 2, 3], "b": [1, 2, 3]}]) == pytest.approx(1.0)
    assert campaign_alpha([{"a": [1, 2, 3]}]) is None  # a single annotator per item: nothing to compare


# --- consensus ---------------------------------------------------------------------------------------

def test_fractional_ranks_average_tied_places():
    assert fractional_ranks([1, 1, 3]) == [1.5, 1.5, 3]
    assert fractional_ranks([1, 1, 2]) == [1.5, 1.5, 3]
    assert fractional_ranks([2, N, 1]) == [2, N, 1]


def test_consensus_is_mean_fractional_rank_then_dense():
    # c1: (1 + 1.5 + 2)/3 = 1.5; c2: (2 + 1.5 + 1)/3 = 1.5; c3 flagged by 1 of 3 (< half): (3 + 3)/2 = 3
    assert consensus_ranking([[1, 2, 3], [1, 1, 3], [2, 1, N]]) == [1, 1, 2]
    # majority order wins: two say c1 > c2 > c3, one says the reverse
    assert consensus_ranking([[1, 2, 3], [1, 2, 3], [3, 2, 1]]) == [1, 2, 3]


def test_consensus_flags_a_completion_flagged_by_half():
    assert consensus_ranking([[1, 2, N], [1, 2, 3]]) == [1, 2, N]
    assert consensus_ranking([[1, 2, N], [1, 2, 3], [1, 3, 2]]) == [1, 2, 3]  # 1 of 3 flagged: kept


# --- per annotator -----------------------------------------------------------------------------------

def test_annotator_report_spots_the_annotator_who_ranks_in_reverse():
    items = [{"ann": [1, 2, 3], "bob": [1, 2, 3], "cat": [1, 2, 3], "rev": [3, 2, 1]},
             {"ann": [2, 1, 3], "bob": [2, 1, 3], "cat": [2, 1, 3], "rev": [2, 3, 1]},
             {"ann": [1, 3, 2], "bob": [1, 2, 3], "cat": [1, 2, 3], "rev": [3, 1, 2]}]
    per, pairs = annotator_report(items)
    by = {r["annotator"]: r for r in per}
    # rev against the consensus of ann, bob, cat: exactly reversed on items 1 and 2, and on item 3
    # (3,1,2) vs (1,2,3) gives C = 1 (c2c3), D = 2 → −1/3; mean (−1 − 1 − 1/3) / 3 = −7/9
    assert by["rev"]["consensus_tau_b"] == pytest.approx(-7 / 9)
    assert by["ann"]["consensus_tau_b"] > 0 and by["bob"]["consensus_tau_b"] > 0
    # agreement with the others, pooled over 27 pairs: ann agrees 8/9 with bob and with cat, 0/9 with rev;
    # rev agrees only on c2 > c3 of item 3, with bob and with cat
    assert by["ann"]["agreement"] == pytest.approx(16 / 27)
    assert by["rev"]["agreement"] == pytest.approx(2 / 27)
    pair = {(r["annotator_a"], r["annotator_b"]): r for r in pairs}
    # ann vs bob: items 1, 2 agree fully (3/3 each), item 3 (1,3,2) vs (1,2,3): 2 of 3 → 8/9
    assert pair[("ann", "bob")]["agreement"] == pytest.approx(8 / 9)
    assert pair[("ann", "bob")]["items"] == 3
    assert pair[("bob", "rev")]["tau_b"] == pytest.approx(-7 / 9)


def test_leave_one_out_consensus_with_two_annotators_is_the_other_one():
    per, _ = annotator_report([{"a": [1, 2, 3], "b": [2, 1, 3]}])
    assert {r["annotator"]: r["consensus_tau_b"] for r in per} == {"a": pytest.approx(1 / 3), "b": pytest.approx(1 / 3)}


def test_annotator_report_tie_and_flag_rates():
    per, _ = annotator_report([{"t": [1, 1, 2, N], "u": [1, 2, 3, 4]}])
    by = {r["annotator"]: r for r in per}
    assert by["t"]["tie_rate"] == pytest.approx(1 / 3)  # 3 ranked pairs, one tied
    assert by["t"]["flag_rate"] == pytest.approx(1 / 4)
    assert by["u"]["tie_rate"] == 0.0


def test_item_agreement_pools_all_annotator_pairs():
    # a-b agree 3/3, a-c 2/3, b-c 2/3 → 7/9
    assert item_agreement({"a": [1, 2, 3], "b": [1, 2, 3], "c": [2, 1, 3]}) == pytest.approx(7 / 9)
    assert item_agreement({"a": [1, 2, 3]}) is None
