"""Agreement and quality of a campaign, as plain rows ready for tables and plotly charts (admin view).

``quality_report`` reads the campaign once (``records.load_items``) and returns:

- ``alpha``: Krippendorff's α (ordinal) over items judged by at least two annotators (None when undefined);
- ``annotators``: per annotator — items, agreement with the others, agreement and τ-b against the others'
  consensus, tie and flag rates, median seconds per item (bar chart of agreement per annotator);
- ``annotator_pairs``: per pair — shared items, pairwise agreement, mean τ-b (heatmap);
- ``sources``: per completion source (model × decoding) — completions, mean consensus rank, share ranked
  first, flag rate, and ``win_rate`` over consensus pairs against *other* sources (which source wins) with its
  95 % interval (``win_rate_low``/``win_rate_high``, bootstrap over items) and the number of ``duels`` behind it;
- ``source_ranks``: ``{source, rank, count}`` with rank "1".."K" or "F" (stacked bar of rank positions);
- ``times``: ``{annotator, item_id, seconds}`` per ranking (histogram / box plot of time per item).
"""

from collections import Counter, defaultdict
from statistics import median
from typing import Any

from sqlalchemy.orm import Session

from backend.metrics import stats
from labeling.agreement import annotator_report, campaign_alpha, consensus_ranking
from labeling.campaigns import find_campaign
from labeling.pairs import dense_ranks, ranking_to_pairs
from labeling.records import ItemRecord, load_items


def source_stats(records: list[ItemRecord]) -> tuple[list[dict], list[dict]]:
    """Per-source summary and rank-position counts, from each item's consensus ranking (pure)."""
    ranks_of: dict[str, Counter] = defaultdict(Counter)
    outcomes: dict[str, tuple[list[float], list[int]]] = defaultdict(lambda: ([], []))  # source → (won?, item)
    for record in records:
        if not record.judgements:
            continue
        consensus = dense_ranks(consensus_ranking(list(record.judgements.values())))
        for source, rank in zip(record.sources, consensus, strict=True):
            ranks_of[source]["F" if rank is None else str(rank)] += 1
        for pair in ranking_to_pairs(consensus):
            a, b = record.sources[pair.chosen], record.sources[pair.rejected]
            if a != b:
                for source, won in ((a, 1.0), (b, 0.0)):
                    outcomes[source][0].append(won)
                    outcomes[source][1].append(record.item_id)
    summary, positions = [], []
    for source in sorted(ranks_of):
        counts = ranks_of[source]
        total = sum(counts.values())
        ranked = [(int(r), n) for r, n in counts.items() if r != "F"]
        n_ranked = sum(n for _, n in ranked)
        won, items = outcomes[source]
        # the win rate with its 95 % interval, resampling items: the duels of one item are not independent
        win = stats.mean_interval(won, items) if won else None
        summary.append({"source": source, "completions": total,
                        "mean_rank": sum(r * n for r, n in ranked) / n_ranked if n_ranked else None,
                        "first_place": counts.get("1", 0) / total, "flag_rate": counts.get("F", 0) / total,
                        "win_rate": win.mean if win else None, "win_rate_low": win.low if win else None,
                        "win_rate_high": win.high if win else None, "duels": len(won)})
        positions.extend({"source": source, "rank": r, "count": n}
                         for r, n in sorted(counts.items(), key=lambda kv: (kv[0] == "F", kv[0])))
    return summary, positions


def quality_report(session: Session, campaign_id: int | str) -> dict[str, Any]:
    """Agreement statistics and chart data for one campaign (see the module docstring)."""
    campaign = find_campaign(session, campaign_id)
    records = load_items(session, campaign.id)
    items = [r.judgements for r in records]
    shared = [j for j in items if len(j) >= 2]
    seconds: dict[str, list[float]] = defaultdict(list)
    times = []
    for record in records:
        for name, secs in record.seconds.items():
            seconds[name].append(secs)
            times.append({"annotator": name, "item_id": record.item_id, "seconds": secs})
    per_annotator, per_pair = annotator_report(items)
    annotators = [{**row, "median_seconds": median(seconds[row["annotator"]])} for row in per_annotator]
    sources, source_ranks = source_stats(records)
    return {"campaign_id": campaign.id, "name": campaign.name, "items_judged": len(items),
            "items_shared": len(shared), "rankings": sum(len(j) for j in items), "alpha": campaign_alpha(shared),
            "annotators": annotators, "annotator_pairs": per_pair, "sources": sources,
            "source_ranks": source_ranks, "times": times}


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
