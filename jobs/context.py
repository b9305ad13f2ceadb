"""What a runner gets: its spec, an output folder, metrics logging, cancel checks and a model registry.

A job process stops at its next step boundary when the user cancels, and also when its row is no longer
``running`` (reaped, or ended by someone else) or the worker that started it is gone: the heartbeat thread
notices both (``start_heartbeat``), records the end when the worker was killed, and the cancel check
reports it, so the runner stops as it does on a cancel and registers nothing.
"""

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend.db.engine import session_scope
from jobs import queue


class JobCancelled(Exception):
    """Raised inside a runner when the user cancelled the job (or the job must stop: see ``stop_reason``)."""


_STOPPED: dict[int, str] = {}  # job id → why its process must stop (set by the heartbeat thread)


def _row_ended(status: str, error: str | None) -> str:
    return f"its row says {status}" + (f" ({error})" if error else "")


def stop_reason(job_id: int) -> str | None:
    """Why this process must stop the job (its row is no longer running, its worker is gone), or None."""
    return _STOPPED.get(job_id)


@dataclass
class JobContext:
    job_id: int
    spec: Any
    out_dir: Path
    rank: int = 0  # this process's rank when the job runs on several processes (``jobs.distributed``)
    world_size: int = 1
    _last_cancel_check: float = field(default=0.0, repr=False)
    _cancelled: bool = field(default=False, repr=False)

    @property
    def is_main(self) -> bool:
        """True on the process that writes: the only one, or rank 0 of several (metrics, files, the output model)."""
        return self.rank == 0

    def log_metrics(self, step: int, values: dict[str, Any]) -> None:
        """Write numeric values as metrics rows (others are ignored); a locked database skips one write.

        Only rank 0 writes: with several processes the others' values are theirs alone (a runner that wants the
        mean over ranks reduces first), and one row per step and key is what the charts expect.
        """
        from sqlalchemy.exc import OperationalError

        if not self.is_main:
            return

        numeric = {k: float(v) for k, v in values.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        if numeric:
            try:
                with session_scope(write=True) as s:
                    queue.log_metrics(s, self.job_id, step, numeric)
            except OperationalError as exc:  # losing one chart point beats losing the run
                print(f"metrics at step {step} not written: {exc}", flush=True)

    def should_cancel(self) -> bool:
        """True once the user asked to cancel, or the job's row is no longer ``running`` (checked against the DB at
        most once a second), or the heartbeat thread found the job must stop."""
        from sqlalchemy.exc import OperationalError

        if stop_reason(self.job_id):
            self._cancelled = True
        now = time.monotonic()
        if not self._cancelled and now - self._last_cancel_check >= 1.0:
            self._last_cancel_check = now
            try:
                with session_scope() as s:
                    status, cancel, error = queue.job_state(s, self.job_id)
            except OperationalError:  # database briefly unavailable: ask again at the next check
                return self._cancelled
            if status != "running":
                _STOPPED.setdefault(self.job_id, _row_ended(status, error))
            self._cancelled = cancel or status != "running"
        return self._cancelled

    def raise_if_cancelled(self) -> None:
        if self.should_cancel():
            raise JobCancelled()


WORKER_PID_ENV = "STUDIO_WORKER_PID"  # set by the worker for its job child: the process to outlive never


def _worker_gone(worker_pid: int | None) -> bool:
    """The worker that started this process has died (we were re-parented), when we know our worker."""
    return worker_pid is not None and os.getppid() != worker_pid


def _end_orphaned(job_id: int, worker_pid: int) -> None:
    reason = (f"The worker running this job (pid {worker_pid}) was killed; the job stopped at its next step. "
              "Resume it from its last checkpoint (resume_from_job) or resubmit it.")
    _STOPPED.setdefault(job_id, reason)
    print(f"job {job_id}: {reason}", flush=True)
    with session_scope(write=True) as s:
        queue.finish(s, job_id, "failed", reason)


def start_heartbeat(job_id: int, every: float) -> threading.Event:
    """Heartbeat from inside the job process. Set the returned event to stop.

    Each beat also checks that the job may go on: when the row is no longer ``running`` (reaped, ended
    elsewhere) or the worker that started this process (``STUDIO_WORKER_PID``) is gone, ``stop_reason`` says so
    and the runner's cancel checks stop the job; a job orphaned by a killed worker is recorded ``failed`` with the
    reason at once (within one beat), so it can be resumed from its last checkpoint.
    """
    stop = threading.Event()
    _STOPPED.pop(job_id, None)  # a fresh start (tests run several jobs with the same id in one process)
    raw = os.environ.pop(WORKER_PID_ENV, "")  # for this process only: processes it launches have another parent
    worker_pid = int(raw) if raw.isdigit() else None

    def _loop() -> None:
        while not stop.wait(every):
            try:
                if _worker_gone(worker_pid) and job_id not in _STOPPED:
                    _end_orphaned(job_id, worker_pid)
                    continue
                with session_scope(write=True) as s:
                    alive = queue.heartbeat_job(s, job_id)
                    if not alive:
                        status, _, error = queue.job_state(s, job_id)
                if not alive and job_id not in _STOPPED and not stop.is_set():  # (ended by this process: fine)
                    _STOPPED[job_id] = _row_ended(status, error)
                    print(f"job {job_id}: no longer running ({_STOPPED[job_id]}): stopping", flush=True)
            except Exception:  # noqa: BLE001, S110 - a missed beat is harmless; the next one retries
                pass

    threading.Thread(target=_loop, daemon=True, name=f"job-{job_id}-heartbeat").start()
    return stop
