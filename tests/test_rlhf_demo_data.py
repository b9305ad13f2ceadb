"""The detox demo data: the provocative prompts split for PPO, and the scripted-preference campaign."""

from backend.data.rlhf_prompts import provocative_splits, scripted_rankings, scripted_replies
from backend.db.engine import session_scope


def test_provocative_splits_are_disjoint_deterministic_and_cover_every_category():
    splits = provocative_splits()
    assert splits == provocative_splits()
    train, test = splits["train"], splits["test"]
    assert len(train) == 63 and len(test) == 21
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in test}
    assert {r["category"] for r in train} == {r["category"] for r in test} and len({r["category"] for r in test}) == 7


def test_demo_provocative_is_a_dataset_reference(studio_env):
    from backend.data.rlhf_prompts import ensure_demo_prompts
    from jobs.data import dataset_splits, read_rows

    ensure_demo_prompts("demo:provocative")
    assert sorted(dataset_splits("demo:provocative")) == ["test", "train"]
    rows = read_rows("demo:provocative", "test", ["prompt"])
    assert [r["prompt"] for r in rows] == [r["prompt"] for r in provocative_splits()["test"]]


def test_scripted_replies_and_rankings():
    kind, _curt, rude = scripted_replies(4)
    from backend.metrics.scorers import toxicity_scores

    assert toxicity_scores([rude])[0] > 0.5 > toxicity_scores([kind])[0]  # the profanity classifier agrees
    rankings = scripted_rankings(200, annotators=2, noise=0.8, seed=3)
    firsts = [ranks.index(1) for item in rankings for ranks in item]
    assert firsts.count(0) > firsts.count(1) > firsts.count(2)  # kinder replies win more often
    assert 0.2 < sum(a == b for a, b in rankings) / 200 < 0.9  # annotators agree often, not always
    assert all(sorted(r) == [1, 2, 3] for item in rankings for r in item)


def test_seeded_campaign_gives_pairs_and_human_agreement(studio_env):
    from jobs.rl.preferences import human_agreement
    from labeling.export import campaign_rows
    from labeling.synthetic import seed_demo_preference_campaign

    with session_scope(write=True) as s:
        campaign_id = seed_demo_preference_campaign(s, "detox-demo", n_items=12)
    with session_scope() as s:
        rows, stats = campaign_rows(s, campaign_id)
        agreement = human_agreement(s, campaign_id)
    assert stats["items"] == 12 and stats["rankings"] == 24 and len(rows) == 72  # C(3,2) pairs × 2 annotators
    assert 0.3 < agreement["human_pairwise_agreement"] < 1.0
