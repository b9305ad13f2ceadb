"""The agreement statistics of ``labeling.agreement``, vectorised over a whole campaign (``RankingMatrix``).

Same definitions, same numbers — ``agreement.py`` is the readable reference, item by item, and
tests/test_labeling_quality_fast.py checks that both give the same report on random campaigns. Here every
ranking is one row of an array and every statistic is a handful of numpy operations over all rows at once,
so 100,000 rankings take a fraction of a second instead of many seconds of per-pair Python loops.

Sums are accumulated in item order (``np.bincount`` adds sequentially, like the reference's ``+=``), so even
float means match the reference to the last bit. Consensus scores are compared unrounded: fractional ranks are
multiples of ½, so their sums are exact and equal means are equal floats.
"""

from statistics import median
from typing import Any

import numpy as np

from backend.metrics import stats
from labeling.agreement import Level, alpha_from_coincidences
from labeling.ranking_matrix import RankingMatrix

FLAG_QUORUM = 0.5  # as agreement.consensus_ranking: flagged by at least half of the annotators → flagged


def pair_signs(ranks: np.ndarray) -> np.ndarray:
    """``agreement.signs`` of every row: (rows, K(K−1)/2) in (0,1), (0,2) … (1,2) … order; NaN = not comparable."""
    first, second = np.triu_indices(ranks.shape[1], 1)
    return np.sign(ranks[:, second] - ranks[:, first])


def compare(sa: np.ndarray, sb: np.ndarray) -> tuple[np.ndarray, ...]:
    """``agreement.compare`` row by row: (agree, compared, discordant, ties_a, ties_b, shared) int arrays."""
    both = ~np.isnan(sa) & ~np.isnan(sb)
    stated = both & ((sa != 0) | (sb != 0))
    return ((stated & (sa == sb)).sum(axis=1), stated.sum(axis=1), (both & (sa * sb < 0)).sum(axis=1),
            (both & (sa == 0)).sum(axis=1), (both & (sb == 0)).sum(axis=1), both.sum(axis=1))


def tau_b(agree, discordant, ties_a, ties_b, shared) -> np.ndarray:
    """Kendall's τ-b per row; NaN where undefined (a constant side, fewer than two shared completions)."""
    denominator = np.sqrt(((shared - ties_a) * (shared - ties_b)).astype(float))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (agree - discordant) / denominator, np.nan)


def fractional_ranks(ranks: np.ndarray) -> np.ndarray:
    """``agreement.fractional_ranks`` of every row: tied places share the mean of their positions."""
    below = (ranks[:, None, :] < ranks[:, :, None]).sum(axis=2)
    equal = (ranks[:, None, :] == ranks[:, :, None]).sum(axis=2)
    return np.where(np.isnan(ranks), np.nan, below + (equal + 1) / 2)


def dense_ranks(scores: np.ndarray) -> np.ndarray:
    """``pairs.dense_ranks`` of every row (1, 2, 3 … keeping ties; NaN stays NaN)."""
    k = scores.shape[1]
    earlier = np.tril(np.ones((k, k), dtype=bool), -1)  # [c, c'] True when c' < c
    repeated = ((scores[:, :, None] == scores[:, None, :]) & earlier).any(axis=2)  # value seen at a lower index
    distinct_below = ((scores[:, None, :] < scores[:, :, None]) & ~repeated[:, None, :]).sum(axis=2)
    return np.where(np.isnan(scores), np.nan, distinct_below + 1.0)


def consensus_scores(frac_sum: np.ndarray, given: np.ndarray, judges: np.ndarray) -> np.ndarray:
    """Mean fractional rank per completion; NaN when nobody ranked it or at least half flagged it."""
    flagged = judges[:, None] - given
    with np.errstate(invalid="ignore", divide="ignore"):
        score = frac_sum / given
    return np.where((given == 0) | (flagged >= FLAG_QUORUM * judges[:, None] - 1e-12), np.nan, score)


def _sequential_sum(groups: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    return np.bincount(groups, weights=values, minlength=size) if len(groups) else np.zeros(size)


def _share(x: float, n: float) -> float | None:
    return float(x) / float(n) if n else None


def _blocks(item: np.ndarray, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Start row and number of rankings of each item (rows are sorted by item)."""
    sizes = np.bincount(item, minlength=n_items)
    return np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64), sizes


def same_item_pairs(item: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row pairs (x, y), x < y, of the rankings of one item, in item order."""
    xs, ys = [], []
    for gap in range(1, len(item)):
        together = np.flatnonzero(item[gap:] == item[:-gap])
        if not len(together):
            break  # rows are sorted by item: no item has more than ``gap`` rankings
        xs.append(together)
        ys.append(together + gap)
    if not xs:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    x, y = np.concatenate(xs), np.concatenate(ys)
    order = np.argsort(item[x], kind="stable")
    return x[order], y[order]


def annotator_tables(m: RankingMatrix) -> tuple[list[dict], list[dict]]:
    """``agreement.annotator_report`` over the whole campaign: (per annotator, per annotator pair) rows."""
    n_ann, n_items = len(m.annotators), len(m.item_ids)
    signs = pair_signs(m.ranks)
    real = m.real[m.item]
    items = np.bincount(m.annotator, minlength=n_ann)
    completions = np.bincount(m.annotator, weights=real.sum(axis=1), minlength=n_ann)
    flagged = np.bincount(m.annotator, weights=(real & np.isnan(m.ranks)).sum(axis=1), minlength=n_ann)
    ranked_pairs = np.bincount(m.annotator, weights=(~np.isnan(signs)).sum(axis=1), minlength=n_ann)
    tied = np.bincount(m.annotator, weights=(signs == 0).sum(axis=1), minlength=n_ann)

    # every two annotators of an item
    x, y = same_item_pairs(m.item)
    agree, compared, discordant, ties_a, ties_b, shared = compare(signs[x], signs[y])
    agree_with_others = _sequential_sum(m.annotator[x], agree, n_ann) + _sequential_sum(m.annotator[y], agree, n_ann)
    compared_with_others = (_sequential_sum(m.annotator[x], compared, n_ann)
                            + _sequential_sum(m.annotator[y], compared, n_ann))
    a, b = np.minimum(m.annotator[x], m.annotator[y]), np.maximum(m.annotator[x], m.annotator[y])
    pair_id = a * n_ann + b
    taus = tau_b(agree, discordant, ties_a, ties_b, shared)
    has_tau = ~np.isnan(taus)
    pair_items = np.bincount(pair_id, minlength=n_ann * n_ann)
    pair_agree = _sequential_sum(pair_id, agree, n_ann * n_ann)
    pair_compared = _sequential_sum(pair_id, compared, n_ann * n_ann)
    pair_tau_sum = _sequential_sum(pair_id[has_tau], taus[has_tau], n_ann * n_ann)
    pair_tau_n = np.bincount(pair_id[has_tau], minlength=n_ann * n_ann)

    # each annotator against the leave-one-out consensus of the others on the item (items with 2+ annotators)
    starts, sizes = _blocks(m.item, n_items)
    frac = fractional_ranks(m.ranks)
    present = ~np.isnan(frac)
    judged = sizes > 0
    frac_sum = np.zeros((n_items, m.ranks.shape[1]))
    given = np.zeros((n_items, m.ranks.shape[1]))
    if len(m.item):
        frac_sum[judged] = np.add.reduceat(np.where(present, frac, 0.0), starts[judged], axis=0)
        given[judged] = np.add.reduceat(present.astype(float), starts[judged], axis=0)
    shared_rows = sizes[m.item] >= 2
    rows = np.flatnonzero(shared_rows)
    others_sum = frac_sum[m.item[rows]] - np.where(present[rows], frac[rows], 0.0)
    others_given = given[m.item[rows]] - present[rows]
    reference = pair_signs(consensus_scores(others_sum, others_given, sizes[m.item[rows]] - 1.0))
    c_agree, c_compared, c_disc, c_ties_a, c_ties_b, c_shared = compare(signs[rows], reference)
    c_taus = tau_b(c_agree, c_disc, c_ties_a, c_ties_b, c_shared)
    c_has = ~np.isnan(c_taus)
    who = m.annotator[rows]
    c_agree_sum = _sequential_sum(who, c_agree, n_ann)
    c_compared_sum = _sequential_sum(who, c_compared, n_ann)
    c_tau_sum = _sequential_sum(who[c_has], c_taus[c_has], n_ann)
    c_tau_n = np.bincount(who[c_has], minlength=n_ann)

    annotators = [{"annotator": name, "items": int(items[i]),
                   "agreement": _share(agree_with_others[i], compared_with_others[i]),
                   "consensus_agreement": _share(c_agree_sum[i], c_compared_sum[i]),
                   "consensus_tau_b": _share(c_tau_sum[i], c_tau_n[i]),
                   "tie_rate": _share(tied[i], ranked_pairs[i]) or 0.0,
                   "flag_rate": _share(flagged[i], completions[i]) or 0.0} for i, name in enumerate(m.annotators)]
    pairs = [{"annotator_a": m.annotators[p // n_ann], "annotator_b": m.annotators[p % n_ann],
              "items": int(pair_items[p]), "agreement": _share(pair_agree[p], pair_compared[p]),
              "tau_b": _share(pair_tau_sum[p], pair_tau_n[p])} for p in np.flatnonzero(pair_items)]
    return annotators, pairs


def campaign_alpha(m: RankingMatrix, level: Level = "ordinal") -> float | None:
    """``agreement.campaign_alpha`` over the items ranked by two or more annotators.

    A unit is one completion of one item, its values the annotators' dense ranks. The coincidence matrix gets
    1 / (values in the unit − 1) for every ordered pair of values of a unit, added unit by unit as the reference
    does, so α is the same to the last bit.
    """
    n_items, width = len(m.item_ids), m.ranks.shape[1]
    if not len(m.item):
        return None
    dense = dense_ranks(m.ranks)
    _, sizes = _blocks(m.item, n_items)
    x, y = same_item_pairs(m.item)
    keep = sizes[m.item[x]] >= 2
    x, y = x[keep], y[keep]
    present = ~np.isnan(dense)
    values_per_unit = np.zeros((n_items, width))
    np.add.at(values_per_unit, m.item, present.astype(float))
    # every (row pair, completion) both ranked, in both orders: (unit, value of one, value of the other)
    pair, comp = np.nonzero(present[x] & present[y])
    unit = m.item[x[pair]] * width + comp
    first, second = dense[x[pair], comp], dense[y[pair], comp]
    unit = np.concatenate([unit, unit])
    first, second = np.concatenate([first, second]), np.concatenate([second, first])
    order = np.argsort(unit, kind="stable")
    unit, first, second = unit[order], first[order], second[order]
    if not len(unit):
        return None
    values = np.unique(np.concatenate([first, second]))
    if len(values) < 2:
        return None
    weight = 1 / (values_per_unit.reshape(-1)[unit] - 1)
    cell = np.searchsorted(values, first) * len(values) + np.searchsorted(values, second)
    o = np.bincount(cell, weights=weight, minlength=len(values) ** 2).reshape(len(values), len(values))
    return alpha_from_coincidences(o.tolist(), values.tolist(), level)


def source_tables(m: RankingMatrix) -> tuple[list[dict], list[dict]]:
    """``quality.source_stats``: per-source summary and rank-position counts from each item's consensus."""
    n_items, width = len(m.item_ids), m.ranks.shape[1]
    starts, sizes = _blocks(m.item, n_items)
    judged = np.flatnonzero(sizes > 0)
    if not len(judged):
        return [], []
    frac = fractional_ranks(m.ranks)
    present = ~np.isnan(frac)
    frac_sum = np.add.reduceat(np.where(present, frac, 0.0), starts[judged], axis=0)
    given = np.add.reduceat(present.astype(float), starts[judged], axis=0)
    consensus = dense_ranks(consensus_scores(frac_sum, given, sizes[judged].astype(float)))
    source_of = m.source_of[judged]
    real = source_of >= 0
    n_sources, ranks_of = len(m.sources), np.where(np.isnan(consensus), 0, consensus).astype(np.int64)
    # counts[source, rank] with rank 0 = flagged (F)
    counts = np.bincount((source_of * (width + 1) + ranks_of)[real], minlength=n_sources * (width + 1))
    counts = counts.reshape(n_sources, width + 1)

    # duels: consensus pairs between completions of different sources (ties and flags give none)
    first, second = np.triu_indices(width, 1)
    ca, cb = consensus[:, first], consensus[:, second]
    sa, sb = source_of[:, first], source_of[:, second]
    duel = ~np.isnan(ca) & ~np.isnan(cb) & (ca != cb) & (sa != sb) & (sa >= 0) & (sb >= 0)
    winner = np.where(ca < cb, sa, sb)
    row = np.repeat(np.arange(len(judged))[:, None], len(first), axis=1)
    wins = np.zeros((n_sources, len(judged)))
    duels = np.zeros((n_sources, len(judged)))
    np.add.at(wins, (winner[duel], row[duel]), 1.0)
    np.add.at(duels, (sa[duel], row[duel]), 1.0)
    np.add.at(duels, (sb[duel], row[duel]), 1.0)

    # the win rate with its 95 % interval, resampling items (the duels of one item are not independent)
    fought = [np.flatnonzero(duels[s]) for s in range(n_sources)]
    with_duels = [s for s in range(n_sources) if len(fought[s])]
    intervals = dict(zip(with_duels, stats.grouped_mean_intervals(
        [(wins[s, fought[s]], duels[s, fought[s]]) for s in with_duels]), strict=True))
    summary, positions = [], []
    for s, source in enumerate(m.sources):
        total = int(counts[s].sum())
        if not total:
            continue
        n_ranked = int(counts[s, 1:].sum())
        win = intervals.get(s)
        summary.append({"source": source, "completions": total,
                        "mean_rank": int((np.arange(1, width + 1) * counts[s, 1:]).sum()) / n_ranked
                        if n_ranked else None,
                        "first_place": int(counts[s, 1]) / total if width else 0 / total,
                        "flag_rate": int(counts[s, 0]) / total,
                        "win_rate": win.mean if win else None, "win_rate_low": win.low if win else None,
                        "win_rate_high": win.high if win else None, "duels": int(duels[s].sum())})
        labels = {("F" if r == 0 else str(r)): int(n) for r, n in enumerate(counts[s]) if n}
        positions.extend({"source": source, "rank": r, "count": n}
                         for r, n in sorted(labels.items(), key=lambda kv: (kv[0] == "F", kv[0])))
    return summary, positions


def time_rows(m: RankingMatrix) -> tuple[list[dict], dict[str, float]]:
    """``{annotator, item_id, seconds}`` per ranking, and each annotator's median seconds per item."""
    names, item_ids, seconds = m.annotators, m.item_ids[m.item].tolist(), m.seconds.tolist()
    rows = [{"annotator": names[a], "item_id": i, "seconds": s}
            for a, i, s in zip(m.annotator.tolist(), item_ids, seconds, strict=True)]
    order = np.argsort(m.annotator, kind="stable")
    bounds = np.searchsorted(m.annotator[order], np.arange(len(names) + 1))
    by_name = m.seconds[order].tolist()
    medians = {name: median(by_name[bounds[i]:bounds[i + 1]]) for i, name in enumerate(names)}
    return rows, medians


def too_fast_counts(m: RankingMatrix, seconds_per_completion: float) -> dict[str, int]:
    """Per annotator, the judgements quicker than ``seconds_per_completion`` × the item's completions (0 = off)."""
    if not seconds_per_completion or not len(m.item):
        return dict.fromkeys(m.annotators, 0)
    completions = (m.source_of >= 0).sum(axis=1)[m.item]
    fast = m.seconds < seconds_per_completion * completions
    counts = np.bincount(m.annotator[fast], minlength=len(m.annotators))
    return {name: int(n) for name, n in zip(m.annotators, counts, strict=True)}


def report_tables(m: RankingMatrix, too_fast_seconds: float = 0.0) -> dict[str, Any]:
    """Everything ``quality.quality_report`` shows, from the arrays."""
    _, sizes = _blocks(m.item, len(m.item_ids))
    annotators, pairs = annotator_tables(m)
    times, medians = time_rows(m)
    sources, source_ranks = source_tables(m)
    return {"items_judged": int((sizes > 0).sum()), "items_shared": int((sizes >= 2).sum()),
            "rankings": len(m.item), "alpha": campaign_alpha(m),
            "annotators": [{**row, "median_seconds": medians[row["annotator"]]} for row in annotators],
            "annotator_pairs": pairs, "sources": sources, "source_ranks": source_ranks, "times": times,
            "too_fast": too_fast_counts(m, too_fast_seconds)}
