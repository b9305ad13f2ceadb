"""The vectorised quality report gives the numbers of the item-by-item reference, on random campaigns.

``reference_report`` is the report as it was computed before the arrays (``records.load_items`` and the pure
functions of ``labeling.agreement``, one item at a time): kept here as the definition the fast path must match.
"""

import gc
import random
from collections import Counter, defaultdict
from statistics import median

import numpy as np
import pytest
from sqlalchemy import insert

from backend.db.engine import session_scope
from backend.db.tables import Ranking
from backend.metrics import stats
from labeling import campaigns, quality, synthetic, workbench
from labeling.agreement import annotator_report, campaign_alpha, consensus_ranking
from labeling.pairs import dense_ranks, ranking_to_pairs
from labeling.records import load_items


def reference_source_stats(records) -> tuple[list[dict], list[dict]]:
    ranks_of: dict[str, Counter] = defaultdict(Counter)
    outcomes: dict[str, tuple[list[float], list[int]]] = defaultdict(lambda: ([], []))
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
        win = stats.mean_interval(won, items) if won else None
        summary.append({"source": source, "completions": total,
                        "mean_rank": sum(r * n for r, n in ranked) / n_ranked if n_ranked else None,
                        "first_place": counts.get("1", 0) / total, "flag_rate": counts.get("F", 0) / total,
                        "win_rate": win.mean if win else None, "win_rate_low": win.low if win else None,
                        "win_rate_high": win.high if win else None, "duels": len(won)})
        positions.extend({"source": source, "rank": r, "count": n}
                         for r, n in sorted(counts.items(), key=lambda kv: (kv[0] == "F", kv[0])))
    return summary, positions


def reference_report(session, campaign_id: int) -> dict:
    campaign = campaigns.find_campaign(session, campaign_id)
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
    sources, source_ranks = reference_source_stats(records)
    return {"campaign_id": campaign.id, "name": campaign.name, "items_judged": len(items),
            "items_shared": len(shared), "rankings": sum(len(j) for j in items), "alpha": campaign_alpha(shared),
            "annotators": annotators, "annotator_pairs": per_pair, "sources": sources,
            "source_ranks": source_ranks, "times": times}


def random_ranks(rng: random.Random, k: int) -> list[int]:
    """A ranking of k completions with ties now and then, written dense (1, 1, 2) or competition (1, 1, 3)."""
    scores = [rng.randint(0, k if rng.random() < 0.7 else 1) for _ in range(k)]
    levels = sorted(set(scores), reverse=True)
    if rng.random() < 0.5:
        return [levels.index(s) + 1 for s in scores]
    return [1 + sum(t > s for t in scores) for s in scores]


def seed_random_campaign(session, name: str, seed: int, n_items: int = 60) -> int:
    """Items with 1–5 completions from three sources (and unlabelled ones), each ranked by a random subset of
    six annotators with ties and flags; some skipped, one incomplete, one naming another item's completion."""
    rng = random.Random(seed)
    campaign = campaigns.create_campaign(session, name, [f"prompt {i} of {name}" for i in range(n_items)], k=5)
    labels = ["model-a · greedy", "model-b · T0.9", "model-c · T1.2", None]
    items = synthetic._add_completions(session, campaign.id, "synthetic", lambda n, item_id: (
        f"prompt {item_id}", [(f"answer {j}", rng.choice(labels)) for j in range(rng.randint(1, 5))]))
    names = [f"{name}-ann-{i}" for i in range(6)]
    users = synthetic._users(session, names)
    rows: dict[tuple[int, int], dict] = {}  # one ranking per item and annotator
    for item_id, completion_ids in items:
        for who in rng.sample(names, rng.randint(0, len(names))):
            ranks = dict(zip(map(str, completion_ids), random_ranks(rng, len(completion_ids)), strict=True))
            row = synthetic._ranking(item_id, users[who], ranks, round(rng.uniform(1, 90), 1))
            row.update(flags=[c for c in completion_ids if rng.random() < 0.15], skipped=rng.random() < 0.05)
            rows[item_id, users[who]] = row
    (first, first_ids), (second, second_ids) = items[0], items[1]
    rows[first, users[names[0]]] = synthetic._ranking(first, users[names[0]], {}, 5.0)  # covers nothing: left out
    # also ranks a completion of another item: the extra key is ignored
    rows[second, users[names[1]]] = synthetic._ranking(
        second, users[names[1]], {str(c): 1 for c in second_ids} | {str(first_ids[0]): 2}, 7.0)
    session.execute(insert(Ranking), list(rows.values()))
    return campaign.id


def by_item(times: list[dict]) -> list[tuple]:
    return sorted((t["item_id"], t["annotator"], t["seconds"]) for t in times)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_fast_report_equals_the_reference_on_a_random_campaign(studio_env, seed):
    with session_scope(write=True) as s:
        cid = seed_random_campaign(s, f"rand{seed}", seed)
    with session_scope() as s:
        fast, slow = quality.quality_report(s, cid), reference_report(s, cid)
    assert fast["rankings"] > 50 and fast["items_shared"] > 10 and len(fast["sources"]) == 4
    assert by_item(fast.pop("times")) == by_item(slow.pop("times"))
    fast.pop("too_fast")  # (a quality check the reference did not have: tests/test_labeling_gold.py)
    assert fast == slow  # every number, to the last bit


def test_fast_report_equals_the_reference_on_a_synthetic_campaign(studio_env):
    with session_scope(write=True) as s:
        cid = synthetic.seed_campaign(s, "syn", n_items=200, k=4, overlap=3, per_item=3, noise=0.6,
                                      annotators=["a", "b", "c", "d", "e"], reverse=["e"], seed=3).id
    with session_scope() as s:
        fast, slow = quality.quality_report(s, cid), reference_report(s, cid)
    assert by_item(fast.pop("times")) == by_item(slow.pop("times"))
    fast.pop("too_fast")
    assert fast == slow


def test_report_is_cached_until_a_ranking_is_added_or_undone(studio_env):
    with session_scope(write=True) as s:
        cid = synthetic.seed_campaign(s, "cache", n_items=4, k=3, overlap=3, annotators=["a", "b"]).id
        late = workbench.get_or_create_user(s, "late").id
    with session_scope() as s:
        first = quality.quality_report(s, cid)
        assert gc.isenabled()  # paused while computing only
        assert quality.quality_report(s, cid)["annotators"] is first["annotators"]  # served from the cache
    with session_scope(write=True) as s:
        task = workbench.next_task(s, cid, late)
        workbench.submit_ranking(s, task.item_id, late, {c["id"]: i + 1 for i, c in enumerate(task.completions)})
    with session_scope() as s:
        added = quality.quality_report(s, cid)
        assert added["rankings"] == first["rankings"] + 1 and "late" in {a["annotator"] for a in added["annotators"]}
    with session_scope(write=True) as s:
        workbench.undo_last(s, late, cid)
    with session_scope() as s:
        assert quality.quality_report(s, cid)["rankings"] == first["rankings"]


def test_chunked_bootstrap_draws_the_same_interval(monkeypatch):
    rng = random.Random(0)
    values = [rng.random() for _ in range(3001)]
    groups = [i // 3 for i in range(3001)]  # 1001 groups, the last one short
    whole = stats.mean_interval(values, groups)
    # the interval as drawn before blocks: every resample's indices at once
    sums = np.array([sum(values[g * 3:g * 3 + 3]) for g in range(1001)])
    counts = np.array([len(values[g * 3:g * 3 + 3]) for g in range(1001)], dtype=float)
    picks = np.random.default_rng(stats.SEED).integers(0, 1001, size=(stats.RESAMPLES, 1001))
    draws = sums[picks].sum(axis=1) / counts[picks].sum(axis=1)
    assert (whole.low, whole.high) == tuple(np.percentile(draws, [2.5, 97.5]))
    monkeypatch.setattr(stats, "BOOTSTRAP_CHUNK", 7 * 1001 + 5)  # 7 resamples a block, 2000 % 7 left over
    assert stats.mean_interval(values, groups) == whole
    monkeypatch.setattr(stats, "BOOTSTRAP_CHUNK", 1)
    assert stats.mean_interval(values, groups) == whole


def test_bootstrap_of_whole_numbers_draws_the_same_interval():
    """Wins per item (whole numbers) take the packed path: the interval equals the float one."""
    rng = np.random.default_rng(1)
    duels = rng.integers(1, 4, size=5001).astype(float)
    wins = np.floor(rng.random(5001) * (duels + 1))
    packed = stats.grouped_mean_interval(wins, duels)
    picks = np.random.default_rng(stats.SEED).integers(0, 5001, size=(stats.RESAMPLES, 5001))
    draws = wins[picks].sum(axis=1) / duels[picks].sum(axis=1)
    assert (packed.low, packed.high) == tuple(np.percentile(draws, [2.5, 97.5]))
    assert stats._packed_whole_numbers(wins, duels)[0] is not None
    assert stats._packed_whole_numbers(wins + 0.5, duels)[0] is None


def test_intervals_computed_together_equal_each_alone():
    rng = np.random.default_rng(2)
    entries = [(np.floor(rng.random(n) * 3), np.full(n, 2.0)) for n in (400, 400, 250, 1)]
    entries.append((rng.random(400), np.ones(400)))  # not whole numbers: the float path, sharing the draws
    together = stats.grouped_mean_intervals(entries)
    assert together == [stats.grouped_mean_interval(s, c) for s, c in entries]
    assert together[0] != together[1] and together[3].low == together[3].high
