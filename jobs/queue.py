"""The job queue: a table in the database with an atomic claim.

Services here take a session first and do one short transaction's worth of work. The claim is a
single ``UPDATE … RETURNING`` statement, so two workers (on SQLite or PostgreSQL) never take the
same job. A submission may carry a token (one per form submission): submitting the same token again
returns the job it already queued instead of queueing a second one.
"""

import math
import os
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.db.engine import BUSY_TIMEOUT_SECONDS, read_before_write
from backend.db.lookup import get_or_raise
from backend.db.tables import Job, JobMetric, Worker, utcnow
from backend.errors import StudioError
from backend.settings import get_settings
from jobs import resources
from jobs.registry import check_spec
from jobs.specs import SpecModel

FINAL_STATUSES = ("succeeded", "failed", "cancelled")


MAX_TOKEN_CHARS = 64
PID_CLOCK_SLACK = timedelta(seconds=60)  # /proc start times vs database times: rounding, clock steps


def find_submission(session: Session, token: str) -> Job | None:
    return session.scalar(select(Job).where(Job.submission_token == token))


def submit(session: Session, spec: SpecModel, submission_token: str | None = None) -> Job:
    """Queue a job after its kind's submit-time check (``jobs.registry``); raises ``StudioError`` when it cannot run.

    ``submission_token`` (at most 64 characters, one per form submission) makes the submit idempotent: the same
    token again (a double click, a rerun of the page) returns the job it queued the first time, whatever its state.
    """
    return submit_many(session, [spec], [submission_token])[0]


def submit_many(session: Session, specs: list[SpecModel], submission_tokens: list[str | None] | None = None) -> list[Job]:
    """Queue several jobs at once (one form submission, e.g. one evaluation per model): every check runs first,
    outside the write lock when the session has not started a transaction, then all are inserted; one failed check
    queues none. ``submission_tokens`` (one per spec, or None) make each insert idempotent as in ``submit``."""
    tokens = [str(t).strip()[:MAX_TOKEN_CHARS] or None if t is not None else None
              for t in (submission_tokens or [None] * len(specs))]
    if len(tokens) != len(specs):
        raise ValueError("submit_many takes one submission token (or None) per spec")
    if all(tokens) and not session.in_transaction():  # a repeated submission: its jobs, without checking again
        with read_before_write(session) as reader:
            known = [reader.scalar(select(Job.id).where(Job.submission_token == t)) for t in tokens]
        if None not in known:
            return [session.get(Job, job_id) for job_id in known]
    with read_before_write(session) as reader:  # the checks read datasets and configs: seconds, not under the lock
        for spec in specs:
            check_spec(reader, spec)
    return [_insert(session, spec, token) for spec, token in zip(specs, tokens, strict=True)]


def _insert(session: Session, spec: SpecModel, submission_token: str | None) -> Job:
    if submission_token and (known_job := find_submission(session, submission_token)) is not None:
        return known_job
    job = Job(kind=spec.kind, name=spec.name or spec.kind, spec=spec.model_dump(mode="json"), status="queued",
              submission_token=submission_token)
    if submission_token is None:
        session.add(job)
        session.flush()
        return job
    try:
        with session.begin_nested():  # two processes with the same token: the unique index keeps one
            session.add(job)
            session.flush()
    except IntegrityError:
        if (known_job := find_submission(session, submission_token)) is None:
            raise
        return known_job
    return job


CLAIM_SCAN = 200  # queued jobs a worker looks through for one it can run


def claim(session: Session, worker_id: str) -> int | None:
    """Atomically move the oldest queued job this worker can run to running for it; returns its id or None.

    The worker's offer (its ``workers`` row: GPUs, labels; none = a CPU-only worker without labels) is matched
    against each queued job's ``resources`` (``jobs.resources``), oldest first; the first match is taken with a
    conditional ``UPDATE … WHERE status = 'queued'``, so two workers never take the same job: the loser moves on
    to the next candidate. On PostgreSQL the chosen row is locked ``FOR UPDATE SKIP LOCKED``, so concurrent
    claimers pass over a row another worker is taking; on SQLite the write lock makes the whole claim atomic.
    """
    now = utcnow()
    # Write first (a claim is a sign of life): on SQLite the transaction then holds the write lock before it reads
    # the candidates, so a deferred transaction cannot fail to upgrade its read lock ("database is locked").
    session.execute(update(Worker).where(Worker.id == worker_id).values(heartbeat_at=now))
    row = session.get(Worker, worker_id)
    offer = resources.Offer.of(row) if row is not None else resources.Offer(host=worker_id)
    gpu_alive = any(w.devices for w in alive_workers(session)) or bool(offer.devices)
    candidates = session.execute(select(Job.id, Job.spec).where(Job.status == "queued").order_by(Job.id)
                                 .limit(CLAIM_SCAN)).all()
    for job_id, spec in candidates:
        need = resources.job_need(spec or {}, gpu_alive)
        if resources.unmet(need, offer) is not None:
            continue
        # Lock only the row we mean to take: locking every candidate would make a slow claimer hide the whole
        # queue from the others. A row another claimer holds is skipped, not waited for.
        mine = session.execute(select(Job.id).where(Job.id == job_id, Job.status == "queued")
                               .with_for_update(skip_locked=True)).scalar_one_or_none()
        if mine is None:
            continue
        taken = session.execute(update(Job).where(and_(Job.id == job_id, Job.status == "queued"))
                                .values(status="running", worker_id=worker_id, started_at=now, heartbeat_at=now)
                                .returning(Job.id)).scalar_one_or_none()
        if taken is not None:
            return taken
    return None


def placement(session: Session, job_id: int, worker_id: str) -> tuple[str, list[int]]:
    """Where a claimed job runs on its worker: ``("cpu", [])`` or ``("cuda", [GPU indices])``."""
    job, row = session.get(Job, job_id), session.get(Worker, worker_id)
    offer = resources.Offer.of(row) if row is not None else resources.Offer(host=worker_id)
    need = resources.job_need(job.spec or {}, bool(offer.devices))
    return (need.devices, resources.assigned_gpus(need, offer) if need.devices == "cuda" else [])


def waiting_reasons(session: Session, jobs: list[Job]) -> dict[int, str]:
    """Why each queued job in ``jobs`` waits when no live worker can run it (jobs next in line are left out)."""
    offers = [resources.Offer.of(w) for w in alive_workers(session)]
    reasons = {}
    for job in jobs:
        if job.status == "queued" and (why := resources.waiting_reason(job.spec or {}, offers)):
            reasons[job.id] = why
    return reasons


def heartbeat_job(session: Session, job_id: int, pid: int | None = None) -> bool:
    """Mark a running job alive; returns False when its row is no longer ``running`` (it ended, or was reaped)."""
    values: dict[str, Any] = {"heartbeat_at": utcnow()}
    if pid is not None:
        values["pid"] = pid
    return session.execute(update(Job).where(Job.id == job_id, Job.status == "running").values(**values)
                           .returning(Job.id)).scalar_one_or_none() is not None


def job_state(session: Session, job_id: int) -> tuple[str | None, bool, str | None]:
    """``(status, cancel_requested, error)`` of a job; status None when there is no such job."""
    row = session.execute(select(Job.status, Job.cancel_requested, Job.error).where(Job.id == job_id)).first()
    return (None, False, None) if row is None else (row[0], bool(row[1]), row[2])


def require_running(session: Session, job_id: int) -> None:
    """Raise ``JobNotRunning`` unless the job's row still says ``running``.

    Runners call it inside the transaction that registers their output, so a job reaped (or cancelled and
    recorded) meanwhile never registers a model its row says it did not make.
    """
    status, _, error = job_state(session, job_id)
    if status != "running":
        raise JobNotRunning(job_id, status, error)


class JobNotRunning(StudioError):
    """The job's row is no longer ``running``: its process must stop without writing results."""

    def __init__(self, job_id: int, status: str | None, error: str | None = None):
        self.job_id, self.status, self.error = job_id, status, error
        super().__init__(f"Job {job_id} is {status or 'gone'}" + (f" ({error})" if error else "")
                         + ": this process stops without registering anything.")


def request_cancel(session: Session, job_id: int) -> str:
    """Cancel a queued job at once, or ask a running one to stop at its next step.

    Returns the job's status afterwards: ``cancelled`` (it was queued, or already cancelled) or
    ``running`` (the cancel was requested). Each change is one conditional UPDATE, so a cancel racing a
    worker's claim either cancels the queued job or flags the running one, never both or neither.
    Raises ``StudioError`` for an unknown job or one that already succeeded or failed.
    """
    now = utcnow()
    if session.execute(update(Job).where(Job.id == job_id, Job.status == "queued")
                       .values(status="cancelled", cancel_requested=True, finished_at=now)
                       .returning(Job.id)).scalar_one_or_none() is not None:
        return "cancelled"
    if session.execute(update(Job).where(Job.id == job_id, Job.status == "running")
                       .values(cancel_requested=True).returning(Job.id)).scalar_one_or_none() is not None:
        return "running"
    status = session.scalar(select(Job.status).where(Job.id == job_id))
    if status is None:
        raise StudioError(f"There is no job {job_id}.")
    if status != "cancelled":
        raise StudioError(f"Job {job_id} already {status}: there is nothing to cancel.")
    return status


def is_cancel_requested(session: Session, job_id: int) -> bool:
    return bool(session.scalar(select(Job.cancel_requested).where(Job.id == job_id)))


def finish(session: Session, job_id: int, status: str, error: str | None = None,
           output_model_id: int | None = None) -> None:
    """Record a job's end once; a job that already ended keeps its first final status."""
    if status not in FINAL_STATUSES:
        raise ValueError(f"finish() takes a final status ({', '.join(FINAL_STATUSES)}), not {status!r}")
    values: dict[str, Any] = {"status": status, "finished_at": utcnow(), "error": error}
    if output_model_id is not None:
        values["output_model_id"] = output_model_id
    session.execute(update(Job).where(Job.id == job_id, Job.status.not_in(FINAL_STATUSES)).values(**values))


def reap_after_seconds() -> float:
    """How long a running job's heartbeat must be silent before it may be reaped: the stale limit, and never less
    than twice SQLite's busy timeout (a writer blocked that long by a lock is slow, not dead)."""
    return max(get_settings().stale_after_seconds, 2 * BUSY_TIMEOUT_SECONDS)


def _process_started(pid: int) -> datetime | None:
    """When a local process started (naive UTC, from /proc), or None when that cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            ticks = int(fh.read().rsplit(")", 1)[-1].split()[19])
        with open("/proc/stat", encoding="ascii") as fh:
            boot = next(int(line.split()[1]) for line in fh if line.startswith("btime "))
        return datetime.fromtimestamp(boot + ticks / os.sysconf("SC_CLK_TCK"), UTC).replace(tzinfo=None)
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _pid_alive(pid: int | None, started_by: datetime | None = None) -> bool:
    """Whether process ``pid`` runs here; with ``started_by``, only a process that started before that time counts
    (a pid the system gave to a newer process after ours died is not ours)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        pass
    try:  # a zombie (dead, not yet waited for) still answers kill(0)
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            if fh.read().rsplit(")", 1)[-1].split()[0] == "Z":
                return False
    except (FileNotFoundError, IndexError):
        return True
    started = _process_started(pid) if started_by is not None else None
    return started is None or started <= started_by + PID_CLOCK_SLACK


def _still_alive(session: Session, job: Job, limit: timedelta, now) -> bool:
    """Whether anything says the job's worker or process still lives (then it is slow, not dead)."""
    here = socket.gethostname()
    worker = session.get(Worker, job.worker_id) if job.worker_id else None
    if worker is not None:
        if worker.stopped_at is None and worker.heartbeat_at is not None and worker.heartbeat_at >= now - limit:
            return True
        if worker.host == here and worker.stopped_at is None and _pid_alive(worker.pid, worker.started_at):
            return True
        host = worker.host
    else:  # run by hand ("manual:<host>:<pid>") or a worker with no row
        parts = (job.worker_id or "").split(":")
        host = parts[1] if parts[0] == "manual" and len(parts) > 2 else (parts[0] if len(parts) > 1 else None)
    # the job's process started before its last heartbeat (a process started since is another one)
    return host == here and _pid_alive(job.pid, job.heartbeat_at)


def reap_stale(session: Session, stale_after: float | None = None) -> list[int]:
    """End running jobs whose worker and process are gone; returns their ids.

    A job is reaped only when its heartbeat is older than ``stale_after`` (default ``reap_after_seconds()``) and
    its worker is gone too: the worker row stopped or silent as long, and, on this host, neither the worker's nor
    the job's process exists. A job the user had asked to cancel ends ``cancelled``; any other ends ``failed`` with
    the reason. Each end is a conditional UPDATE on the stale heartbeat, so a job that beat meanwhile is left alone.
    """
    seconds = reap_after_seconds() if stale_after is None else stale_after
    now = utcnow()
    limit = timedelta(seconds=seconds)
    stale = and_(Job.status == "running", Job.heartbeat_at < now - limit)
    reaped = []
    for job in session.scalars(select(Job).where(stale)).all():
        if _still_alive(session, job, limit, now):
            continue
        if job.cancel_requested:
            values = {"status": "cancelled", "finished_at": now}
        else:
            values = {"status": "failed", "finished_at": now,
                      "error": f"The job's worker and process are gone (no heartbeat for over {seconds:g} s); "
                               "resume it from its last checkpoint or resubmit it."}
        if session.execute(update(Job).where(stale, Job.id == job.id).values(**values)
                           .returning(Job.id)).scalar_one_or_none() is not None:
            reaped.append(job.id)
    return sorted(reaped)


def log_metrics(session: Session, job_id: int, step: int, values: dict[str, float]) -> None:
    """One row per value. NaN/inf are skipped: SQLite stores NaN as NULL, which the NOT NULL column rejects."""
    rows = [JobMetric(job_id=job_id, step=int(step), key=str(k)[:80], value=float(v)) for k, v in values.items()]
    session.add_all(r for r in rows if math.isfinite(r.value))


def list_jobs(session: Session, limit: int = 200) -> list[Job]:
    return list(session.scalars(select(Job).order_by(Job.id.desc()).limit(limit)))


def get_job(session: Session, job_id: int) -> Job:
    return get_or_raise(session, Job, job_id, "job")


def job_metrics(session: Session, job_id: int) -> list[dict[str, Any]]:
    rows = session.execute(select(JobMetric.step, JobMetric.key, JobMetric.value)
                           .where(JobMetric.job_id == job_id).order_by(JobMetric.step, JobMetric.id))
    return [{"step": s, "key": k, "value": v} for s, k, v in rows]


alive_workers = resources.alive_workers  # workers with a fresh heartbeat that did not stop
