"""From a ranking to pairwise preference data (pure).

A ranking gives each completion a rank, 1 = best; equal ranks are ties. Each pair is
``(preferred, rejected)`` — the y_j, y_k of the reward-model loss −log σ(r_j − r_k). Ties give no
pair and flagged completions are removed before pairing. Example from the course: ranks (2, 1, 3)
for (c1, c2, c3) give (c2, c1), (c2, c3), (c1, c3).
"""

from dataclasses import dataclass
from itertools import combinations
from typing import Literal

Strategy = Literal["all", "best-vs-rest", "best-vs-worst"]


@dataclass(frozen=True)
class Pair:
    chosen: int  # index of the preferred completion
    rejected: int
    margin: int  # rank gap, ≥ 1


def ranking_to_pairs(ranks: list[int], flags: list[bool] | None = None, strategy: Strategy = "all") -> list[Pair]:
    """Expand one ranking into preferred-first pairs.

    Args:
        ranks: rank of each completion, 1 = best; equal values are ties.
        flags: True marks a completion as unusable; it takes part in no pair.
        strategy: ``all`` = every untied pair (C(K,2) without ties), ``best-vs-rest`` = the best against each
            other, ``best-vs-worst`` = the best against the worst.
    """
    flags = flags or [False] * len(ranks)
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
