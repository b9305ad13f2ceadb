"""Agreement between annotators who ranked the same items (pure; no database).

A *ranking* here is a list with one entry per completion of an item, in the item's completion order:
the rank (1 = best, equal = tie) or ``None`` when the annotator flagged the completion (F) — a flagged
completion is *missing* for every statistic. An *item* is a mapping ``annotator → ranking``.

Statistics (each returns ``None`` when it is undefined, e.g. nothing to compare):

- ``pairwise_agreement(a, b)``: share of induced pairs on which two annotators agree. The pairs compared are
  those of completions both ranked where at least one of them states a preference; they agree when both
  prefer the same completion. A tie against a preference counts as a disagreement; a tie against a tie
  induces no pair (``ranking_to_pairs`` gives none) and is not counted.
- ``kendall_tau_b(a, b)``: Kendall's τ-b with ties, over completions both ranked; matches
  ``scipy.stats.kendalltau`` (variant ``b``).
- ``krippendorff_alpha(data, level)``: Krippendorff's α for a coders × units matrix with missing values
  (Krippendorff 2011, "Computing Krippendorff's Alpha-Reliability"), nominal / ordinal / interval.
  ``campaign_alpha`` applies it to rankings: a unit is one completion of one item, a value its dense rank.
- ``consensus_ranking(rankings)``: the rule — a completion flagged by at least ``flag_quorum`` (half) of the
  annotators is flagged; every other completion scores the mean of its *fractional* ranks (tied places
  averaged, so (1, 1, 2) and (1, 1, 3) both count as 1.5, 1.5, 3) over the annotators who ranked it; the
  scores become dense ranks, equal scores tie.
- ``annotator_report``: per annotator (agreement with the others, agreement and τ-b
  against the leave-one-out consensus of the others, tie and flag rates) and per annotator pair, so an
  admin can spot someone who misread the instructions (e.g. ranked in reverse: τ-b near −1).
"""

from collections import defaultdict
from collections.abc import Mapping, Sequence
from itertools import combinations
from math import sqrt
from typing import Literal

Ranking = Sequence[float | None]
Item = Mapping[str, Ranking]
Level = Literal["nominal", "ordinal", "interval"]


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def signs(ranks: Ranking) -> tuple[int | None, ...]:
    """The preference of every completion pair (i < j): +1 when i is better (lower rank), −1 when j is,
    0 for a tie, None when either is flagged. Computed once per ranking, compared many times."""
    k = len(ranks)
    return tuple(None if ranks[i] is None or ranks[j] is None else _sign(ranks[j] - ranks[i])
                 for i in range(k) for j in range(i + 1, k))


def compare(sa: Sequence[int | None], sb: Sequence[int | None]) -> tuple[int, int, int, int, int, int]:
    """``(agree, compared, discordant, ties_a, ties_b, shared)`` over the pairs both rankings cover.

    ``agree`` (same strict preference) is also τ's concordant count; ``compared`` leaves out pairs tied on
    both sides; ``shared`` is n₀, the pairs of completions both ranked.
    """
    if len(sa) != len(sb):
        raise ValueError("both rankings must cover the same completions")
    agree = compared = discordant = ties_a = ties_b = shared = 0
    for x, y in zip(sa, sb, strict=True):
        if x is None or y is None:
            continue
        shared += 1
        ties_a += x == 0
        ties_b += y == 0
        if x or y:
            compared += 1
            agree += x == y
            discordant += x * y < 0
    return agree, compared, discordant, ties_a, ties_b, shared


def _tau_b(agree: int, discordant: int, ties_a: int, ties_b: int, shared: int) -> float | None:
    denominator = sqrt((shared - ties_a) * (shared - ties_b))
    return (agree - discordant) / denominator if denominator else None


def agreement_counts(a: Ranking, b: Ranking) -> tuple[int, int]:
    """``(agreeing, compared)`` induced pairs of two rankings of one item (see the module docstring)."""
    if len(a) != len(b):
        raise ValueError("both rankings must cover the same completions")
    agree, compared, *_ = compare(signs(a), signs(b))
    return agree, compared


def pairwise_agreement(a: Ranking, b: Ranking) -> float | None:
    """Share of induced pairs on which two annotators agree (None: no pair to compare)."""
    agree, compared = agreement_counts(a, b)
    return agree / compared if compared else None


def kendall_tau_b(a: Ranking, b: Ranking) -> float | None:
    """Kendall's τ-b = (C − D) / √((n₀ − n₁)(n₀ − n₂)) over completions both ranked.

    C / D count concordant / discordant pairs, n₀ all pairs, n₁ / n₂ pairs tied in ``a`` / ``b``.
    None when a side is constant (every completion tied) or fewer than two completions are shared.
    """
    if len(a) != len(b):
        raise ValueError("both rankings must cover the same completions")
    agree, _, discordant, ties_a, ties_b, shared = compare(signs(a), signs(b))
    return _tau_b(agree, discordant, ties_a, ties_b, shared)


def fractional_ranks(ranks: Ranking) -> list[float | None]:
    """Positions 1..m of the ranked completions, tied ones sharing the mean of their positions."""
    present = sorted(r for r in ranks if r is not None)
    first: dict[float, int] = {}
    count: dict[float, int] = defaultdict(int)
    for pos, r in enumerate(present, start=1):
        first.setdefault(r, pos)
        count[r] += 1
    return [None if r is None else first[r] + (count[r] - 1) / 2 for r in ranks]


def consensus_ranking(rankings: Sequence[Ranking], flag_quorum: float = 0.5) -> list[int | None]:
    """One ranking for an item judged by several annotators (rule in the module docstring)."""
    if not rankings:
        return []
    k = len(rankings[0])
    if any(len(r) != k for r in rankings):
        raise ValueError("all rankings must cover the same completions")
    return _consensus([fractional_ranks(r) for r in rankings], flag_quorum)


def _consensus(fractional: Sequence[Sequence[float | None]], flag_quorum: float = 0.5) -> list[int | None]:
    scores: list[float | None] = []
    for c in range(len(fractional[0])):
        given = [f[c] for f in fractional if f[c] is not None]
        flagged = len(fractional) - len(given)
        scores.append(None if not given or flagged >= flag_quorum * len(fractional) - 1e-12
                      else round(sum(given) / len(given), 9))
    levels = {s: i for i, s in enumerate(sorted({s for s in scores if s is not None}), start=1)}
    return [None if s is None else levels[s] for s in scores]


def _delta2(level: Level, values: list[float], marginals: list[float]):
    """Squared difference function δ²(c, k) by value index (Krippendorff 2011, section C)."""
    if level == "nominal":
        return lambda c, k: float(c != k)
    if level == "interval":
        return lambda c, k: (values[c] - values[k]) ** 2
    if level == "ordinal":
        def ordinal(c: int, k: int) -> float:
            lo, hi = min(c, k), max(c, k)
            return (sum(marginals[lo:hi + 1]) - (marginals[lo] + marginals[hi]) / 2) ** 2
        return ordinal
    raise ValueError(f"unknown level of measurement {level!r}")


def krippendorff_alpha(data: Sequence[Sequence[float | None]], level: Level = "ordinal") -> float | None:
    """Krippendorff's α = 1 − (n − 1) · Σ o_ck δ²_ck / Σ n_c n_k δ²_ck for a coders × units matrix.

    ``None`` marks a missing value; units with fewer than two values are not pairable and are left out.
    Returns None when α is undefined (no pairable unit, or a single value used throughout).
    """
    n_units = len(data[0]) if data else 0
    return alpha_from_units([[row[u] for row in data if row[u] is not None] for u in range(n_units)], level)


def alpha_from_units(units: Sequence[Sequence[float]], level: Level = "ordinal") -> float | None:
    """Krippendorff's α from the values each unit received (any number of coders per unit)."""
    units = [u for u in units if len(u) >= 2]
    values = sorted({v for u in units for v in u})
    if len(values) < 2:
        return None
    index = {v: i for i, v in enumerate(values)}
    o = [[0.0] * len(values) for _ in values]  # coincidence matrix
    for unit in units:
        weight = 1 / (len(unit) - 1)
        for i, j in ((i, j) for i in range(len(unit)) for j in range(len(unit)) if i != j):
            o[index[unit[i]]][index[unit[j]]] += weight
    return alpha_from_coincidences(o, values, level)


def alpha_from_coincidences(o: list[list[float]], values: list[float], level: Level = "ordinal") -> float | None:
    """Krippendorff's α from the coincidence matrix ``o`` over the sorted ``values`` (shared with the
    vectorised ``agreement_arrays.campaign_alpha``)."""
    marginals = [sum(row) for row in o]
    n = sum(marginals)
    delta2 = _delta2(level, values, marginals)
    cells = [(c, k) for c in range(len(values)) for k in range(len(values))]
    observed = sum(o[c][k] * delta2(c, k) for c, k in cells)
    expected = sum(marginals[c] * marginals[k] * delta2(c, k) for c, k in cells)
    return 1 - (n - 1) * observed / expected if expected else None


def campaign_alpha(items: Sequence[Item], level: Level = "ordinal") -> float | None:
    """α over every (item, completion) unit, the value being the annotator's dense rank (flags missing)."""
    from labeling.pairs import dense_ranks

    units: list[list[float]] = []
    for item in items:
        if len(item) < 2:
            continue
        dense = [dense_ranks(list(r)) for r in item.values()]
        units.extend([d[c] for d in dense if d[c] is not None] for c in range(len(dense[0])))
    return alpha_from_units(units, level)


def item_agreement(item: Item) -> float | None:
    """Pooled pairwise agreement among all annotators of one item (None with fewer than two)."""
    vectors = {a: signs(r) for a, r in item.items()}
    agree = compared = 0
    for a, b in combinations(sorted(vectors), 2):
        x, n, *_ = compare(vectors[a], vectors[b])
        agree, compared = agree + x, compared + n
    return agree / compared if compared else None


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def annotator_report(items: Sequence[Item]) -> tuple[list[dict], list[dict]]:
    """``(per annotator, per annotator pair)`` rows in one pass over the items.

    Per annotator: items, agreement with the others, agreement and τ-b against the leave-one-out consensus
    of the others (so an outlier does not pull the reference towards themself; with two annotators it is
    simply the other one), tie rate (share of their ranked pairs that are ties) and flag rate.
    Per pair: shared items, pooled pairwise agreement, mean τ-b over shared items.
    """
    per: dict[str, dict] = defaultdict(lambda: defaultdict(float, taus=[]))
    pairs: dict[tuple[str, str], dict] = defaultdict(lambda: defaultdict(float, taus=[]))
    for item in items:
        vectors = {a: signs(r) for a, r in item.items()}
        fractional = {a: fractional_ranks(r) for a, r in item.items()} if len(item) > 2 else {}
        for a, vec in vectors.items():
            row = per[a]
            row["items"] += 1
            row["completions"] += len(item[a])
            row["flagged"] += sum(r is None for r in item[a])
            row["ranked_pairs"] += sum(x is not None for x in vec)
            row["tied"] += sum(x == 0 for x in vec)
        for a, b in combinations(sorted(vectors), 2):
            agree, compared, discordant, ties_a, ties_b, shared = compare(vectors[a], vectors[b])
            for who in (per[a], per[b], pairs[(a, b)]):
                who["agree"] += agree
                who["compared"] += compared
            pairs[(a, b)]["items"] += 1
            if (tau := _tau_b(agree, discordant, ties_a, ties_b, shared)) is not None:
                pairs[(a, b)]["taus"].append(tau)
        if len(vectors) < 2:
            continue
        for a, vec in vectors.items():
            others = [b for b in vectors if b != a]
            reference = vectors[others[0]] if len(others) == 1 else \
                signs(_consensus([fractional[b] for b in others]))
            agree, compared, discordant, ties_a, ties_b, shared = compare(vec, reference)
            per[a]["c_agree"] += agree
            per[a]["c_compared"] += compared
            if (tau := _tau_b(agree, discordant, ties_a, ties_b, shared)) is not None:
                per[a]["taus"].append(tau)

    def share(x: float, n: float) -> float | None:
        return x / n if n else None

    annotators = [{"annotator": a, "items": int(r["items"]), "agreement": share(r["agree"], r["compared"]),
                   "consensus_agreement": share(r["c_agree"], r["c_compared"]), "consensus_tau_b": _mean(r["taus"]),
                   "tie_rate": share(r["tied"], r["ranked_pairs"]) or 0.0,
                   "flag_rate": share(r["flagged"], r["completions"]) or 0.0} for a, r in sorted(per.items())]
    pair_rows = [{"annotator_a": a, "annotator_b": b, "items": int(r["items"]),
                  "agreement": share(r["agree"], r["compared"]), "tau_b": _mean(r["taus"])}
                 for (a, b), r in sorted(pairs.items())]
    return annotators, pair_rows
