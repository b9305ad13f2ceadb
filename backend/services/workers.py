"""Start a local background worker when none is alive (the app's and the CLI's embedded default)."""

import subprocess
import sys

from sqlalchemy.orm import Session

from backend.settings import get_settings
from jobs.queue import alive_workers


def ensure_local_worker(session: Session) -> bool:
    """Start ``python -m jobs.worker`` detached if no worker has a fresh heartbeat. Returns True if started."""
    if alive_workers(session):
        return False
    log = get_settings().resolved_data_dir / "worker.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as fh:
        # A new session: the worker outlives the page or CLI process that started it.
        subprocess.Popen([sys.executable, "-m", "jobs.worker"], stdout=fh, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, start_new_session=True)
    return True
