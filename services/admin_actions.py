"""Admin actions that pages run from buttons: each takes the acting user and checks, in the database, that the
user is still an admin before doing anything.

Button callbacks and fragment reruns run without the entry script's role check, so a tab left open by an admin
who was demoted since would otherwise get one more action per button. The CLI runs with the database's own
rights and calls the lower functions directly.
"""

from typing import Any

from sqlalchemy.orm import Session

from backend.db.engine import read_before_write
from backend.db.tables import Job
from jobs import queue
from labeling import campaigns, gold
from labeling.accounts import require_admin
from services import completion_jobs, evaluation


def set_campaign_status(session: Session, user_id: int, campaign_id: int, status: str) -> dict[str, Any]:
    """Open, close, archive or unarchive a campaign (``campaigns.set_status``)."""
    require_admin(session, user_id)
    return campaigns.set_status(session, campaign_id, status)


def update_campaign(session: Session, user_id: int, campaign_id: int, *, guidelines: str | None = None,
                    overlap: int | None = None) -> dict[str, Any]:
    """Change a campaign's guidelines or overlap (``campaigns.update_campaign``)."""
    require_admin(session, user_id)
    return campaigns.update_campaign(session, campaign_id, guidelines=guidelines, overlap=overlap)


def queue_completions(session: Session, user_id: int, campaign_id: int, **options: Any):
    """Queue the job that makes a campaign's missing completions (``completion_jobs.queue_completions``)."""
    require_admin(session, user_id)
    return completion_jobs.queue_completions(session, campaign_id, **options)


def set_quality_checks(session: Session, user_id: int, campaign_id: int, *, gold_rate: float,
                       too_fast_seconds: float) -> dict[str, float]:
    """A campaign's gold rate and "too fast" time per completion (``gold.set_checks``)."""
    require_admin(session, user_id)
    return gold.set_checks(session, campaign_id, gold_rate=gold_rate, too_fast_seconds=too_fast_seconds)


def mark_gold(session: Session, user_id: int, item_id: int, best_completion_id: int | None) -> dict[str, Any]:
    """Make an item gold with its known best completion, or ordinary again with None (``gold.mark_gold``)."""
    require_admin(session, user_id)
    return gold.mark_gold(session, item_id, best_completion_id)


def revoke_sessions(session: Session, user_id: int, account_id: int) -> int:
    """End every sign-in of an account (``web_sessions.revoke_all``); returns how many were live."""
    from labeling import web_sessions

    require_admin(session, user_id)
    return web_sessions.revoke_all(session, account_id)


def cancel_job(session: Session, user_id: int, job_id: int) -> str:
    """Cancel a queued job, or ask a running one to stop (``jobs.queue.request_cancel``)."""
    require_admin(session, user_id)
    return queue.request_cancel(session, job_id)


def _require_admin_before_submit(session: Session, user_id: int) -> None:
    """The role check, read without taking SQLite's write lock before ``queue.submit`` runs its slow checks."""
    with read_before_write(session) as reader:
        require_admin(reader, user_id)


def submit_job(session: Session, user_id: int, spec, *, submission_token: str | None = None) -> Job:
    """Queue a job (``jobs.queue.submit``, idempotent per ``submission_token``)."""
    _require_admin_before_submit(session, user_id)
    return queue.submit(session, spec, submission_token=submission_token)


def submit_evaluations(session: Session, user_id: int, spec, models: list[str], *,
                       submission_token: str | None = None) -> list[int]:
    """Queue one evaluation per model (``services.evaluation.submit_comparison``)."""
    _require_admin_before_submit(session, user_id)
    return evaluation.submit_comparison(session, spec, models, submission_token=submission_token)


def campaign_overview(session: Session, user_id: int, campaign_id: int) -> dict[str, Any]:
    """What the campaign panel shows every few seconds: progress, each annotator's counts, completion jobs."""
    require_admin(session, user_id)
    return {"progress": campaigns.campaign_progress(session, campaign_id),
            "people": campaigns.annotator_progress(session, campaign_id),
            "jobs": completion_jobs.completion_jobs(session, campaign_id)}
