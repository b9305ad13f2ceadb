"""Agreement and quality of a campaign, as plain rows ready for tables and plotly charts (admin view).

``quality_report`` reads the campaign once, as arrays (``ranking_matrix``), and returns:

- ``alpha``: Krippendorff's α (ordinal) over items judged by at least two annotators (None when undefined);
- ``annotators``: per annotator — items, agreement with the others, agreement and τ-b against the others'
  consensus, tie and flag rates, median seconds per item (bar chart of agreement per annotator);
- ``annotator_pairs``: per pair — shared items, pairwise agreement, mean τ-b (heatmap);
- ``sources``: per completion source (model × decoding) — completions, mean consensus rank, share ranked
  first, flag rate, and ``win_rate`` over consensus pairs against *other* sources (which source wins) with its
  95 % interval (``win_rate_low``/``win_rate_high``, bootstrap over items) and the number of ``duels`` behind it;
- ``source_ranks``: ``{source, rank, count}`` with rank "1".."K" or "F" (stacked bar of rank positions);
- ``times``: ``{annotator, item_id, seconds}`` per ranking (histogram / box plot of time per item);
- ``too_fast``: per annotator, judgements quicker than the campaign's seconds per completion (``labeling.gold``).
"""

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from statistics import median
from typing import Any

from sqlalchemy.orm import Session

from labeling.agreement_arrays import report_tables
from labeling.campaigns import find_campaign
from labeling.ranking_matrix import campaign_fingerprint, load_ranking_matrix

_CACHE_SIZE = 4  # campaigns whose last report is kept (each holds one row per ranking: ~20 MB at 100k)
_cache: dict[tuple, dict[str, Any]] = {}
_cache_lock = threading.Lock()


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector: the report makes ~500,000 small objects (rows, parsed JSON, chart
    rows), and in a server with a large heap each collection they trigger walks all of it (a third of the time).
    None of them form cycles, so nothing is left behind; the collector is on again afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def quality_report(session: Session, campaign_id: int | str) -> dict[str, Any]:
    """Agreement statistics and chart data for one campaign (see the module docstring).

    Computed on arrays (``agreement_arrays``; ``agreement`` is the item-by-item reference with the same
    numbers) and kept per campaign until a ranking or completion is added or removed, so asking again is one
    small query. The rows are shared with the cache: replace them (as ``flag_outliers`` does), never edit them.
    """
    campaign = find_campaign(session, campaign_id)
    key = (str(session.get_bind().url), campaign.id, campaign.created_at, campaign.too_fast_seconds,
           *campaign_fingerprint(session, campaign.id))
    with _cache_lock:
        cached = _cache.get(key)
    if cached is None:
        with _collector_paused():
            cached = report_tables(load_ranking_matrix(session, campaign.id), campaign.too_fast_seconds)
        with _cache_lock:
            for stale in [k for k in _cache if k[:3] == key[:3]]:  # this campaign's older report (or settings)
                del _cache[stale]
            while len(_cache) >= _CACHE_SIZE:
                del _cache[next(iter(_cache))]  # the oldest
            _cache[key] = cached
    return {"campaign_id": campaign.id, "name": campaign.name, **cached}


def flag_outliers(annotators: list[dict[str, Any]], *, floor: float = 0.5, below_median: float = 0.2) -> list[dict]:
    """Mark annotators whose agreement with the others' consensus looks like a misunderstanding (pure).

    An annotator is an outlier when their consensus agreement is under ``floor`` (they order most pairs against
    the others: 0.5 is what random ranking gives) or more than ``below_median`` under the median annotator.
    Annotators without shared items get ``outlier`` False and a note. Returns new rows with ``outlier`` and
    ``why``.
    """
    scores = [a["consensus_agreement"] for a in annotators if a.get("consensus_agreement") is not None]
    middle = median(scores) if scores else None
    rows = []
    for a in annotators:
        score = a.get("consensus_agreement")
        if score is None:
            rows.append({**a, "outlier": False, "why": "no item shared with another annotator"})
        elif score < floor:
            rows.append({**a, "outlier": True, "why": f"agrees with the consensus on {score:.0%} of pairs"})
        elif middle is not None and score < middle - below_median:
            rows.append({**a, "outlier": True, "why": f"{score:.0%} vs a median of {middle:.0%}"})
        else:
            rows.append({**a, "outlier": False, "why": ""})
    return rows
