"""Labeling services on a temp database: campaigns, items, completions and validated rankings."""

import pytest
from sqlalchemy import func, select

from backend.db.engine import session_scope
from backend.db.tables import CampaignItem, Completion, Ranking
from backend.errors import StudioError
from labeling import campaigns, workbench


@pytest.fixture
def campaign(studio_env):
    with session_scope(write=True) as s:
        c = campaigns.create_campaign(s, "c1", ["Say hi.", "Name a fruit.", "  ", "Say hi."], k=3, overlap=2)
        for item in s.scalars(select(CampaignItem).where(CampaignItem.campaign_id == c.id)):
            s.add_all(Completion(prompt_id=item.prompt_id, item_id=item.id, model_name="stub", prompt_text="p",
                                 text=f"answer {j} to {item.id}", source_label="stub") for j in range(3))
        return c.id


def _item_with_completions(campaign_id, user_name="ann"):
    with session_scope(write=True) as s:
        user = workbench.get_or_create_user(s, user_name)
        item = workbench.next_item(s, campaign_id, user.id)
        ids = [c.id for c in workbench.item_completions(s, item.id)]
        return user.id, item.id, ids


def test_campaign_dedupes_and_drops_empty_prompts(campaign):
    with session_scope() as s:
        [row] = workbench.list_campaigns(s)
    assert row["items"] == 2 and row["needed"] == 4 and row["rankings"] == 0


def test_ranking_saved_once_and_next_item_moves_on(campaign):
    user_id, item_id, ids = _item_with_completions(campaign)
    with session_scope(write=True) as s:
        workbench.submit_ranking(s, item_id, user_id, {ids[0]: 2, ids[1]: 1, ids[2]: 3}, seconds_spent=4.2)
    with pytest.raises(StudioError, match="already"), session_scope(write=True) as s:
        workbench.submit_ranking(s, item_id, user_id, {ids[0]: 1, ids[1]: 2, ids[2]: 3})
    with session_scope() as s:
        assert s.scalar(select(func.count(Ranking.id))) == 1
        assert workbench.next_item(s, campaign, user_id).id != item_id


@pytest.mark.parametrize("ranks_of, flagged_of, message", [
    (lambda ids: {ids[0]: 1, ids[1]: 2}, lambda ids: set(), "Rank every completion"),
    (lambda ids: {ids[0]: 1, ids[1]: 2, ids[2]: 7}, lambda ids: set(), "whole numbers"),
    (lambda ids: {ids[0]: 1, ids[1]: 2, ids[2]: 3}, lambda ids: {ids[2]}, "flagged"),
    (lambda ids: {ids[0]: 1, ids[1]: 2, 999999: 3}, lambda ids: set(), "not part"),
])
def test_invalid_rankings_are_refused_and_change_nothing(campaign, ranks_of, flagged_of, message):
    user_id, item_id, ids = _item_with_completions(campaign)
    with pytest.raises(StudioError, match=message), session_scope(write=True) as s:
        workbench.submit_ranking(s, item_id, user_id, ranks_of(ids), flagged=flagged_of(ids))
    with session_scope() as s:
        assert s.scalar(select(func.count(Ranking.id))) == 0


def test_flags_and_ties_are_accepted(campaign):
    user_id, item_id, ids = _item_with_completions(campaign)
    with session_scope(write=True) as s:
        row = workbench.submit_ranking(s, item_id, user_id, {ids[0]: 1, ids[1]: 1}, flagged={ids[2]})
        assert row.flags == [ids[2]]


def test_overlap_serves_item_to_second_annotator_until_met(campaign):
    u1, item_id, ids = _item_with_completions(campaign, "a")
    with session_scope(write=True) as s:
        workbench.submit_ranking(s, item_id, u1, {ids[0]: 1, ids[1]: 2, ids[2]: 3})
        u2 = workbench.get_or_create_user(s, "b").id
        assert workbench.next_item(s, campaign, u2).id == item_id
        workbench.submit_ranking(s, item_id, u2, {ids[0]: 1, ids[1]: 3, ids[2]: 2})
        u3 = workbench.get_or_create_user(s, "c").id
        assert workbench.next_item(s, campaign, u3).id != item_id


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "x", "prompts": []}, "empty"),
    ({"name": "x", "prompts": ["a"], "k": 1}, "between 2 and 9"),
    ({"name": "x", "prompts": ["a"], "k": 10}, "between 2 and 9"),
    ({"name": " ", "prompts": ["a"]}, "name"),
])
def test_bad_campaigns_are_refused(studio_env, kwargs, message):
    with pytest.raises(StudioError, match=message), session_scope(write=True) as s:
        campaigns.create_campaign(s, **kwargs)
    with session_scope() as s:
        assert workbench.list_campaigns(s) == []

