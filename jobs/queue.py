"""The job queue: a table in the database with an atomic claim.

Services here take a session first and do one short transaction's worth of work. The claim is a
single ``UPDATE … RETURNING`` statement, so two workers (on SQLite or PostgreSQL) never take the
same job.
"""

from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.orm import Session

from backend.db.tables import Job, JobMetric, Worker, utcnow
from backend.errors import StudioError
from backend.settings import get_settings
from jobs.specs import EvalSpec, SFTSpec

FINAL_STATUSES = ("succeeded", "failed", "cancelled")


def job_dir(job_id: int) -> Path:
    return get_settings().artifacts_dir / f"job-{job_id}"


def log_path(job_id: int) -> Path:
    return job_dir(job_id) / "job.log"


def check_spec(session: Session, spec: SFTSpec | EvalSpec) -> None:
    """Database-aware checks made before a job is queued (the spec itself is already valid)."""
    from backend.data.datasets_io import check_dataset_ref
    from backend.models.store import resolve

    resolve(session, spec.base_model if isinstance(spec, SFTSpec) else spec.model)
    check_dataset_ref(spec.dataset)


def submit(session: Session, spec: SFTSpec | EvalSpec) -> Job:
    """Queue a job after checking what the spec refers to; raises ``StudioError`` when it cannot run."""
    check_spec(session, spec)
    job = Job(kind=spec.kind, name=spec.name or spec.kind, spec=spec.model_dump(mode="json"), status="queued")
    session.add(job)
    session.flush()
    return job


def claim(session: Session, worker_id: str) -> int | None:
    """Atomically move the oldest queued job to running for this worker; returns its id or None."""
    now = utcnow()
    oldest = select(Job.id).where(Job.status == "queued").order_by(Job.id).limit(1).scalar_subquery()
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
    """Cancel a queued job at once, or ask a running one to stop at its next step. Returns the new status."""
    job = session.get(Job, job_id)
    if job is None:
        raise StudioError(f"There is no job {job_id}.")
    if job.status == "queued":
        job.status, job.finished_at = "cancelled", utcnow()
    elif job.status == "running":
        job.cancel_requested = True
    return job.status


def is_cancel_requested(session: Session, job_id: int) -> bool:
    return bool(session.scalar(select(Job.cancel_requested).where(Job.id == job_id)))


def finish(session: Session, job_id: int, status: str, error: str | None = None,
           output_model_id: int | None = None) -> None:
    """Record a job's end once; a job that already ended keeps its first final status."""
    values: dict[str, Any] = {"status": status, "finished_at": utcnow(), "error": error}
    if output_model_id is not None:
        values["output_model_id"] = output_model_id
    session.execute(update(Job).where(Job.id == job_id, Job.status.not_in(FINAL_STATUSES)).values(**values))


def reap_stale(session: Session, stale_after: float | None = None) -> list[int]:
    """Fail running jobs whose heartbeat stopped (their worker and process died)."""
    limit = utcnow() - timedelta(seconds=stale_after or get_settings().stale_after_seconds)
    stmt = (update(Job).where(Job.status == "running", Job.heartbeat_at < limit)
            .values(status="failed", finished_at=utcnow(),
                    error="The job's worker stopped responding (no heartbeat); resubmit it.")
            .returning(Job.id))
    return list(session.execute(stmt).scalars())


def log_metrics(session: Session, job_id: int, step: int, values: dict[str, float]) -> None:
    session.add_all(JobMetric(job_id=job_id, step=step, key=k, value=float(v)) for k, v in values.items())


def list_jobs(session: Session, limit: int = 200) -> list[Job]:
    return list(session.scalars(select(Job).order_by(Job.id.desc()).limit(limit)))


def get_job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise StudioError(f"There is no job {job_id}.")
    return job


def job_metrics(session: Session, job_id: int) -> list[dict[str, Any]]:
    rows = session.execute(select(JobMetric.step, JobMetric.key, JobMetric.value)
                           .where(JobMetric.job_id == job_id).order_by(JobMetric.step, JobMetric.id))
    return [{"step": s, "key": k, "value": v} for s, k, v in rows]


def read_log_tail(job_id: int, max_bytes: int = 8000) -> str:
    path = log_path(job_id)
    if not path.is_file():
        return ""
    with path.open("rb") as fh:
        fh.seek(max(0, path.stat().st_size - max_bytes))
        return fh.read().decode("utf-8", errors="replace")


def alive_workers(session: Session) -> list[Worker]:
    limit = utcnow() - timedelta(seconds=get_settings().stale_after_seconds)
    return list(session.scalars(select(Worker).where(Worker.stopped_at.is_(None), Worker.heartbeat_at >= limit)))
