"""From a ranking to pairwise preference data (pure).

A ranking gives each completion a rank, 1 = best; equal ranks are ties. Each pair is
``(preferred, rejected)`` — the y_j, y_k of the reward-model loss −log σ(r_j − r_k). Ties give no
pair and flagged completions are removed before pairing. Example from the course: ranks (2, 1, 3)
for (c1, c2, c3) give (c2, c1), (c2, c3), (c1, c3).

``validate_ranks`` is the one rule for what a valid ranking is (used by the workbench and the importer);
``dense_ranks`` renumbers ties so (1, 1, 3) and (1, 1, 2) mean the same; ``kept_ranks`` is what gets stored:
flagged completions dropped and, when any was flagged, the remaining ranks re-densified (ranks (1, 2, 3) with
the 2nd flagged keep (1, 2) for the other two: the flagged completion's rank is ignored, not left as a gap).
"""

from dataclasses import dataclass
from itertools import combinations, pairwise
from typing import Literal

from backend.errors import StudioError

Strategy = Literal["all", "best-vs-rest", "best-vs-worst"]


@dataclass(frozen=True)
class Pair:
    chosen: int  # index of the preferred completion
    rejected: int
    margin: int  # rank gap, ≥ 1


def ranking_to_pairs(ranks: list[int | None], flags: list[bool] | None = None, strategy: Strategy = "all") -> list[Pair]:
    """Expand one ranking into preferred-first pairs.

    Args:
        ranks: rank of each completion, 1 = best; equal values are ties.
        flags: True marks a completion as unusable; it takes part in no pair (default: the ``None`` ranks).
        strategy: ``all`` = every untied pair (C(K,2) without ties), ``best-vs-rest`` = the best against each
            other, ``best-vs-worst`` = the best against the worst.
    """
    flags = flags or [r is None for r in ranks]
    if len(flags) != len(ranks):
        raise ValueError("ranks and flags must have the same length")
    kept = sorted((r, i) for i, (r, f) in enumerate(zip(ranks, flags, strict=True)) if not f)
    if len(kept) < 2:
        return []
    if strategy == "all":
        candidates = combinations(kept, 2)
    elif strategy == "best-vs-rest":
        best = kept[0][0]
        candidates = ((b, o) for b in kept if b[0] == best for o in kept if o[0] > best)
    elif strategy == "best-vs-worst":
        best, worst = kept[0][0], kept[-1][0]
        candidates = ((b, w) for b in kept if b[0] == best for w in kept if w[0] == worst and worst > best)
    else:
        raise ValueError(f"unknown pairing strategy {strategy!r}")
    return [Pair(a[1], b[1], b[0] - a[0]) for a, b in candidates if a[0] < b[0]]


def dense_ranks(ranks: list[float | None]) -> list[int | None]:
    """Renumber ranks 1, 2, 3 … keeping order and ties; ``None`` (flagged) stays ``None``.

    Annotators may write ties as (1, 1, 2) or (1, 1, 3); both mean the same order and become (1, 1, 2), so
    margins (rank gaps) and statistics do not depend on the tie style.
    """
    levels = {r: i + 1 for i, r in enumerate(sorted({r for r in ranks if r is not None}))}
    return [None if r is None else levels[r] for r in ranks]


def validate_ranks(ranks: list[int | None], flags: list[bool] | None = None) -> None:
    """Check one ranking by position: every unflagged completion has a whole-number rank, ranks are consistent.

    Consistent means the ranks start at 1 and leave no gaps except those left by ties, in either style:
    dense (1, 1, 2) or competition (1, 1, 3). Flagged completions may carry any rank (it is ignored); when a
    completion is flagged the others' ranks may leave gaps (its own rank among them, or any): they are
    re-densified by ``kept_ranks``, so only their order and ties count.

    Raises:
        StudioError: with a message for the annotator.
    """
    flags = flags or [False] * len(ranks)
    if len(flags) != len(ranks):
        raise StudioError(f"Got {len(ranks)} ranks but {len(flags)} flags: give one of each per completion.")
    kept = [r for r, f in zip(ranks, flags, strict=True) if not f]
    if any(r is None for r in kept):
        missing = sum(r is None for r in kept)
        raise StudioError(f"Rank every completion or flag it: {missing} completion(s) have no rank.")
    if any(isinstance(r, bool) or not isinstance(r, int) or not 1 <= r <= len(ranks) for r in kept):
        raise StudioError(f"Ranks must be whole numbers from 1 (best) to {len(ranks)}.")
    ordered = sorted(kept)
    if len(kept) < len(ranks):  # something is flagged: its rank is ignored, the rest re-densified
        return
    dense = all(b - a in (0, 1) for a, b in pairwise(ordered)) and (not kept or ordered[0] == 1)
    competition = all(r == 1 + sum(o < r for o in ordered) for r in ordered)
    if not (dense or competition):
        raise StudioError(f"The ranks {ordered} have gaps: start at 1 and give each next completion the next rank; "
                          "tied completions share a rank, written (1, 1, 2) or (1, 1, 3).")


def kept_ranks(ranks: list[int | None], flags: list[bool] | None = None) -> list[int | None]:
    """The ranking as stored: validated, ``None`` for flagged completions and, when any completion is flagged,
    the others renumbered densely (order and ties kept). Without flags the ranks stay as written.

    Raises:
        StudioError: ``validate_ranks``'s message.
    """
    flags = flags or [False] * len(ranks)
    validate_ranks(ranks, flags)
    kept = [None if f else r for r, f in zip(ranks, flags, strict=True)]
    return dense_ranks(kept) if any(flags) else kept
