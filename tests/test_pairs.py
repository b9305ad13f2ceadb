"""Ranking → preference pairs (pure), with the course's worked example."""

from math import comb

import pytest

from backend.errors import StudioError
from labeling.pairs import Pair, dense_ranks, kept_ranks, ranking_to_pairs, validate_ranks


def as_tuples(pairs):
    return [(p.chosen, p.rejected) for p in pairs]


def test_course_example_ranks_2_1_3():
    # completions c1, c2, c3 ranked 2, 1, 3 → (c2, c1), (c2, c3), (c1, c3)
    assert sorted(as_tuples(ranking_to_pairs([2, 1, 3]))) == sorted([(1, 0), (1, 2), (0, 2)])


@pytest.mark.parametrize("k", [2, 3, 4, 5, 9])
def test_all_pairs_count_is_k_choose_2(k):
    assert len(ranking_to_pairs(list(range(1, k + 1)))) == comb(k, 2)


def test_ties_give_no_pair_and_margin_is_rank_gap():
    pairs = ranking_to_pairs([1, 1, 3])
    assert sorted(as_tuples(pairs)) == [(0, 2), (1, 2)]
    assert all(p.margin == 2 for p in pairs)


def test_flagged_completions_are_removed_before_pairing():
    assert as_tuples(ranking_to_pairs([1, 2, 3], flags=[False, True, False])) == [(0, 2)]
    assert ranking_to_pairs([1, 2], flags=[True, False]) == []


def test_best_vs_rest_and_best_vs_worst():
    assert sorted(as_tuples(ranking_to_pairs([3, 1, 2, 4], strategy="best-vs-rest"))) == [(1, 0), (1, 2), (1, 3)]
    assert ranking_to_pairs([3, 1, 2, 4], strategy="best-vs-worst") == [Pair(1, 3, 3)]


def test_preferred_is_always_first():
    for p in ranking_to_pairs([4, 2, 3, 1]):
        assert [4, 2, 3, 1][p.chosen] < [4, 2, 3, 1][p.rejected]


def test_flagged_none_ranks_are_left_out_by_default():
    assert as_tuples(ranking_to_pairs([1, None, 2])) == [(0, 2)]


def test_best_vs_rest_with_tied_best_and_best_vs_worst_with_tied_worst():
    assert sorted(as_tuples(ranking_to_pairs([1, 1, 2], strategy="best-vs-rest"))) == [(0, 2), (1, 2)]
    assert sorted(as_tuples(ranking_to_pairs([1, 2, 2], strategy="best-vs-worst"))) == [(0, 1), (0, 2)]
    assert ranking_to_pairs([1, 1, 1], strategy="best-vs-worst") == []  # all tied: no pair


@pytest.mark.parametrize("ranks, dense", [
    ([1, 1, 3], [1, 1, 2]),
    ([2, 1, 3], [2, 1, 3]),
    ([1, None, 3, 3], [1, None, 2, 2]),
])
def test_dense_ranks(ranks, dense):
    assert dense_ranks(ranks) == dense


@pytest.mark.parametrize("ranks, flags", [
    ([1, 2, 3], None), ([1, 1, 2], None), ([1, 1, 3], None), ([2, 1, 2], None),
    ([1, 99, 2], [False, True, False]),  # a flagged completion's rank is ignored
    ([None, None], [True, True]),  # everything flagged: valid, gives no pair
    ([1, 2, 3], [False, True, False]),  # the 2nd flagged leaves (1, 3): re-densified, not a gap
    ([1, 4, None, 4], [False, False, True, False]),
])
def test_valid_rankings(ranks, flags):
    validate_ranks(ranks, flags)


@pytest.mark.parametrize("ranks, flags, message", [
    ([1, None, 2], None, "no rank"),
    ([1, 2, 4], None, "whole numbers"),
    ([1, 2.5, 3], None, "whole numbers"),
    ([1, True, 2], None, "whole numbers"),
    ([1, 3, 3], None, "gaps"),  # the two tied completions are both 2nd: (1, 2, 2)
    ([2, 3, 3], None, "gaps"),
    ([1, 3], None, "whole numbers"),  # rank 3 out of 2 completions
    ([1, 2], [False], "flags"),
])
def test_invalid_rankings(ranks, flags, message):
    with pytest.raises(StudioError, match=message):
        validate_ranks(ranks, flags)


@pytest.mark.parametrize("ranks, flags, kept", [
    ([1, 2, 3], [False, True, False], [1, None, 2]),  # the flagged completion's rank is ignored
    ([1, None, 3, 3], [False, True, False, False], [1, None, 2, 2]),
    ([3, 1, 1, 2], [False, False, False, True], [2, 1, 1, None]),
    ([1, 1, 3], None, [1, 1, 3]),  # nothing flagged: stored as written (ties in either style)
    ([None, None], [True, True], [None, None]),
])
def test_kept_ranks_drop_flags_and_re_densify(ranks, flags, kept):
    assert kept_ranks(ranks, flags) == kept


def test_kept_ranks_still_refuse_gaps_and_out_of_range_ranks():
    with pytest.raises(StudioError, match="gaps"):
        kept_ranks([1, 3, 3])
    with pytest.raises(StudioError, match="whole numbers from 1 \\(best\\) to 3"):
        kept_ranks([1, 4, 2], [False, False, True])
