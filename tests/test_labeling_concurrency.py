"""Many annotators submitting at once against one SQLite file: nothing lost, nothing duplicated, no lock errors."""

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from backend.db.engine import session_scope
from backend.db.tables import Ranking
from backend.errors import StudioError
from labeling import synthetic, workbench

pytestmark = pytest.mark.databases("sqlite", "postgres")  # tests/conftest.py: one variant per backend

REPO = Path(__file__).resolve().parent.parent


def rank_all(task) -> dict[int, int]:
    return {c["id"]: i + 1 for i, c in enumerate(task.completions)}


def run_threads(target, n: int) -> list[BaseException]:
    errors: list[BaseException] = []
    start = threading.Barrier(n)

    def wrapped(i: int) -> None:
        try:
            start.wait()
            target(i)
        except BaseException as exc:  # noqa: BLE001 — collected and asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    return errors


def test_20_annotators_x_50_submissions_lose_and_duplicate_nothing(studio_env):
    n_users, per_user = 20, 50
    with session_scope(write=True) as s:
        # overlap 20 over 50 items: every annotator ranks every item, so all 20 race on the same items
        cid = synthetic.seed_campaign(s, "race", n_items=per_user, k=3, overlap=n_users).id
        users = [workbench.get_or_create_user(s, f"annotator-{i}").id for i in range(n_users)]
    submitted: Counter = Counter()

    def annotate(i: int) -> None:
        user = users[i]
        with session_scope(write=True) as s:  # serving reserves a slot, as on the page
            task = workbench.next_task(s, cid, user)
        while task is not None:  # exactly what the page does: submit, show the next task it got back
            with session_scope(write=True) as s:
                task = workbench.submit_and_next(s, task.item_id, user, rank_all(task), seconds_spent=1.0)["next"]
            submitted[user] += 1

    errors = run_threads(annotate, n_users)
    assert not errors, errors[:3]
    assert all(submitted[u] == per_user for u in users)
    with session_scope() as s:
        assert s.scalar(select(func.count(Ranking.id))) == n_users * per_user
        pairs = s.execute(select(Ranking.item_id, Ranking.user_id)).all()
        per_item = Counter(item for item, _ in pairs)
    assert len(set(pairs)) == len(pairs)  # no (item, annotator) twice
    assert set(per_item.values()) == {n_users}


def test_double_submit_race_gives_one_row_and_a_clear_error(studio_env):
    with session_scope(write=True) as s:
        cid = synthetic.seed_campaign(s, "double", n_items=1, k=3).id
        user = workbench.get_or_create_user(s, "ann").id
    with session_scope(write=True) as s:  # serving reserves a slot, as on the page
        task = workbench.next_task(s, cid, user)
    refused: list[str] = []

    def click(_: int) -> None:
        try:
            with session_scope(write=True) as s:
                workbench.submit_ranking(s, task.item_id, user, rank_all(task))
        except StudioError as exc:
            refused.append(str(exc))

    errors = run_threads(click, 8)  # eight clicks at once
    assert not errors, errors[:3]
    assert len(refused) == 7 and all("already submitted" in m for m in refused)
    with session_scope() as s:
        assert s.scalar(select(func.count(Ranking.id))) == 1


WORKER = """
import json, sys
from backend.db.engine import session_scope
from labeling import workbench
campaign_id, name = int(sys.argv[1]), sys.argv[2]
with session_scope(write=True) as s:
    user = workbench.get_or_create_user(s, name).id
done = 0
with session_scope(write=True) as s:  # serving reserves a slot, as on the page
    task = workbench.next_task(s, campaign_id, user)
while task is not None:
    ranks = {c["id"]: i + 1 for i, c in enumerate(task.completions)}
    with session_scope(write=True) as s:
        task = workbench.submit_and_next(s, task.item_id, user, ranks)["next"]
    done += 1
print(json.dumps({"done": done}))
"""


def test_separate_processes_share_the_database_safely(studio_env):
    n_procs, per_proc = 3, 20
    with session_scope(write=True) as s:
        cid = synthetic.seed_campaign(s, "procs", n_items=per_proc, k=3, overlap=n_procs).id
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(cid), f"proc-{i}"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env, cwd=REPO) for i in range(n_procs)]
    outputs = [p.communicate(timeout=180) for p in procs]
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err[-2000:]
        assert "locked" not in err
        assert json.loads(out.strip().splitlines()[-1]) == {"done": per_proc}
    with session_scope() as s:
        assert s.scalar(select(func.count(Ranking.id))) == n_procs * per_proc
        assert s.scalar(select(func.count(func.distinct(Ranking.item_id * 1000 + Ranking.user_id)))) == \
            n_procs * per_proc


@pytest.mark.parametrize("n_threads", [10])
def test_concurrent_undo_and_submit_by_different_annotators(studio_env, n_threads):
    """Undo touches only its own user's rows while others keep submitting."""
    with session_scope(write=True) as s:
        cid = synthetic.seed_campaign(s, "undo", n_items=10, k=2, overlap=n_threads).id
        users = [workbench.get_or_create_user(s, f"u{i}").id for i in range(n_threads)]

    def work(i: int) -> None:
        for _ in range(10):
            with session_scope(write=True) as s:
                task = workbench.next_task(s, cid, users[i])
                workbench.submit_ranking(s, task.item_id, users[i], rank_all(task))
        if i % 2 == 0:  # even annotators undo their last three
            for _ in range(3):
                with session_scope(write=True) as s:
                    workbench.undo_last(s, users[i], cid)

    assert not run_threads(work, n_threads)
    with session_scope() as s:
        per_user = Counter(s.scalars(select(Ranking.user_id)))
    assert all(per_user[u] == (7 if i % 2 == 0 else 10) for i, u in enumerate(users))


RACER = """
import json, sys, time
from pathlib import Path
from backend.db.engine import session_scope
from labeling import workbench
campaign_id, name, go = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
with session_scope(write=True) as s:
    user = workbench.get_or_create_user(s, name).id
while not go.exists():
    time.sleep(0.002)
with session_scope(write=True) as s:  # open the workbench: the item is served (and its slot reserved) or not
    task = workbench.next_task(s, campaign_id, user)
got = task.item_id if task else None
if task is not None:
    time.sleep(0.2)  # reading the completions
    with session_scope(write=True) as s:
        workbench.submit_ranking(s, task.item_id, user, {c["id"]: i + 1 for i, c in enumerate(task.completions)})
print(json.dumps({"got": got}))
"""


def test_annotators_racing_for_the_last_slot_keep_the_overlap_exact(studio_env, tmp_path):
    """Eight annotator processes open the workbench at the same moment when one item has one open slot left (its
    overlap is 2 and one annotator ranked it): exactly one of them gets it, nobody gets an error."""
    n_procs = 8
    with session_scope(write=True) as s:
        cid = synthetic.seed_campaign(s, "last-slot", n_items=1, k=3, overlap=2).id
        first = workbench.get_or_create_user(s, "first").id
        task = workbench.next_task(s, cid, first)
        workbench.submit_ranking(s, task.item_id, first, rank_all(task))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", RACER, str(cid), f"racer-{i}", str(tmp_path / "go")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
             for i in range(n_procs)]
    try:
        time.sleep(3.0)  # every process imported and waiting
        (tmp_path / "go").touch()
        outputs = [p.communicate(timeout=180) for p in procs]
    finally:  # never leave a racer polling for its start signal
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err[-2000:]
    got = [json.loads(out.strip().splitlines()[-1])["got"] for out, _ in outputs]
    assert sum(g is not None for g in got) == 1, got
    with session_scope() as s:
        assert s.scalar(select(func.count(Ranking.id)).where(Ranking.skipped.is_(False))) == 2  # the overlap, exactly


def test_an_expired_reservation_frees_its_slot_and_a_skip_gives_it_back(studio_env, monkeypatch):
    from datetime import timedelta

    from backend.db.tables import utcnow
    from labeling import reservations

    with session_scope(write=True) as s:
        cid = synthetic.seed_campaign(s, "expiry", n_items=1, k=2, overlap=1).id
        ann, ben = (workbench.get_or_create_user(s, n).id for n in ("ann", "ben"))
    with session_scope(write=True) as s:
        held = workbench.next_task(s, cid, ann)
    with session_scope(write=True) as s:
        assert workbench.next_task(s, cid, ben) is None  # ann holds the only slot
        assert workbench.next_task(s, cid, ann).item_id == held.item_id  # a reload serves ann the same item
    later = utcnow() + reservations.RESERVATION + timedelta(seconds=1)
    monkeypatch.setattr(reservations, "utcnow", lambda: later)
    monkeypatch.setattr(workbench, "utcnow", lambda: later)
    with session_scope(write=True) as s:
        assert workbench.next_task(s, cid, ben).item_id == held.item_id  # ann's reservation ran out: ben's now
        workbench.submit_ranking(s, held.item_id, ben, {}, skipped=True)  # ben passes: the slot goes back
    with session_scope(write=True) as s:
        task = workbench.next_task(s, cid, ann)
        assert task is not None and task.item_id == held.item_id
        workbench.submit_ranking(s, task.item_id, ann, rank_all(task))
    with session_scope(write=True) as s:
        assert workbench.next_task(s, cid, ben) is None  # ranked: the slot is used for good
