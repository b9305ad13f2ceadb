"""A campaign's completions come from a background job (``label_completions``): launch it, and read its state.

The admin page creates a campaign and queues its completion job in one transaction (``launch_campaign``), so a
campaign never exists without a way to get its completions. One job per campaign runs at a time; a finished,
failed or cancelled one can be queued again and resumes where the last stopped.
"""

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.db.tables import Job, JobMetric
from backend.errors import StudioError
from jobs import queue
from jobs.specs import LabelCompletionsSpec
from labeling.accounts import require_admin
from labeling.campaigns import campaign_summary, create_campaign_from, find_campaign

KIND = "label_completions"
ACTIVE = ("queued", "running")


def _jobs_of(campaign_id: int):
    return select(Job).where(Job.kind == KIND, Job.spec["campaign_id"].as_integer() == campaign_id)


def queue_completions(session: Session, campaign_id: int, *, batch_size: int = 8, precision: str = "auto",
                      submission_token: str | None = None) -> Job:
    """Queue the job that generates the campaign's missing completions.

    ``submission_token`` (one per button click, ``queue.submit``'s) makes a double click return the job the first
    click queued instead of refusing the second as "already making this campaign's completions".

    Raises:
        StudioError: no such campaign, archived, nothing missing, or a job for it is already queued or running.
    """
    if submission_token and (known := queue.find_submission(session, submission_token)) is not None:
        return known
    campaign = find_campaign(session, campaign_id)
    active = session.scalar(_jobs_of(campaign.id).where(Job.status.in_(ACTIVE)).limit(1))
    if active is not None:
        raise StudioError(f"Job {active.id} is already making this campaign's completions ({active.status}).")
    spec = LabelCompletionsSpec(campaign_id=campaign.id, campaign=campaign.name, batch_size=batch_size,
                                precision=precision, name=f"completions · {campaign.name}"[:120])
    return queue.submit(session, spec, submission_token=submission_token)


def launch_campaign(session: Session, admin_id: int, name: str, *, batch_size: int = 8,
                    submission_token: str | None = None, **options: Any) -> dict[str, Any]:
    """Create a campaign (``campaigns.create_campaign_from`` options) and queue its completion job.

    Returns the campaign summary plus ``job_id``. Both happen in the caller's transaction: a bad option
    leaves neither a campaign nor a job behind. The same ``submission_token`` again (a double click) returns what
    the first click created instead of refusing the campaign's name as taken.
    """
    require_admin(session, admin_id)
    if submission_token and (known := queue.find_submission(session, submission_token)) is not None:
        return {**campaign_summary(session, known.spec["campaign_id"]), "job_id": known.id}
    summary = create_campaign_from(session, name, **options)
    job = queue_completions(session, summary["id"], batch_size=batch_size, submission_token=submission_token)
    return {**summary, "job_id": job.id}


def completion_jobs(session: Session, campaign_id: int, limit: int = 5) -> list[dict[str, Any]]:
    """The campaign's latest completion jobs, newest first, with their share of items done (0–1)."""
    jobs = session.scalars(_jobs_of(campaign_id).order_by(Job.id.desc()).limit(limit)).all()
    rows = []
    for job in jobs:
        progress = session.scalar(select(JobMetric.value).where(JobMetric.job_id == job.id,
                                                                JobMetric.key == "label/progress")
                                  .order_by(JobMetric.step.desc(), JobMetric.id.desc()).limit(1))
        rows.append({"id": job.id, "status": job.status, "error": job.error or "",
                     "progress": 1.0 if job.status == "succeeded" else float(progress or 0.0),
                     "created_at": job.created_at.isoformat(timespec="seconds") if job.created_at else None})
    return rows


def active_job(session: Session, campaign_id: int) -> dict[str, Any] | None:
    """The queued or running completion job of the campaign, if any."""
    return next((j for j in completion_jobs(session, campaign_id, limit=3) if j["status"] in ACTIVE), None)


def complete_next_item(campaign_id: int, user_id: int, session_factory=None) -> dict[str, Any]:
    """On-demand fallback of the workbench: generate the completions of the next item this annotator would get.

    Used when no completion job is queued or running (e.g. it was cancelled, or items were added later).
    Generation runs outside any transaction (``labeling.generation``). Returns the generation report, with
    ``total`` 0 when nothing waits for completions.

    Raises:
        StudioError: the item could not be completed (the reason names the source).
    """
    from backend.db.engine import session_scope
    from labeling.generation import generate_campaign_completions
    from labeling.workbench import next_item

    factory = session_factory or session_scope
    with factory() as s:
        item = next_item(s, campaign_id, user_id)
        item_id = item.id if item is not None else None
    if item_id is None:
        return {"total": 0, "done": 0, "completions": 0, "failed": [], "cancelled": False}
    report = generate_campaign_completions(factory, campaign_id, item_ids=[item_id], batch_size=1)
    if report["failed"]:
        raise StudioError(f"Could not generate this item's completions: {report['failed'][0]['reason']}")
    return report
