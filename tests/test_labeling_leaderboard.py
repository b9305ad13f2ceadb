"""Bradley–Terry leaderboard: ratings recover known strengths, intervals shrink with more comparisons, ties count
half, the fit is the penalised maximum-likelihood optimum, campaigns and rounds from the database."""

import math

import numpy as np
import pytest
from sqlalchemy import select

from backend.db.engine import session_scope
from backend.errors import StudioError
from labeling import leaderboard as lb
from labeling import synthetic

STRENGTHS = [0.0, 0.4, 0.8, 1.6]  # natural-log scale: P(3 beats 0) = σ(1.6) = 0.83


def simulated(n_items: int, seed: int = 0, strengths=STRENGTHS, tie_rate: float = 0.0) -> lb.Outcomes:
    """Each item: two different sources drawn at random, one judgement, the winner drawn from the BT model."""
    rng = np.random.default_rng(seed)
    n = len(strengths)
    a = rng.integers(0, n, n_items)
    b = (a + rng.integers(1, n, n_items)) % n
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    p = 1 / (1 + np.exp(-(np.take(strengths, lo) - np.take(strengths, hi))))
    score = (rng.random(n_items) < p).astype(float)
    score[rng.random(n_items) < tie_rate] = 0.5
    return lb.Outcomes([f"s{i}" for i in range(n)], np.arange(n_items), lo, hi, score, n_items)


def test_ratings_recover_the_order_of_sources_with_known_win_probabilities():
    board = lb.leaderboard_from_outcomes(simulated(3000), resamples=200)
    assert [row["source"] for row in board["sources"]] == ["s3", "s2", "s1", "s0"]
    by = {row["source"]: row for row in board["sources"]}
    gap = (by["s3"]["rating"] - by["s0"]["rating"]) / lb.ELO_SCALE  # back on the natural-log scale
    assert gap == pytest.approx(1.6, abs=0.25)
    assert by["s3"]["low"] > by["s1"]["high"]  # far apart: intervals do not overlap
    assert all(row["low"] <= row["rating"] <= row["high"] for row in board["sources"])
    assert board["comparisons"] == 3000 and board["items"] == 3000


def test_intervals_shrink_with_more_comparisons():
    def mean_width(n):
        board = lb.leaderboard_from_outcomes(simulated(n, seed=1), resamples=200)
        return np.mean([row["high"] - row["low"] for row in board["sources"]])

    few, many = mean_width(200), mean_width(3200)
    assert many < few / 2.5  # ~ 1/√16 = 1/4 in theory


def test_the_interval_covers_the_true_gap_about_95_percent_of_the_time():
    truth = (STRENGTHS[3] - STRENGTHS[0]) * lb.ELO_SCALE
    covered = 0
    for seed in range(40):
        by = {r["source"]: r for r in lb.leaderboard_from_outcomes(simulated(1500, seed=seed + 10),
                                                                    resamples=200)["sources"]}
        gaps = by["s3"]["rating"] - by["s0"]["rating"]
        half = max(by["s3"]["high"] - by["s3"]["rating"], by["s3"]["rating"] - by["s3"]["low"]) + \
            max(by["s0"]["high"] - by["s0"]["rating"], by["s0"]["rating"] - by["s0"]["low"])
        covered += abs(gaps - truth) <= half
    assert covered >= 34  # conservative (two intervals added), never far below 95 %


def test_ties_count_half():
    o = lb.Outcomes(["a", "b"], np.arange(10), np.zeros(10, dtype=np.int64), np.ones(10, dtype=np.int64),
                    np.full(10, 0.5), 10)
    board = lb.leaderboard_from_outcomes(o, resamples=50)
    assert [row["rating"] for row in board["sources"]] == pytest.approx([1000.0, 1000.0])
    assert [m["win_rate"] for m in board["matrix"]] == [0.5, 0.5]
    # 3 wins + 2 ties of 5 = 4/5
    o = lb.Outcomes(["a", "b"], np.arange(5), np.zeros(5, dtype=np.int64), np.ones(5, dtype=np.int64),
                    np.array([1, 1, 1, 0.5, 0.5]), 5)
    cells = {(m["source"], m["opponent"]): m for m in lb.leaderboard_from_outcomes(o, resamples=50)["matrix"]}
    assert cells["a", "b"]["win_rate"] == pytest.approx(0.8) and cells["b", "a"]["win_rate"] == pytest.approx(0.2)
    assert cells["a", "b"]["comparisons"] == 5


def test_the_fit_is_the_penalised_likelihood_optimum():
    from scipy.optimize import minimize

    o = simulated(400, seed=5, tie_rate=0.2)
    wins, games = lb._tables(o)

    def negative_log_likelihood(theta):
        diff = theta[:, None] - theta[None, :]
        log_p = -np.logaddexp(0, -diff)
        phantom = -0.5 * (np.logaddexp(0, -theta) + np.logaddexp(0, theta)) * lb.PRIOR_GAMES
        return -(wins * log_p).sum() - phantom.sum()

    reference = minimize(negative_log_likelihood, np.zeros(len(STRENGTHS)), method="BFGS", options={"gtol": 1e-10}).x
    theta = lb.fit_ratings(wins, games)
    np.testing.assert_allclose(theta, reference - reference.mean(), atol=1e-5)


def test_an_undefeated_source_gets_a_finite_rating():
    o = lb.Outcomes(["a", "b"], np.arange(4), np.zeros(4, dtype=np.int64), np.ones(4, dtype=np.int64),
                    np.ones(4), 4)
    board = lb.leaderboard_from_outcomes(o, resamples=50)
    assert all(math.isfinite(row[k]) for row in board["sources"] for k in ("rating", "low", "high"))
    assert board["sources"][0]["source"] == "a"


def test_no_comparison_is_a_clear_message(studio_env):
    with pytest.raises(StudioError, match="No comparisons between different sources"):
        lb.leaderboard_from_outcomes(lb.Outcomes.empty())
    with session_scope(write=True) as s:
        synthetic.seed_campaign(s, "unranked", n_items=3)
        one_source = synthetic.seed_campaign(s, "one-source", n_items=3, sources=("only · greedy",),
                                             annotators=["a"]).name
    with session_scope() as s:
        with pytest.raises(StudioError, match="Campaign 'unranked': No comparisons"):
            lb.leaderboard(s, "unranked")
        with pytest.raises(StudioError, match="Campaign 'one-source': No comparisons"):
            lb.leaderboard(s, one_source)
        with pytest.raises(StudioError, match="no campaign 'nope'"):
            lb.leaderboard(s, "nope")


def test_campaign_and_all_campaign_leaderboards_from_rankings(studio_env):
    with session_scope(write=True) as s:
        synthetic.seed_campaign(s, "r1", n_items=40, k=3, sources=("base · T0.7", "tuned · T0.7"),
                                annotators=["a", "b"], noise=0.5, seed=1)
        second = synthetic.seed_campaign(s, "r2", n_items=40, k=2, sources=("tuned-2 · T0.7", "base · T0.7"),
                                         annotators=["a"], noise=0.5, seed=2)
        second.round, second.parent_models = 2, ["tuned-2"]
    with session_scope() as s:
        one = lb.leaderboard(s, "r1", resamples=100)
        every = lb.leaderboard(s, resamples=100)
    assert one["campaign"] == "r1" and [r["source"] for r in one["sources"]] == ["base · T0.7", "tuned · T0.7"]
    # K = 3 with two sources: items have 2 cross-source pairs (slots 0–1 and 1–2), two judgements each
    assert one["comparisons"] == 40 * 2 * 2
    assert {(m["source"], m["opponent"]): m["comparisons"] for m in one["matrix"]} == {
        ("base · T0.7", "tuned · T0.7"): 160, ("tuned · T0.7", "base · T0.7"): 160}
    assert every["campaign"] is None and every["comparisons"] == 160 + 40
    assert {r["source"] for r in every["sources"]} == {"base · T0.7", "tuned · T0.7", "tuned-2 · T0.7"}
    rounds = every["rounds"]
    assert [(r["round"], r["campaigns"]) for r in rounds] == [(1, ["r1"]), (2, ["r2"])]
    assert rounds[1]["parent_models"] == ["tuned-2"] and rounds[1]["best_source"] == "tuned-2 · T0.7"
    assert rounds[0]["best_source"] == "base · T0.7"


def test_a_campaign_from_an_evaluated_model_is_the_next_round_of_its_lineage(tiny_model):
    from backend.db.tables import ModelRecord
    from labeling import campaigns

    with session_scope(write=True) as s:
        base = s.scalar(select(ModelRecord).where(ModelRecord.name == "tiny"))
        ppo = ModelRecord(name="tiny-ppo", kind="adapter", source="job", path="artifacts/x", base_model_id=base.id)
        s.add(ppo)
        s.flush()
        s.add(ModelRecord(name="tiny-ppo-2", kind="adapter", source="job", path="artifacts/y", base_model_id=ppo.id))
        first = campaigns.create_campaign(s, "from scratch", ["Hi?"], k=2, sources=[{"model": "tiny"}])
        assert (first.round, first.parent_models) == (1, [])
        assert campaigns.next_round(s, ["unrelated"]) == 1  # nothing in its lineage was ranked
        second = campaigns.create_campaign(s, "round two", ["Hi?"], k=2, sources=[{"model": "tiny"}],
                                           parent_models=["tiny-ppo", "tiny"])
        assert (second.round, second.parent_models) == (2, ["tiny-ppo", "tiny"])  # tiny, its base, was in round 1
        third = campaigns.create_campaign(s, "round three", ["Hi?"], k=2, sources=[{"model": "tiny"}],
                                          parent_models=["tiny-ppo-2"])
        assert third.round == 3
        summary = campaigns.campaign_summary(s, third.id)
        assert (summary["round"], summary["parent_models"]) == (3, ["tiny-ppo-2"])


def test_cli_prints_the_leaderboard_and_its_json(studio_env, capsys):
    import json

    from factories import run_cli

    with session_scope(write=True) as s:
        synthetic.seed_campaign(s, "cli", n_items=30, k=2, annotators=["a"], noise=0.5)
        synthetic.seed_campaign(s, "empty", n_items=3)
    code, out, _ = run_cli(["labels", "leaderboard", "--campaign", "cli", "--resamples", "200"], capsys)
    assert code == 0 and "cli: 30 comparisons on 30 items" in out
    assert "model-a · greedy" in out and "95 % interval" in out
    code, out, _ = run_cli(["labels", "leaderboard", "--json", "--resamples", "200"], capsys)
    board = json.loads(out)
    assert board["campaign"] is None and [r["round"] for r in board["rounds"]] == [1]
    assert board["sources"][0]["low"] <= board["sources"][0]["rating"] <= board["sources"][0]["high"]
    code, _, err = run_cli(["labels", "leaderboard", "--campaign", "empty"], capsys)
    assert code == 2 and "Campaign 'empty': No comparisons between different sources" in err
    code, _, err = run_cli(["labels", "leaderboard", "--resamples", "5"], capsys)
    assert code == 2 and "--resamples" in err
