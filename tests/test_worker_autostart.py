"""The app's embedded worker: started when none is alive, never twice at once."""

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

from backend.db.engine import session_scope
from jobs.queue import alive_workers
from services.workers import ensure_local_worker


def _ensure() -> bool:
    with session_scope() as s:
        return ensure_local_worker(s)


def test_two_callers_start_one_worker(studio_env):
    with ThreadPoolExecutor(2) as pool:
        started = list(pool.map(lambda _: _ensure(), range(2)))
    try:
        assert sorted(started) == [False, True]
        with session_scope() as s:
            workers = alive_workers(s)
        assert len(workers) == 1
        assert _ensure() is False
    finally:
        with session_scope() as s:
            for w in alive_workers(s):
                os.kill(w.pid, signal.SIGTERM)
        time.sleep(0.5)
