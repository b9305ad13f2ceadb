"""The Leaderboard page: ratings with intervals, the win-rate matrix and rounds; clear messages; admins only."""

from page_support import open_as, signed_in, texts

from backend.db.engine import session_scope
from labeling import synthetic


def test_leaderboard_shows_ratings_with_intervals_matrix_and_rounds(studio):
    ada = signed_in("ada")
    with session_scope(write=True) as s:
        synthetic.seed_campaign(s, "r1", n_items=30, k=3, sources=("base · T0.7", "tuned · T0.7"),
                                annotators=["ann", "ben"], noise=0.8)
        later = synthetic.seed_campaign(s, "r2", n_items=10, k=2, sources=("tuned-2 · T0.7", "base · T0.7"),
                                        annotators=["ann"], noise=0.8, seed=4)
        later.round, later.parent_models = 2, ["tuned-2"]
        synthetic.seed_campaign(s, "unranked", n_items=2)
    at = open_as("page_leaderboard.py", ada)
    assert not at.exception and not at.error
    ratings = at.dataframe[0].value
    assert list(ratings.columns) == ["source", "rating", "95 % interval", "comparisons", "win rate"]
    assert set(ratings["source"]) == {"base · T0.7", "tuned · T0.7", "tuned-2 · T0.7"}
    assert ratings["rating"].is_monotonic_decreasing and ratings["95 % interval"].str.match(r"\[\d+, \d+\]").all()
    charts = at.get("plotly_chart")
    assert len(charts) == 2 and '"error_x"' in charts[0].proto.spec  # intervals drawn, not only points
    rounds = at.dataframe[1].value
    assert list(rounds["round"]) == [1, 2] and rounds["made from"].iloc[1] == "tuned-2"
    assert "noise" in texts(at.caption)

    at.selectbox(key="lbd-campaign").select_index(1).run()  # newest first: "unranked"
    assert "Campaign 'unranked': No comparisons between different sources" in texts(at.error)
    assert not at.exception


def test_leaderboard_refuses_annotators_and_says_when_there_is_no_campaign(studio):
    ada = signed_in("ada")
    bob = signed_in("bob")
    assert "Only an admin" in texts(open_as("page_leaderboard.py", bob).error)
    assert "No campaign yet" in texts(open_as("page_leaderboard.py", ada).info)
