"""The annotator's side: next task, submit / skip / undo, own history only, closed campaigns, fast queries."""

import pytest
from sqlalchemy import func, select

from backend.db.engine import get_engine, session_scope
from backend.db.tables import Ranking
from backend.errors import StudioError
from labeling import campaigns, synthetic, workbench


@pytest.fixture
def setup(studio_env):
    with session_scope(write=True) as s:
        c = synthetic.seed_campaign(s, "wb", n_items=4, k=3, overlap=2)
        users = [workbench.get_or_create_user(s, n).id for n in ("ann", "bob", "cat")]
        return c.id, users


def ranks_in_order(task, order=None):
    """Rank the task's completions in the given letter order (default A > B > C)."""
    letters = order or [c["letter"] for c in task.completions]
    by_letter = {c["letter"]: c["id"] for c in task.completions}
    return {by_letter[letter]: i + 1 for i, letter in enumerate(letters)}


def n_rankings() -> int:
    with session_scope() as s:
        return s.scalar(select(func.count(Ranking.id)))


def test_task_hides_models_and_shuffles_per_annotator(setup):
    cid, (ann, bob, _) = setup
    with session_scope() as s:
        a, b = workbench.next_task(s, cid, ann), workbench.next_task(s, cid, bob)
        again = workbench.next_task(s, cid, ann)
    assert a.item_id == b.item_id and a.prompt.startswith("Synthetic prompt 0")
    assert [c["letter"] for c in a.completions] == ["A", "B", "C"]
    assert set(a.completions[0]) == {"id", "letter", "text"}  # no model, no source label
    assert [c["id"] for c in again.completions] == [c["id"] for c in a.completions]  # stable for one annotator
    ids = sorted(c["id"] for c in a.completions)  # (a third annotator would get the next item: overlap 2)
    orders = {tuple(workbench.shown_order(user, a.item_id, ids)) for user in range(100, 112)}
    assert len(orders) > 1  # different annotators see different orders


def test_submit_and_next_serves_the_next_item_at_once(setup):
    cid, (ann, *_) = setup
    with session_scope(write=True) as s:
        task = workbench.next_task(s, cid, ann)
        out = workbench.submit_and_next(s, task.item_id, ann, ranks_in_order(task), seconds_spent=7.5, comment=" ok ")
        assert out["next"].item_id != task.item_id and out["next"].done_by_me == 1
        row = s.get(Ranking, out["ranking_id"])
        assert (row.seconds_spent, row.comment, row.skipped) == (7.5, "ok", False)


def test_overlap_is_met_without_serving_an_item_twice(setup):
    cid, users = setup
    seen = {u: [] for u in users}
    with session_scope(write=True) as s:
        for _ in range(4):
            for u in users:
                task = workbench.next_task(s, cid, u)
                if task is not None:
                    seen[u].append(task.item_id)
                    workbench.submit_ranking(s, task.item_id, u, ranks_in_order(task))
        progress = campaigns.campaign_progress(s, cid)
        assert all(workbench.next_task(s, cid, u) is None for u in users)
    assert all(len(items) == len(set(items)) for items in seen.values())
    assert progress["items_complete"] == 4 and progress["judgements"] == 8


def test_skip_is_not_served_again_and_does_not_count_to_overlap(setup):
    cid, (ann, bob, cat) = setup
    with session_scope(write=True) as s:
        first = workbench.next_task(s, cid, ann)
        workbench.submit_ranking(s, first.item_id, ann, {}, skipped=True)
        assert workbench.next_task(s, cid, ann).item_id != first.item_id
        for u in (bob, cat):
            assert workbench.next_task(s, cid, u).item_id == first.item_id
            workbench.submit_ranking(s, first.item_id, u, ranks_in_order(workbench.next_task(s, cid, u)))
        assert campaigns.campaign_progress(s, cid)["items_complete"] == 1


def test_ties_and_flags_are_stored(setup):
    cid, (ann, *_) = setup
    with session_scope(write=True) as s:
        task = workbench.next_task(s, cid, ann)
        a, b, c = (x["id"] for x in task.completions)
        row = workbench.submit_ranking(s, task.item_id, ann, {a: 1, b: 1}, flagged={c})
        assert row.ranks == {str(a): 1, str(b): 1} and row.flags == [c]


def test_a_flag_leaves_no_gap_the_other_ranks_are_re_densified(setup):
    cid, (ann, *_) = setup
    with session_scope(write=True) as s:
        task = workbench.next_task(s, cid, ann)
        a, b, c = (x["id"] for x in task.completions)
        row = workbench.submit_ranking(s, task.item_id, ann, {a: 1, c: 3}, flagged={b})  # b was 2nd, then flagged
        assert row.ranks == {str(a): 1, str(c): 2} and row.flags == [b]


@pytest.mark.parametrize("make, message", [
    (lambda a, b, c: ({a: 1, b: 2}, set()), "no rank"),
    (lambda a, b, c: ({a: 1, b: 3, c: 3}, set()), "gaps"),
    (lambda a, b, c: ({a: 2, b: 3, c: 4}, set()), "whole numbers"),
    (lambda a, b, c: ({a: 1, b: 2, c: 2.0}, set()), "whole numbers"),
    (lambda a, b, c: ({a: 1, b: 2, c: 3}, {c}), "flagged"),
    (lambda a, b, c: ({a: 1, b: 2, -5: 3}, set()), "not part"),
])
def test_invalid_rankings_change_nothing(setup, make, message):
    cid, (ann, *_) = setup
    with session_scope() as s:
        task = workbench.next_task(s, cid, ann)
    ranks, flagged = make(*(x["id"] for x in task.completions))
    with pytest.raises(StudioError, match=message), session_scope(write=True) as s:
        workbench.submit_ranking(s, task.item_id, ann, ranks, flagged=flagged)
    assert n_rankings() == 0


@pytest.mark.parametrize("kwargs, message", [
    ({"seconds_spent": -1}, "non-negative"),
    ({"seconds_spent": float("nan")}, "non-negative"),
    ({"comment": "x" * 5001}, "comment"),
])
def test_bad_time_or_comment_is_refused(setup, kwargs, message):
    cid, (ann, *_) = setup
    with session_scope() as s:
        task = workbench.next_task(s, cid, ann)
    with pytest.raises(StudioError, match=message), session_scope(write=True) as s:
        workbench.submit_ranking(s, task.item_id, ann, ranks_in_order(task), **kwargs)
    assert n_rankings() == 0


def test_double_submit_is_refused(setup):
    cid, (ann, *_) = setup
    with session_scope() as s:
        task = workbench.next_task(s, cid, ann)
    with session_scope(write=True) as s:
        workbench.submit_ranking(s, task.item_id, ann, ranks_in_order(task))
    with pytest.raises(StudioError, match="already submitted"), session_scope(write=True) as s:
        workbench.submit_ranking(s, task.item_id, ann, ranks_in_order(task))
    assert n_rankings() == 1


def test_undo_last_removes_only_my_last_ranking_and_serves_it_again(setup):
    cid, (ann, bob, _) = setup
    with session_scope(write=True) as s:
        for u in (ann, bob, ann):
            task = workbench.next_task(s, cid, u)
            workbench.submit_ranking(s, task.item_id, u, ranks_in_order(task), comment=f"by {u}")
        last = task
    with session_scope(write=True) as s:
        undone = workbench.undo_last(s, ann, cid)
        assert undone["item_id"] == last.item_id and undone["comment"] == f"by {ann}"
        assert undone["ranks"] == ranks_in_order(last)
        again = workbench.next_task(s, cid, ann, item_id=undone["item_id"])
        assert [c["id"] for c in again.completions] == [c["id"] for c in last.completions]
    with session_scope() as s:
        mine = workbench.my_history(s, ann, cid)
        theirs = workbench.my_history(s, bob, cid)
    assert len(mine) == 1 and len(theirs) == 1
    assert all(r["comment"] == f"by {ann}" for r in mine) and theirs[0]["comment"] == f"by {bob}"
    with session_scope(write=True) as s:
        workbench.undo_last(s, ann, cid)
        with pytest.raises(StudioError, match="nothing to undo"):
            workbench.undo_last(s, ann, cid)
        assert workbench.my_progress(s, bob, cid)["ranked"] == 1  # bob's work is untouched


def test_serving_an_already_judged_item_again_is_refused(setup):
    cid, (ann, *_) = setup
    with session_scope(write=True) as s:
        task = workbench.next_task(s, cid, ann)
        workbench.submit_ranking(s, task.item_id, ann, ranks_in_order(task))
        with pytest.raises(StudioError, match="already judged"):
            workbench.next_task(s, cid, ann, item_id=task.item_id)


def test_closed_campaign_refuses_rankings_and_undo(setup):
    cid, (ann, *_) = setup
    with session_scope(write=True) as s:
        task = workbench.next_task(s, cid, ann)
        workbench.submit_ranking(s, task.item_id, ann, ranks_in_order(task))
        task = workbench.next_task(s, cid, ann)
        campaigns.set_status(s, cid, "closed")
        with pytest.raises(StudioError, match="closed"):
            workbench.submit_ranking(s, task.item_id, ann, ranks_in_order(task))
        with pytest.raises(StudioError, match="closed"):
            workbench.next_task(s, cid, ann)
        with pytest.raises(StudioError, match="closed"):
            workbench.undo_last(s, ann, cid)
        assert workbench.my_progress(s, ann, cid) == {"campaign_id": cid, "status": "closed", "ranked": 1,
                                                    "skipped": 0, "has_next": False, "waiting_for_completions": False}
        assert workbench.campaigns_for_annotator(s, ann) == []
        campaigns.set_status(s, cid, "open")
        assert [c["mine"] for c in workbench.campaigns_for_annotator(s, ann)] == [1]


def test_items_without_completions_wait_for_the_generation_job(studio_env):
    with session_scope(write=True) as s:
        cid = campaigns.create_campaign(s, "pending", ["a", "b"]).id
        ann = workbench.get_or_create_user(s, "ann").id
        assert workbench.next_task(s, cid, ann) is None
        assert workbench.my_progress(s, ann, cid)["waiting_for_completions"] is True


def test_unknown_user_is_refused(setup):
    cid, _ = setup
    with session_scope() as s, pytest.raises(StudioError, match="no longer exists"):
        workbench.next_task(s, cid, 9999)


def test_next_item_query_uses_indexes(setup):
    """The query behind every 'next item' probes indexes; it never scans the rankings table."""
    cid, (ann, *_) = setup
    stmt = workbench.next_item_statement(cid, ann, overlap=2, k=3, ready_only=True)
    engine = get_engine()
    sql = str(stmt.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
    with engine.connect() as conn:
        plan = [row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)]
    assert any("campaign_items USING INDEX" in p for p in plan)
    assert all(p.startswith(("SEARCH", "CORRELATED")) for p in plan), plan
    assert sum("rankings USING" in p and "INDEX" in p for p in plan) == 2
