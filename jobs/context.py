"""What a runner gets: its spec, an output folder, metrics logging, cancel checks and a model registry."""

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend.db.engine import session_scope
from jobs import queue


class JobCancelled(Exception):
    """Raised inside a runner when the user cancelled the job."""


@dataclass
class JobContext:
    job_id: int
    spec: Any
    out_dir: Path
    _last_cancel_check: float = field(default=0.0, repr=False)
    _cancelled: bool = field(default=False, repr=False)

    def log_metrics(self, step: int, values: dict[str, Any]) -> None:
        """Write numeric values as metrics rows (others are ignored); a locked database skips one write."""
        from sqlalchemy.exc import OperationalError

        numeric = {k: float(v) for k, v in values.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        if numeric:
            try:
                with session_scope(write=True) as s:
                    queue.log_metrics(s, self.job_id, step, numeric)
            except OperationalError as exc:  # losing one chart point beats losing the run
                print(f"metrics at step {step} not written: {exc}", flush=True)

    def should_cancel(self) -> bool:
        """True once the user asked to cancel (checked against the DB at most once a second)."""
        from sqlalchemy.exc import OperationalError

        now = time.monotonic()
        if not self._cancelled and now - self._last_cancel_check >= 1.0:
            self._last_cancel_check = now
            try:
                with session_scope() as s:
                    self._cancelled = queue.is_cancel_requested(s, self.job_id)
            except OperationalError:  # database briefly unavailable: ask again at the next check
                pass
        return self._cancelled

    def raise_if_cancelled(self) -> None:
        if self.should_cancel():
            raise JobCancelled()


def start_heartbeat(job_id: int, every: float) -> threading.Event:
    """Heartbeat from inside the job process too, so a job whose worker was killed outright is not reaped
    while it still runs. Set the returned event to stop."""
    stop = threading.Event()

    def _loop() -> None:
        while not stop.wait(every):
            try:
                with session_scope(write=True) as s:
                    queue.heartbeat_job(s, job_id)
            except Exception:  # noqa: BLE001, S110 - a missed beat is harmless; the next one retries
                pass

    threading.Thread(target=_loop, daemon=True, name=f"job-{job_id}-heartbeat").start()
    return stop
