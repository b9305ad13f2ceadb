"""Which model wins: Bradley–Terry ratings of completion sources from every pairwise outcome, with 95 % intervals.

A *source* is what made a completion (model or adapter × decoding settings: the completion's source label; imported
completions are ``imported``). Every judgement of an item gives one outcome per pair of its completions that come
from different sources: a win, a loss, or a tie (counted half a win each way); a flagged completion gives none.
Outcomes of all judgements count (as Chatbot Arena counts votes), not a per-item consensus.

- **Ratings** (``fit_ratings``): the Bradley–Terry maximum-likelihood fit, P(a beats b) = σ(θa − θb), by Newton's
  method on the summed outcomes. Each source also plays ``PRIOR_GAMES`` virtual tied game against a phantom of
  rating 0, which keeps a source that never lost finite and pulls sources with few comparisons towards the middle
  (it fades as comparisons accumulate). Shown on the Elo scale: 1000 + 400/ln 10 · (θ − mean θ), so 1000 is the
  average source and a 100-point gap means the better one wins 64 % of their duels.
- **Intervals** (``leaderboard``): items are resampled with replacement (the outcomes of one item, and of the
  judgements of one item, are not independent), the ratings refitted each time, and the 2.5/97.5 percentiles kept:
  1,000 resamples by default, seeded (same data, same interval). Unlike an online Elo, nothing depends on the order
  the votes came in.
- **Win-rate matrix**: the observed share of duels each source won against each other source (ties half), with the
  number of comparisons behind every cell.
- **Rounds** (``round_progress``): campaigns made from evaluated models carry the loop's round; all campaigns
  fitted together put every round's sources on one scale (a source ranked in two rounds links them).
"""

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.db.tables import Campaign
from backend.errors import StudioError
from labeling.campaigns import find_campaign
from labeling.ranking_matrix import RankingMatrix, load_ranking_matrix

RESAMPLES = 1000
SEED = 0
PRIOR_GAMES = 1.0
ELO_SCALE = 400 / math.log(10)
ELO_CENTER = 1000.0
METHOD = ("Bradley–Terry maximum likelihood on every pairwise outcome (ties count half; one virtual tie per source "
          "against the average keeps undefeated sources finite); 95 % intervals from {resamples:,} bootstrap "
          "resamples of items")


@dataclass
class Outcomes:
    """Pairwise outcomes between sources: row r says source ``a[r]`` scored ``score[r]`` (1 win, ½ tie, 0 loss)
    against source ``b[r]`` (a < b) in item ``item[r]`` (0 … n_items − 1)."""

    sources: list[str]
    item: np.ndarray
    a: np.ndarray
    b: np.ndarray
    score: np.ndarray
    n_items: int

    @classmethod
    def empty(cls) -> "Outcomes":
        none = np.zeros(0, dtype=np.int64)
        return cls([], none, none, none, np.zeros(0), 0)


def outcomes_from_matrix(m: RankingMatrix) -> Outcomes:
    """Every judgement's pairwise outcomes between completions of different sources (flagged ones left out)."""
    width = m.ranks.shape[1] if m.ranks.ndim == 2 else 0
    if not len(m.ranks) or width < 2:
        return Outcomes(list(m.sources), *(np.zeros(0, dtype=np.int64),) * 3, np.zeros(0), len(m.item_ids))
    first, second = np.triu_indices(width, 1)
    source = m.source_of[m.item]  # (rankings, K)
    ra, rb = m.ranks[:, first], m.ranks[:, second]
    sa, sb = source[:, first], source[:, second]
    usable = ~np.isnan(ra) & ~np.isnan(rb) & (sa >= 0) & (sb >= 0) & (sa != sb)
    score = np.where(ra < rb, 1.0, np.where(ra > rb, 0.0, 0.5))  # rank 1 is best
    swap = sa > sb  # orient every row from the lower source index
    lo, hi = np.where(swap, sb, sa), np.where(swap, sa, sb)
    score = np.where(swap, 1.0 - score, score)
    item = np.broadcast_to(m.item[:, None], ra.shape)
    return Outcomes(list(m.sources), item[usable].astype(np.int64), lo[usable].astype(np.int64),
                    hi[usable].astype(np.int64), score[usable], len(m.item_ids))


def merge_outcomes(parts: list[Outcomes]) -> Outcomes:
    """Outcomes of several campaigns as one set: sources matched by label, items kept apart."""
    sources = sorted({s for p in parts for s in p.sources})
    index = {s: i for i, s in enumerate(sources)}
    items, a, b, score, offset = [], [], [], [], 0
    for p in parts:
        remap = np.array([index[s] for s in p.sources], dtype=np.int64)
        ra, rb = (remap[p.a], remap[p.b]) if len(p.a) else (p.a, p.b)
        swap = ra > rb
        items.append(p.item + offset)
        a.append(np.where(swap, rb, ra))
        b.append(np.where(swap, ra, rb))
        score.append(np.where(swap, 1.0 - p.score, p.score))
        offset += p.n_items
    if not parts:
        return Outcomes.empty()
    return Outcomes(sources, np.concatenate(items), np.concatenate(a), np.concatenate(b), np.concatenate(score),
                    offset)


def fit_ratings(wins: np.ndarray, games: np.ndarray, *, prior_games: float = PRIOR_GAMES, tol: float = 1e-9,
                max_iter: int = 100) -> np.ndarray:
    """Bradley–Terry strengths θ (natural-log scale, mean 0) from ``wins[a, b]`` (a's score against b, ties half)
    and ``games[a, b]`` (symmetric), by Newton's method. ``prior_games`` virtual tied games per source against a
    phantom of strength 0 make the likelihood strictly concave: a unique, finite optimum."""
    n = len(games)
    theta = np.zeros(n)
    for _ in range(max_iter):
        p = 1.0 / (1.0 + np.exp(-(theta[:, None] - theta[None, :])))  # P(a beats b)
        phantom = 1.0 / (1.0 + np.exp(-theta))
        grad = (wins - games * p).sum(axis=1) + prior_games * (0.5 - phantom)
        weight = games * p * (1.0 - p)
        hessian = weight - np.diag(weight.sum(axis=1) + prior_games * phantom * (1.0 - phantom))
        step = np.linalg.solve(hessian, grad)
        theta = theta - step
        if np.max(np.abs(step)) < tol:
            break
    return theta - theta.mean()


def _tables(o: Outcomes, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(wins, games) matrices of the outcomes, each row weighted by its item's weight (bootstrap counts)."""
    n = len(o.sources)
    w = np.ones(len(o.a)) if weights is None else weights[o.item]
    pair = o.a * n + o.b
    won = np.bincount(pair, weights=w * o.score, minlength=n * n).reshape(n, n)
    played = np.bincount(pair, weights=w, minlength=n * n).reshape(n, n)
    games = played + played.T
    wins = won + (played - won).T  # b's score against a is what a did not score
    return wins, games


def to_elo(theta: np.ndarray) -> np.ndarray:
    return ELO_CENTER + ELO_SCALE * (theta - theta.mean())


def leaderboard_from_outcomes(o: Outcomes, *, resamples: int = RESAMPLES, seed: int = SEED) -> dict[str, Any]:
    """Ratings with 95 % intervals, each source's record, and the win-rate matrix (see the module docstring).

    Raises:
        StudioError: when there is no comparison between two different sources.
    """
    if not len(o.a):
        raise StudioError("No comparisons between different sources yet: the leaderboard needs judgements of items "
                          "whose completions come from at least two sources (models or decoding settings).")
    present = np.unique(np.concatenate([o.a, o.b]))
    if len(present) < len(o.sources):  # sources that never met another source are left out
        remap = np.full(len(o.sources), -1, dtype=np.int64)
        remap[present] = np.arange(len(present))
        o = Outcomes([o.sources[i] for i in present], o.item, remap[o.a], remap[o.b], o.score, o.n_items)
    wins, games = _tables(o)
    rating = to_elo(fit_ratings(wins, games))
    rng = np.random.default_rng(seed)
    used_items = np.unique(o.item)
    draws = np.empty((resamples, len(o.sources)))
    for r in range(resamples):  # resample items: every outcome of a drawn item comes along
        weights = np.zeros(o.n_items)
        np.add.at(weights, rng.choice(used_items, size=len(used_items)), 1.0)
        draws[r] = to_elo(fit_ratings(*_tables(o, weights)))
    low, high = np.percentile(draws, [2.5, 97.5], axis=0)
    comparisons = games.sum(axis=1)
    rows = [{"source": s, "rating": float(rating[i]), "low": float(low[i]), "high": float(high[i]),
             "comparisons": round(comparisons[i]), "win_rate": float(wins[i].sum() / comparisons[i]),
             "items": len(np.unique(o.item[(o.a == i) | (o.b == i)]))}
            for i, s in enumerate(o.sources)]
    rows.sort(key=lambda row: -row["rating"])
    matrix = [{"source": s, "opponent": t, "win_rate": float(wins[i, j] / games[i, j]),
               "comparisons": round(games[i, j])}
              for i, s in enumerate(o.sources) for j, t in enumerate(o.sources) if i != j and games[i, j] > 0]
    return {"sources": rows, "matrix": matrix, "comparisons": len(o.a), "items": len(used_items),
            "resamples": resamples, "method": METHOD.format(resamples=resamples)}


def campaign_outcomes(session: Session, campaign_id: int) -> Outcomes:
    return outcomes_from_matrix(load_ranking_matrix(session, campaign_id))


def leaderboard(session: Session, campaign: int | str | None = None, *, resamples: int = RESAMPLES,
                seed: int = SEED) -> dict[str, Any]:
    """The leaderboard of one campaign (id or name), or of every campaign together (``None``).

    Returns ``leaderboard_from_outcomes``'s dict plus ``campaign`` (its name, or None for all) and ``rounds``
    (``round_progress``, for all campaigns).

    Raises:
        StudioError: unknown campaign, or no comparison between different sources yet.
    """
    if campaign is not None:
        found = find_campaign(session, campaign)
        try:
            board = leaderboard_from_outcomes(campaign_outcomes(session, found.id), resamples=resamples, seed=seed)
        except StudioError as e:
            raise StudioError(f"Campaign '{found.name}': {e}") from None
        return {**board, "campaign": found.name, "rounds": []}
    campaigns = list(session.scalars(select(Campaign).order_by(Campaign.id)))
    if not campaigns:
        raise StudioError("No campaign yet: create one on the Campaigns page.")
    parts = [campaign_outcomes(session, c.id) for c in campaigns]
    board = leaderboard_from_outcomes(merge_outcomes(parts), resamples=resamples, seed=seed)
    return {**board, "campaign": None, "rounds": round_progress(campaigns, parts, board)}


def round_progress(campaigns: list[Campaign], parts: list[Outcomes], board: dict[str, Any]) -> list[dict[str, Any]]:
    """Per round of the loop: its campaigns, the sources its judgements compared, and the best of them on the
    all-campaigns scale (its rating and interval), so round 1 → round 2 reads as progress or not."""
    by_source = {row["source"]: row for row in board["sources"]}
    rounds: dict[int, dict[str, Any]] = {}
    for c, part in zip(campaigns, parts, strict=True):
        compared = {part.sources[i] for i in np.unique(np.concatenate([part.a, part.b]))} if len(part.a) else set()
        entry = rounds.setdefault(c.round, {"round": c.round, "campaigns": [], "parent_models": set(),
                                            "sources": set()})
        entry["campaigns"].append(c.name)
        entry["parent_models"].update(c.parent_models or [])
        entry["sources"].update(s for s in compared if s in by_source)
    out = []
    for number in sorted(rounds):
        entry = rounds[number]
        best = max((by_source[s] for s in entry["sources"]), key=lambda row: row["rating"], default=None)
        out.append({"round": number, "campaigns": entry["campaigns"], "parent_models": sorted(entry["parent_models"]),
                    "sources": sorted(entry["sources"]), "best_source": best["source"] if best else None,
                    "best_rating": best["rating"] if best else None, "best_low": best["low"] if best else None,
                    "best_high": best["high"] if best else None})
    return out
