"""Start a local background worker when none is alive (the app's and the CLI's embedded default)."""

import fcntl
import subprocess
import sys
import threading

from sqlalchemy.orm import Session

from backend.db.engine import session_scope
from backend.settings import get_settings
from jobs.queue import alive_workers, reap_stale


def ensure_local_worker(session: Session) -> bool:
    """Start ``python -m jobs.worker`` detached if no worker has a fresh heartbeat. Returns True if started.

    Also fails jobs whose worker died, so a dead job never shows as running with no worker left.
    """
    data_dir = get_settings().resolved_data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / "worker.lock").open("w") as lock:
        # Two pages (or a page and the CLI) checking at once must not both start a worker.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if alive_workers(session):
            return False
        with session_scope(write=True) as s:
            reap_stale(s)
        with (data_dir / "worker.log").open("ab") as log:
            # A new session: the worker outlives the page or CLI process that started it.
            child = subprocess.Popen([sys.executable, "-m", "jobs.worker"], stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        _wait_until_registered(child)
    threading.Thread(target=child.wait, daemon=True).start()  # reap it when it exits: no zombie
    return True


def _wait_until_registered(child: subprocess.Popen, timeout: float = 20.0) -> None:
    """Hold the lock until the new worker has written its heartbeat (or died), so a second caller sees it."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and child.poll() is None:
        with session_scope() as s:
            if alive_workers(s):
                return
        time.sleep(0.25)
