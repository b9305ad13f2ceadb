"""The worker: claims jobs from the database and runs each in its own child process.

``studio worker`` (or ``python -m jobs.worker``) runs this loop. Several workers may share one
database: the claim is atomic. Each job runs as ``python -m jobs.run <id>`` (no shell), its output
going to the job's log file; the worker heartbeats for itself and the job, and stops the child if a
cancel was requested and the child did not stop by itself within a grace period.
"""

import argparse
import os
import socket
import subprocess
import sys
import time

from sqlalchemy import update

from backend.db.engine import session_scope, upgrade_database
from backend.db.tables import Job, Worker, utcnow
from backend.settings import get_settings
from jobs import queue

CANCEL_GRACE_SECONDS = 30.0


def _beat(worker_id: str, job_id: int | None = None, pid: int | None = None) -> None:
    with session_scope(write=True) as s:
        s.execute(update(Worker).where(Worker.id == worker_id).values(heartbeat_at=utcnow()))
        if job_id is not None:
            queue.heartbeat_job(s, job_id, pid)


def run_job_process(job_id: int, worker_id: str) -> int:
    """Run one claimed job in a child process until it exits; returns the exit code."""
    settings = get_settings()
    log = queue.log_path(job_id)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as fh:
        child = subprocess.Popen([sys.executable, "-m", "jobs.run", str(job_id)], stdout=fh, stderr=subprocess.STDOUT,
                                 env={**os.environ, "PYTHONUNBUFFERED": "1"})
        cancel_seen_at = None
        while child.poll() is None:
            _beat(worker_id, job_id, child.pid)
            with session_scope() as s:
                cancel = queue.is_cancel_requested(s, job_id)
            if cancel and cancel_seen_at is None:
                cancel_seen_at = time.monotonic()
            if cancel_seen_at and time.monotonic() - cancel_seen_at > CANCEL_GRACE_SECONDS:
                child.terminate()  # the job ignored the cooperative cancel
            time.sleep(min(settings.heartbeat_seconds, 1.0))
    code = child.returncode
    with session_scope(write=True) as s:  # a child that died without reporting still gets a final status
        job = s.get(Job, job_id)
        if job.status == "running":
            status = "cancelled" if job.cancel_requested else "failed"
            reason = None if status == "cancelled" else f"The job process exited with code {code}; see its log."
            queue.finish(s, job_id, status, reason)
    return code


def run_worker(poll_seconds: float = 1.0, max_jobs: int | None = None, idle_exit: float | None = None) -> None:
    """Claim and run jobs until stopped (or until ``max_jobs`` ran / ``idle_exit`` seconds passed idle)."""
    upgrade_database()
    worker_id = f"{socket.gethostname()}:{os.getpid()}"
    with session_scope(write=True) as s:
        s.merge(Worker(id=worker_id, host=socket.gethostname(), pid=os.getpid()))
    done, idle_since = 0, time.monotonic()
    try:
        while max_jobs is None or done < max_jobs:
            _beat(worker_id)
            with session_scope(write=True) as s:
                queue.reap_stale(s)
                job_id = queue.claim(s, worker_id)
            if job_id is None:
                if idle_exit is not None and time.monotonic() - idle_since > idle_exit:
                    break
                time.sleep(poll_seconds)
                continue
            print(f"[worker {worker_id}] running job {job_id}", flush=True)
            run_job_process(job_id, worker_id)
            done, idle_since = done + 1, time.monotonic()
    finally:
        with session_scope(write=True) as s:
            s.execute(update(Worker).where(Worker.id == worker_id).values(stopped_at=utcnow()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="studio worker", description="Run queued jobs.")
    parser.add_argument("--poll", type=float, default=1.0, help="Seconds between queue polls when idle.")
    parser.add_argument("--max-jobs", type=int, default=None, help="Exit after this many jobs.")
    parser.add_argument("--idle-exit", type=float, default=None, help="Exit after this many idle seconds.")
    args = parser.parse_args(argv)
    run_worker(args.poll, args.max_jobs, args.idle_exit)


if __name__ == "__main__":
    main()
