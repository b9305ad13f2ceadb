"""Workers: start a local one when none is alive (the app's and the CLI's embedded default), and what the Jobs
page shows about them (their devices, current job, heartbeat age) and about jobs waiting for one."""

import fcntl
import subprocess
import sys
import threading

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.db.engine import session_scope
from backend.db.tables import Job, utcnow
from backend.settings import get_settings
from jobs.queue import alive_workers, list_jobs, reap_stale, waiting_reasons


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


def workers_table(session: Session) -> list[dict]:
    """One row per live worker: host, CPU cores, RAM, GPUs, labels, the job it runs, seconds since its heartbeat."""
    now = utcnow()
    rows = []
    for w in alive_workers(session):
        running = session.scalars(select(Job.id).where(Job.worker_id == w.id, Job.status == "running")).first()
        rows.append({"worker": w.id, "host": w.host, "CPU cores": w.cpu_count, "RAM (GiB)": w.ram_gb,
                     "GPUs": ", ".join(f"{d['index']}: {d['name']} {d['memory_gb']:g} GiB" for d in w.devices or [])
                     or "none", "labels": ", ".join(w.labels or []) or "-",
                     "job": f"#{running}" if running else "idle",
                     "heartbeat (s ago)": round((now - w.heartbeat_at).total_seconds(), 1)})
    return rows


def job_rows(session: Session, limit: int = 200) -> list[dict]:
    """The Jobs page's list: each job with its error, or why it still waits for a worker."""
    jobs = list_jobs(session, limit)
    waiting = waiting_reasons(session, jobs)
    return [{"id": j.id, "kind": j.kind, "name": j.name, "status": j.status,
             "created": j.created_at.strftime("%m-%d %H:%M:%S"), "note": j.error or waiting.get(j.id, "")}
            for j in jobs]


GIB = 2**30


def memory_on_offer(session: Session) -> dict:
    """The most memory one live worker offers a job, in GB (10⁹ bytes, as the estimates): the largest single GPU
    and the largest RAM; None where no live worker has any (``workers``: how many are alive)."""
    from jobs.resources import Offer

    offers = [Offer.of(w) for w in alive_workers(session)]
    gpus = [d["memory_gb"] * GIB / 1e9 for o in offers for d in o.devices]
    rams = [o.ram_gb * GIB / 1e9 for o in offers if o.ram_gb]
    return {"workers": len(offers), "gpu_gb": max(gpus, default=None), "ram_gb": max(rams, default=None)}


def memory_warning(need_gb: float, device: str, on_offer: dict) -> str | None:
    """Why a job estimated at ``need_gb`` per process would not fit any live worker (None when one has room)."""
    fixes = ("lower the batch size or the maximum length, turn gradient checkpointing on, or train LoRA / QLoRA "
             "adapters instead of every weight")
    if device == "cuda":
        biggest = on_offer["gpu_gb"]
        if biggest is None:
            return (f"This job needs a GPU with about {need_gb:,.1f} GB, and no live worker has a GPU: it will wait "
                    "until one starts (`studio worker` on a GPU machine).")
        if need_gb > biggest:
            return (f"This job needs about {need_gb:,.1f} GB per GPU, more than the largest GPU of any live worker "
                    f"({biggest:,.1f} GB): it would run out of memory. To fit, {fixes}.")
        return None
    biggest = on_offer["ram_gb"]
    if biggest is not None and need_gb > biggest:
        return (f"This job needs about {need_gb:,.1f} GB of RAM, more than any live worker has ({biggest:,.1f} GB): "
                f"it would run out of memory. To fit, {fixes}.")
    return None
