"""A team's shared PostgreSQL under load, with real processes on a real server (tests/pg_support.py).

Workers claim with ``jobs.queue.claim`` (``FOR UPDATE SKIP LOCKED``) and "run" a job by finishing it: the claim
is what is under test, not training. A worker SIGKILLed with a claim uncommitted loses nothing (the server rolls
the claim back and another worker takes the job); one SIGKILLed mid-job leaves a running row that ``reap_stale``
ends once its heartbeat is stale. Annotator processes race on the same items without losing or doubling rankings.
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from backend.db.engine import session_scope
from backend.db.tables import Job, Ranking
from jobs import queue
from labeling import synthetic

pytestmark = pytest.mark.databases("postgres")

REPO = Path(__file__).resolve().parent.parent

# argv: worker id, mode (drain | die-mid-claim | die-mid-job), go file, marker file
WORKER = """
import json, os, sys, time
from pathlib import Path
from backend.db.engine import session_scope
from backend.db.tables import Job
from jobs import queue
worker_id, mode, go, marker = sys.argv[1], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
with session_scope() as s:  # connected and imported: ready to claim the moment "go" appears
    s.get(Job, 1)
Path(f"{marker}.ready").touch()
while not go.exists():
    time.sleep(0.005)
if mode == "die-mid-claim":  # claim, then hang inside the transaction: never committed
    with session_scope(write=True) as s:
        job_id = queue.claim(s, worker_id)
        marker.write_text(str(job_id))
        time.sleep(600)
if mode == "die-mid-job":  # claim and commit, beat once with our pid, then hang "running" it
    with session_scope(write=True) as s:
        job_id = queue.claim(s, worker_id)
    with session_scope(write=True) as s:
        queue.heartbeat_job(s, job_id, pid=os.getpid())
    marker.write_text(str(job_id))
    time.sleep(600)
mine = []
while True:
    with session_scope(write=True) as s:
        job_id = queue.claim(s, worker_id)
    if job_id is None:
        break
    mine.append(job_id)
    time.sleep(0.01)  # the "work": lets the other workers interleave
    with session_scope(write=True) as s:
        queue.finish(s, job_id, "succeeded")
print(json.dumps(mine))
"""


def add_jobs(n: int) -> list[int]:
    with session_scope(write=True) as s:
        jobs = [Job(kind="eval", name=f"j{i}", spec={"kind": "eval"}, status="queued") for i in range(n)]
        s.add_all(jobs)
        s.flush()
        return [j.id for j in jobs]


def start_worker(worker_id: str, mode: str, tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    marker = tmp_path / f"{worker_id}.claimed"
    proc = subprocess.Popen([sys.executable, "-c", WORKER, worker_id, mode, str(tmp_path / "go"), str(marker)],
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    return proc, marker


def drained(procs: dict[str, subprocess.Popen]) -> dict[str, list[int]]:
    claims = {}
    for worker_id, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
        claims[worker_id] = json.loads(out.strip().splitlines()[-1])
    return claims


def job_rows() -> dict[int, tuple[str, str | None, str | None]]:
    with session_scope() as s:
        return {i: (st, w, e) for i, st, w, e in s.execute(select(Job.id, Job.status, Job.worker_id, Job.error))}


def wait_for(path: Path, proc: subprocess.Popen, seconds: float = 60) -> int:
    deadline = time.monotonic() + seconds
    while not path.exists() or not path.read_text():
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)
    return int(path.read_text())


def test_four_worker_processes_claim_forty_jobs_each_exactly_once(studio_env, tmp_path):
    ids = add_jobs(40)
    procs = {f"w{i}": start_worker(f"w{i}", "drain", tmp_path)[0] for i in range(4)}
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"w{i}.claimed.ready").exists() for i in range(4)):  # all at the start line
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs.values()), "a worker never got ready"
        time.sleep(0.02)
    (tmp_path / "go").touch()
    claims = drained(procs)
    claimed = [j for mine in claims.values() for j in mine]
    assert sorted(claimed) == sorted(ids) and len(set(claimed)) == len(claimed), "every job claimed exactly once"
    assert sum(1 for mine in claims.values() if mine) >= 2, f"one worker took everything: {claims}"
    rows = job_rows()
    assert {i: st for i, (st, _, _) in rows.items()} == {i: "succeeded" for i in ids}
    assert {i: w for i, (_, w, _) in rows.items()} == {j: w for w, mine in claims.items() for j in mine}


def test_sigkilled_workers_lose_no_job(studio_env, tmp_path):
    ids = add_jobs(40)
    mid_claim, claim_marker = start_worker("killed-mid-claim", "die-mid-claim", tmp_path)
    mid_job, job_marker = start_worker("killed-mid-job", "die-mid-job", tmp_path)
    (tmp_path / "go").touch()
    uncommitted = wait_for(claim_marker, mid_claim)
    running = wait_for(job_marker, mid_job)
    assert uncommitted != running
    for proc in (mid_claim, mid_job):
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        assert proc.returncode == -signal.SIGKILL
    survivors = {f"w{i}": start_worker(f"w{i}", "drain", tmp_path)[0] for i in range(3)}
    claims = drained(survivors)
    claimed = [j for mine in claims.values() for j in mine]
    # the claim that died uncommitted was rolled back by the server: a survivor ran that job
    assert uncommitted in claimed
    assert sorted(claimed + [running]) == sorted(ids) and len(set(claimed)) == len(claimed)
    rows = job_rows()
    assert rows[running][:2] == ("running", "killed-mid-job")  # nobody else took the job a live claim held
    time.sleep(1.2)
    with session_scope(write=True) as s:  # its heartbeat is stale and its process gone: reaped, with the reason
        assert queue.reap_stale(s, stale_after=1.0) == [running]
    rows = job_rows()
    assert rows[running][0] == "failed" and "worker and process are gone" in rows[running][2]
    assert Counter(st for st, _, _ in rows.values()) == {"succeeded": 39, "failed": 1}


ANNOTATOR = """
import json, sys, time
from pathlib import Path
from backend.db.engine import session_scope
from labeling import workbench
campaign_id, name, go = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
with session_scope(write=True) as s:
    user = workbench.get_or_create_user(s, name).id
while not go.exists():
    time.sleep(0.005)
done = 0
with session_scope(write=True) as s:  # serving reserves a slot, as on the page
    task = workbench.next_task(s, campaign_id, user)
while task is not None:
    ranks = {c["id"]: i + 1 for i, c in enumerate(task.completions)}
    with session_scope(write=True) as s:
        task = workbench.submit_and_next(s, task.item_id, user, ranks)["next"]
    done += 1
print(json.dumps({"user": user, "done": done}))
"""


def test_20_annotator_processes_x_50_submissions_give_1000_rankings(studio_env, tmp_path):
    n_procs, per_proc = 20, 50
    with session_scope(write=True) as s:
        # overlap 20 over 50 items: every annotator ranks every item, so all 20 race on the same items
        cid = synthetic.seed_campaign(s, "pg-race", n_items=per_proc, k=3, overlap=n_procs).id
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", ANNOTATOR, str(cid), f"annotator-{i}", str(tmp_path / "go")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
             for i in range(n_procs)]
    try:
        time.sleep(3.0)
        (tmp_path / "go").touch()
        outputs = [p.communicate(timeout=180) for p in procs]
    finally:  # never leave an annotator polling for its start signal
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err[-2000:]
        assert json.loads(out.strip().splitlines()[-1])["done"] == per_proc
    with session_scope() as s:
        assert s.scalar(select(func.count(Ranking.id))) == n_procs * per_proc
        pairs = s.execute(select(Ranking.item_id, Ranking.user_id)).all()
    assert len(set(pairs)) == len(pairs) == n_procs * per_proc  # no (item, annotator) twice
    assert set(Counter(item for item, _ in pairs).values()) == {n_procs}
