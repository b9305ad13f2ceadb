"""Campaign completions made in batches by the generation engine (tiny model), with provenance and cancel."""

from collections import Counter

import pytest
from sqlalchemy import select

from backend.db.engine import session_scope
from backend.db.tables import Completion
from backend.errors import StudioError
from labeling import campaigns, workbench
from labeling.generation import generate_campaign_completions

SOURCES = [
    {"model": "tiny", "decoding": {"do_sample": True, "temperature": 0.7, "max_new_tokens": 4}, "label": "cool"},
    {"model": "tiny", "decoding": {"do_sample": True, "temperature": 1.3, "max_new_tokens": 4, "seed": 11},
     "label": "hot"},
]


def make_campaign(name="gen", prompts=("Say hi.", "Name a fruit.", "Cake or donut?"), k=3):
    with session_scope(write=True) as s:
        return campaigns.create_campaign(s, name, list(prompts), k=k, sources=SOURCES).id


def completions_by_item():
    with session_scope() as s:
        rows = s.scalars(select(Completion).order_by(Completion.id)).all()
    by_item: dict[int, list[Completion]] = {}
    for c in rows:
        by_item.setdefault(c.item_id, []).append(c)
    return by_item


def test_k_completions_per_item_across_sources_with_provenance(tiny_model):
    cid = make_campaign()
    progress = []
    report = generate_campaign_completions(session_scope, cid, progress_cb=lambda d, t: progress.append((d, t)),
                                           batch_size=2)
    assert report == {"total": 3, "done": 3, "completions": 9, "failed": [], "cancelled": False}
    assert progress == [(0, 3), (2, 3), (3, 3)]
    by_item = completions_by_item()
    assert len(by_item) == 3
    for rows in by_item.values():
        assert Counter(c.source_label for c in rows) == {"cool": 2, "hot": 1}  # slots 0, 2 ← cool; 1 ← hot
        assert all(c.model_name == "tiny" and c.model_id == tiny_model.id and c.template == "chat" for c in rows)
        assert all("<|im_start|>user" in c.prompt_text and c.seed is not None for c in rows)
    hot = [c for rows in by_item.values() for c in rows if c.source_label == "hot"]
    assert {c.seed for c in hot} == {11} and all(c.decoding["temperature"] == 1.3 for c in hot)
    # every item is now ready for annotators, and a second run has nothing to do
    with session_scope(write=True) as s:
        user = workbench.get_or_create_user(s, "ann").id
        assert workbench.next_task(s, cid, user) is not None
    assert generate_campaign_completions(None, cid)["total"] == 0


def test_cancel_stops_between_batches_and_a_rerun_resumes(tiny_model):
    cid = make_campaign()
    calls = iter([False, True])
    report = generate_campaign_completions(session_scope, cid, should_cancel=lambda: next(calls), batch_size=2)
    assert report["cancelled"] and report["done"] == 2 and report["completions"] == 6
    assert sorted(len(v) for v in completions_by_item().values()) == [3, 3]
    resumed = generate_campaign_completions(session_scope, cid, batch_size=2)
    assert resumed["total"] == 1 and resumed["completions"] == 3
    assert sorted(len(v) for v in completions_by_item().values()) == [3, 3, 3]


def test_a_prompt_too_long_for_the_model_fails_alone(tiny_model):
    cid = make_campaign(prompts=("Say hi.", "hello " * 1200))
    report = generate_campaign_completions(session_scope, cid)
    assert report["completions"] == 3 and len(report["failed"]) == 1
    assert "context window" in report["failed"][0]["reason"]
    assert [len(v) for v in completions_by_item().values()] == [3]


def test_works_inside_a_callers_session_and_refuses_archived(tiny_model):
    cid = make_campaign(prompts=("Say hi.",), k=2)
    with session_scope(write=True) as s:
        assert generate_campaign_completions(s, cid)["completions"] == 2
    with session_scope(write=True) as s:
        campaigns.set_status(s, cid, "archived")
    with pytest.raises(StudioError, match="archived"):
        generate_campaign_completions(None, cid)
    with pytest.raises(StudioError, match="no campaign"):
        generate_campaign_completions(None, 999)
