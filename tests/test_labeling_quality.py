"""The admin's quality report: agreement per annotator and pair, alpha, which source wins, time per item."""

from backend.db.engine import session_scope
from labeling import campaigns, synthetic
from labeling.quality import quality_report


def test_report_spots_the_reversed_annotator_and_the_better_source(studio_env):
    with session_scope(write=True) as s:
        # sources alternate a, b, a, b: source "a" is better; "rev" ranks worst-first
        cid = synthetic.seed_campaign(s, "q", n_items=12, k=4, sources=("a", "b"), noise=0.05,
                                      annotators=["ann", "bob", "cat", "rev"], reverse=["rev"]).id
    with session_scope() as s:
        report = quality_report(s, cid)
    assert (report["items_judged"], report["items_shared"], report["rankings"]) == (12, 12, 48)
    by = {r["annotator"]: r for r in report["annotators"]}
    assert by["rev"]["consensus_tau_b"] < -0.5 and by["ann"]["consensus_tau_b"] > 0.5
    assert by["rev"]["agreement"] < by["bob"]["agreement"]
    assert all(r["median_seconds"] > 0 for r in report["annotators"])
    pair = {(r["annotator_a"], r["annotator_b"]): r for r in report["annotator_pairs"]}
    assert len(pair) == 6 and pair[("ann", "bob")]["tau_b"] > 0.5 and pair[("ann", "rev")]["tau_b"] < -0.5
    assert -1 < report["alpha"] < 1
    sources = {r["source"]: r for r in report["sources"]}
    assert sources["a"]["win_rate"] > 0.9 and sources["b"]["win_rate"] < 0.1
    # each win rate with its interval (items resampled) and the duels behind it; a and b fight the same duels
    assert sources["a"]["win_rate_low"] <= sources["a"]["win_rate"] <= sources["a"]["win_rate_high"]
    assert sources["a"]["win_rate_low"] > 0.5 > sources["b"]["win_rate_high"]
    assert sources["a"]["duels"] == sources["b"]["duels"] > 12
    assert sources["a"]["mean_rank"] < sources["b"]["mean_rank"]
    assert sources["a"]["first_place"] >= 0.5 and sources["b"]["first_place"] == 0  # ties at the top are shared
    assert {r["rank"] for r in report["source_ranks"]} <= {"1", "2", "3", "4"}
    assert sum(r["count"] for r in report["source_ranks"]) == 48  # 12 items × 4 consensus ranks
    assert len(report["times"]) == 48 and set(report["times"][0]) == {"annotator", "item_id", "seconds"}


def test_report_on_a_campaign_without_rankings(studio_env):
    with session_scope(write=True) as s:
        cid = campaigns.create_campaign(s, "empty", ["a"]).id
    with session_scope() as s:
        report = quality_report(s, cid)
    assert report["alpha"] is None and report["annotators"] == [] and report["sources"] == []
