"""Gold items (scheduling at the campaign's rate, unseen as gold, accuracy with its interval, flagged annotators),
"too fast" judgements, and clear messages for bad gold input."""

import pytest
from sqlalchemy import select

from backend.db.engine import session_scope
from backend.db.tables import CampaignItem, Completion
from backend.errors import StudioError
from labeling import gold, synthetic, workbench


def make_campaign(name: str, n_items: int, n_gold: int, rate: float, overlap: int = 1) -> tuple[int, dict]:
    """A campaign whose first ``n_gold`` items are gold with their first completion as the known best."""
    with session_scope(write=True) as s:
        campaign = synthetic.seed_campaign(s, name, n_items=n_items, k=3, overlap=overlap)
        items = list(s.scalars(select(CampaignItem).where(CampaignItem.campaign_id == campaign.id)
                               .order_by(CampaignItem.id)))
        best = {}
        for item in items[:n_gold]:
            first = s.scalar(select(Completion.id).where(Completion.item_id == item.id).order_by(Completion.id))
            gold.mark_gold(s, item.id, first)
            best[item.id] = first
        gold.set_checks(s, campaign.id, gold_rate=rate)
        return campaign.id, best


def judge_next(campaign_id: int, name: str, best: dict, *, right: bool, seconds: float = 30.0) -> int | None:
    """The annotator judges the item they are served (the known best first when ``right``); returns its id."""
    with session_scope(write=True) as s:
        user = workbench.get_or_create_user(s, name).id
        task = workbench.next_task(s, campaign_id, user)
        if task is None:
            return None
        ids = [c["id"] for c in task.completions]
        top = best.get(task.item_id, ids[0])
        if not right:  # the known best last
            top = next(i for i in ids if i != top)
        others = [i for i in ids if i != top]
        workbench.submit_ranking(s, task.item_id, user, {top: 1, others[0]: 2, others[1]: 3}, seconds_spent=seconds)
        return task.item_id


def work_through(campaign_id: int, name: str, best: dict, **how) -> list[int]:
    """The annotator judges everything they are served; returns the item ids in the order served."""
    served = []
    while (item := judge_next(campaign_id, name, best, **how)) is not None:
        served.append(item)
    return served


def test_gold_items_are_mixed_in_at_the_rate_and_only_while_there_is_work(studio_env):
    cid, best = make_campaign("rate", n_items=30, n_gold=3, rate=0.1)
    served = work_through(cid, "ann", best, right=True)
    assert len(served) == 27 + 2  # every ordinary item, and a gold one as the 10th and the 20th
    assert [i for i, item in enumerate(served, start=1) if item in best] == [10, 20]


def test_gold_items_ignore_the_overlap_and_are_not_revealed(studio_env):
    cid, best = make_campaign("overlap", n_items=8, n_gold=4, rate=0.5, overlap=1)
    served: dict[str, list[int]] = {"ann": [], "ben": []}
    while True:  # two annotators take turns
        got = [judge_next(cid, name, best, right=True) for name in served]
        for name, item in zip(served, got, strict=True):
            if item is not None:
                served[name].append(item)
        if got == [None, None]:
            break
    ann, ben = served["ann"], served["ben"]
    assert [i in best for i in ann] == [False, True, False] == [i in best for i in ben]
    assert {i for i in ann if i in best} == {i for i in ben if i in best}  # gold: both, although overlap is 1
    assert not set(ann) - set(best) & set(ben)  # ordinary items: one annotator each
    fields = set(workbench.Task.__dataclass_fields__)
    assert not any("gold" in f for f in fields)  # nothing served says "gold"


def test_accuracy_with_interval_flags_the_annotator_below_the_threshold(studio_env):
    cid, best = make_campaign("acc", n_items=8, n_gold=4, rate=0.5, overlap=2)
    work_through(cid, "good", best, right=True)
    work_through(cid, "bad", best, right=False, seconds=1.0)  # 1 s for 3 completions: too fast
    with session_scope() as s:
        rows = {r["annotator"]: r for r in gold.annotator_checks(s, cid)}
    good, bad = rows["good"], rows["bad"]
    assert (good["gold_judged"], good["gold_accuracy"], good["below_threshold"]) == (3, 1.0, False)
    assert (bad["gold_judged"], bad["gold_accuracy"], bad["below_threshold"]) == (3, 0.0, True)
    assert good["gold_low"] <= good["gold_accuracy"] <= good["gold_high"]
    assert (good["too_fast"], bad["too_fast"], bad["too_fast_share"]) == (0, 7, 1.0)


def test_a_tie_at_the_top_or_a_flag_on_the_best_is_wrong():
    assert gold.is_correct({"5": 1, "6": 2}, [], 5)
    assert not gold.is_correct({"5": 1, "6": 1}, [], 5)
    assert not gold.is_correct({"6": 1}, [5], 5)
    assert not gold.is_correct({"5": 2, "6": 1}, [], 5)


def test_bad_gold_input_is_a_clear_message_and_changes_nothing(studio_env):
    with session_scope(write=True) as s:
        a = synthetic.seed_campaign(s, "a", n_items=2, k=2)
        empty = list(s.scalars(select(CampaignItem.id).where(CampaignItem.campaign_id == a.id)))
        other = s.scalar(select(Completion.id).where(Completion.item_id == empty[1]))
        from labeling import campaigns

        bare = campaigns.create_campaign(s, "bare", ["No completions yet?"], k=2)
        bare_item = s.scalar(select(CampaignItem.id).where(CampaignItem.campaign_id == bare.id))
    cases = [
        (lambda s: gold.mark_gold(s, empty[0], other), "is not one of item"),
        (lambda s: gold.mark_gold(s, bare_item, 1), "has no completions yet"),
        (lambda s: gold.mark_gold(s, 99_999, 1), "There is no item 99999"),
        (lambda s: gold.set_checks(s, a.id, gold_rate=0.9), "between 0 and 0.5"),
        (lambda s: gold.set_checks(s, a.id, gold_rate=float("nan")), "between 0 and 0.5"),
        (lambda s: gold.set_checks(s, a.id, too_fast_seconds=-1), "between 0 and 60"),
    ]
    for action, message in cases:
        with pytest.raises(StudioError, match=message), session_scope(write=True) as s:
            action(s)
    with session_scope() as s:
        assert gold.gold_items(s, a.id) == [] and gold.gold_items(s, bare.id) == []
    with session_scope(write=True) as s:  # and unmarking works
        first = s.scalar(select(Completion.id).where(Completion.item_id == empty[0]))
        gold.mark_gold(s, empty[0], first)
    with session_scope(write=True) as s:
        assert gold.gold_items(s, a.id) == [{"item_id": empty[0], "gold_completion_id": first, "judgements": 0}]
        gold.mark_gold(s, empty[0], None)
    with session_scope() as s:
        assert gold.gold_items(s, a.id) == []
