"""The job queue: a table in the database with an atomic claim.

Services here take a session first and do one short transaction's worth of work. The claim is a
single ``UPDATE … RETURNING`` statement, so two workers (on SQLite or PostgreSQL) never take the
same job.
"""

import math
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.orm import Session

from backend.db.lookup import get_or_raise
from backend.db.tables import Job, JobMetric, Worker, utcnow
from backend.errors import StudioError
from backend.settings import get_settings
from jobs.registry import check_spec
from jobs.specs import SpecModel

FINAL_STATUSES = ("succeeded", "failed", "cancelled")


def submit(session: Session, spec: SpecModel) -> Job:
    """Queue a job after its kind's submit-time check (``jobs.registry``); raises ``StudioError`` when it cannot run."""
    check_spec(session, spec)
    job = Job(kind=spec.kind, name=spec.name or spec.kind, spec=spec.model_dump(mode="json"), status="queued")
    session.add(job)
    session.flush()
    return job


def claim(session: Session, worker_id: str) -> int | None:
    """Atomically move the oldest queued job to running for this worker; returns its id or None.

    One statement: on SQLite the write lock makes it atomic; on PostgreSQL ``FOR UPDATE SKIP LOCKED``
    lets concurrent claimers pass over a row another worker is taking instead of coming back empty.
    """
    now = utcnow()
    oldest = (select(Job.id).where(Job.status == "queued").order_by(Job.id).limit(1)
              .with_for_update(skip_locked=True).scalar_subquery())
    stmt = (update(Job).where(and_(Job.id == oldest, Job.status == "queued"))
            .values(status="running", worker_id=worker_id, started_at=now, heartbeat_at=now)
            .returning(Job.id))
    return session.execute(stmt).scalar_one_or_none()


def heartbeat_job(session: Session, job_id: int, pid: int | None = None) -> None:
    values: dict[str, Any] = {"heartbeat_at": utcnow()}
    if pid is not None:
        values["pid"] = pid
    session.execute(update(Job).where(Job.id == job_id, Job.status == "running").values(**values))


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


def reap_stale(session: Session, stale_after: float | None = None) -> list[int]:
    """End running jobs whose heartbeat stopped (their worker and process died); returns their ids.

    A job the user had asked to cancel ends ``cancelled``; any other ends ``failed`` with the reason.
    """
    seconds = get_settings().stale_after_seconds if stale_after is None else stale_after
    now = utcnow()
    stale = and_(Job.status == "running", Job.heartbeat_at < now - timedelta(seconds=seconds))
    cancelled = session.execute(update(Job).where(stale, Job.cancel_requested.is_(True))
                                .values(status="cancelled", finished_at=now).returning(Job.id)).scalars().all()
    failed = session.execute(update(Job).where(stale).values(
        status="failed", finished_at=now,
        error="The job's worker stopped responding (no heartbeat); resubmit it.").returning(Job.id)).scalars().all()
    return sorted([*cancelled, *failed])


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


def alive_workers(session: Session) -> list[Worker]:
    limit = utcnow() - timedelta(seconds=get_settings().stale_after_seconds)
    return list(session.scalars(select(Worker).where(Worker.stopped_at.is_(None), Worker.heartbeat_at >= limit)))
