"""The worker: claims jobs from the database and runs each in its own child process.

``studio worker`` (or ``python -m jobs.worker``) runs this loop. Several workers may share one
database: the claim is atomic. Each job runs as ``python -m jobs.run <id>`` (no shell), its output
going to the job's log file; the worker heartbeats for itself and the job, and stops the child if a
cancel was requested and the child did not stop by itself within a grace period (SIGTERM, then
SIGKILL).

Every claimed job gets a final status: the child records its own; when it dies without doing so
(killed, crashed interpreter) the worker records it. When the worker itself is stopped (Ctrl-C,
SIGTERM) it stops its running child first, so no job process is left behind competing for the
machine with the next worker. A worker killed outright (SIGKILL) cannot clean up: its child notices
at its next heartbeat that its worker is gone (``STUDIO_WORKER_PID``), records the job ``failed`` with the
reason and stops at its next step, leaving its checkpoints for a resume. A job whose worker and process
are both gone is failed by ``queue.reap_stale`` once its heartbeat is well past SQLite's busy timeout.
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback

from sqlalchemy import update

from backend.db.engine import session_scope, upgrade_database
from backend.db.tables import Job, Worker, utcnow
from backend.errors import StudioError
from backend.settings import get_settings, job_environment
from jobs import artifacts, queue, resources
from jobs.context import WORKER_PID_ENV
from jobs.run import WORKER_ID_ENV

CANCEL_GRACE_SECONDS = 30.0  # a cancelled job gets this long to stop at a step boundary
KILL_GRACE_SECONDS = 10.0  # after SIGTERM, this long before SIGKILL


def _beat(worker_id: str, job_id: int | None = None, pid: int | None = None) -> None:
    with session_scope(write=True) as s:
        s.execute(update(Worker).where(Worker.id == worker_id).values(heartbeat_at=utcnow()))
        if job_id is not None:
            queue.heartbeat_job(s, job_id, pid)


def child_command(job_id: int) -> list[str]:
    return [sys.executable, "-m", "jobs.run", str(job_id)]


def _note(job_id: int, text: str) -> None:
    """A line from the worker in the job's log (where the user looks), and on the worker's output."""
    print(f"[worker] job {job_id}: {text}", flush=True)
    try:
        with artifacts.log_path(job_id).open("a", encoding="utf-8") as fh:
            fh.write(f"[worker] {text}\n")
    except OSError:
        pass


def _stop_child(child: subprocess.Popen, grace: float = KILL_GRACE_SECONDS) -> None:
    """SIGTERM the child (it records its end), then SIGKILL it if it is still there after ``grace``."""
    if child.poll() is not None:
        return
    child.terminate()
    try:
        child.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def _record_end(job_id: int, code: int | None, reason: str | None = None) -> None:
    """Give a job whose process ended without reporting (or that we had to stop) its final status."""
    with session_scope(write=True) as s:
        job = s.get(Job, job_id)
        if job is None or job.status != "running":
            return
        if job.cancel_requested:
            queue.finish(s, job_id, "cancelled")
            return
        if reason is None:
            if code is not None and code < 0:
                try:
                    name = signal.Signals(-code).name
                except ValueError:
                    name = f"signal {-code}"
                hint = " (out of memory?)" if -code == signal.SIGKILL else ""
                reason = f"The job process was killed by {name}{hint}; see its log."
            else:
                reason = f"The job process exited with code {code} without reporting a result; see its log."
        queue.finish(s, job_id, "failed", reason)


def run_job_process(job_id: int, worker_id: str, cancel_grace: float | None = None) -> int:
    """Run one claimed job in a child process until it exits; returns the exit code."""
    cancel_grace = CANCEL_GRACE_SECONDS if cancel_grace is None else cancel_grace
    settings = get_settings()
    tick = min(settings.heartbeat_seconds, 1.0)
    log = artifacts.log_path(job_id)
    log.parent.mkdir(parents=True, exist_ok=True)
    with session_scope() as s:
        devices, gpus = queue.placement(s, job_id, worker_id)
    _note(job_id, f"runs on {'GPUs ' + ','.join(map(str, gpus)) if devices == 'cuda' else 'the CPU'} of {worker_id}")
    with log.open("ab") as fh:  # the child holds its own copy of the descriptor
        child = subprocess.Popen(child_command(job_id), stdout=fh,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 env={**job_environment(), "PYTHONUNBUFFERED": "1",
                                      # the job sees only its GPUs (none for a CPU job on a GPU worker)
                                      "CUDA_VISIBLE_DEVICES": ",".join(map(str, gpus)),
                                      WORKER_ID_ENV: worker_id, WORKER_PID_ENV: str(os.getpid())})
    try:
        cancel_seen_at = terminated_at = None
        why = "cancel not honoured"
        while child.poll() is None:
            try:
                _beat(worker_id, job_id, child.pid)
                with session_scope() as s:
                    status, cancel, _ = queue.job_state(s, job_id)
                if (cancel or status != "running") and cancel_seen_at is None:
                    # the child stops by itself at its next step (its own checks see the same row)
                    cancel_seen_at = time.monotonic()
                    why = "cancel not honoured" if cancel else f"the job's row says {status}, its process still runs"
            # a busy or briefly unreachable database must not orphan the child
            except Exception as exc:  # noqa: BLE001
                print(f"[worker {worker_id}] heartbeat failed: {type(exc).__name__}: {exc}", flush=True)
            now = time.monotonic()
            if terminated_at is None and cancel_seen_at is not None and now - cancel_seen_at >= cancel_grace:
                _note(job_id, f"{why} after {cancel_grace:g} s: terminating the job process")
                child.terminate()
                terminated_at = now
            elif terminated_at is not None and now - terminated_at > KILL_GRACE_SECONDS and child.poll() is None:
                _note(job_id, "the job process ignored SIGTERM: killing it")
                child.kill()
            try:
                child.wait(timeout=tick)
            except subprocess.TimeoutExpired:
                pass
    except BaseException as exc:  # the worker is stopping (Ctrl-C, SIGTERM) or broke: take the child down too
        _note(job_id, f"the worker is stopping ({type(exc).__name__}): stopping the job process")
        _stop_child(child)
        _record_end(job_id, child.returncode,
                    f"The worker running this job stopped ({type(exc).__name__}); resubmit the job.")
        raise
    _record_end(job_id, child.returncode)
    return child.returncode


def _register(worker_id: str, gpus: list[int] | None = None) -> resources.Offer:
    """Record this worker and what it offers: CPU cores, RAM, labels, and the GPUs it may use (``--gpus``, else
    ``CUDA_VISIBLE_DEVICES``, else every GPU of the host), leaving out GPUs another live worker on this host
    already offers. The choice is made under a per-host lock so two workers starting together never share one."""
    labels = resources.parse_labels(os.environ.get(resources.LABELS_ENV))
    if gpus is None:
        gpus = resources.parse_gpu_list(os.environ.get("CUDA_VISIBLE_DEVICES"))
    host = socket.gethostname()
    with resources.gpu_lock(get_settings().resolved_data_dir):
        with session_scope() as s:
            taken = {d["index"] for w in queue.alive_workers(s) if w.host == host and w.id != worker_id
                     for d in (w.devices or [])}
        devices = resources.choose_gpus(resources.discover_gpus(), gpus, taken)
        offer = resources.Offer(host=host, cpu_count=os.cpu_count() or 1, ram_gb=resources.ram_gb(),
                                devices=devices, labels=labels)
        now = utcnow()
        with session_scope(write=True) as s:  # a reused id (same host:pid) must look alive again
            s.merge(Worker(id=worker_id, host=host, pid=os.getpid(), started_at=now, heartbeat_at=now,
                           stopped_at=None, cpu_count=offer.cpu_count, ram_gb=offer.ram_gb, devices=devices,
                           labels=labels))
    return offer


def run_worker(poll_seconds: float = 1.0, max_jobs: int | None = None, idle_exit: float | None = None,
               gpus: list[int] | None = None) -> None:
    """Claim and run jobs until stopped (or until ``max_jobs`` ran / ``idle_exit`` seconds passed idle)."""
    upgrade_database()
    worker_id = f"{socket.gethostname()}:{os.getpid()}"
    offer = _register(worker_id, gpus)
    print(f"[worker {worker_id}] offers {offer.cpu_count} CPU cores, {offer.ram_gb:g} GiB RAM, "
          f"{offer.describe()}", flush=True)
    done, idle_since = 0, time.monotonic()
    try:
        while max_jobs is None or done < max_jobs:
            try:
                _beat(worker_id)
                with session_scope(write=True) as s:
                    queue.reap_stale(s)
                    job_id = queue.claim(s, worker_id)
            # e.g. the database is locked past its timeout: try again later
            except Exception as exc:  # noqa: BLE001
                print(f"[worker {worker_id}] could not poll the queue: {type(exc).__name__}: {exc}", flush=True)
                job_id = None
            if job_id is None:
                if idle_exit is not None and time.monotonic() - idle_since > idle_exit:
                    break
                time.sleep(poll_seconds)
                continue
            print(f"[worker {worker_id}] running job {job_id}", flush=True)
            try:
                code = run_job_process(job_id, worker_id)
                print(f"[worker {worker_id}] job {job_id} exited with code {code}", flush=True)
            # could not start or watch the child: the job fails, the worker goes on
            except Exception as exc:  # noqa: BLE001
                traceback.print_exc()
                try:
                    with session_scope(write=True) as s:
                        queue.finish(s, job_id, "failed",
                                     f"The worker could not run the job: {type(exc).__name__}: {exc}")
                except Exception:  # noqa: BLE001
                    traceback.print_exc()
            done, idle_since = done + 1, time.monotonic()
    finally:
        with session_scope(write=True) as s:
            s.execute(update(Worker).where(Worker.id == worker_id).values(stopped_at=utcnow()))


def _terminate(signum, _frame) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="studio worker", description="Run queued jobs.")
    parser.add_argument("--poll", type=float, default=1.0, help="Seconds between queue polls when idle.")
    parser.add_argument("--max-jobs", type=int, default=None, help="Exit after this many jobs.")
    parser.add_argument("--idle-exit", type=float, default=None, help="Exit after this many idle seconds.")
    parser.add_argument("--gpus", default=None, help="GPU indices this worker may use, e.g. 0,1 ('' = none; default: "
                        "CUDA_VISIBLE_DEVICES, else every GPU not offered by another worker on this host).")
    args = parser.parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)  # stop like Ctrl-C: the running job is stopped and recorded
    try:
        run_worker(args.poll, args.max_jobs, args.idle_exit, resources.parse_gpu_list(args.gpus))
    except StudioError as exc:  # a bad setting, database URL or data dir: one line, no traceback
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
