"""The job queue: a table in the database with an atomic claim.

Services here take a session first and do one short transaction's worth of work. The claim is a
single ``UPDATE … RETURNING`` statement, so two workers (on SQLite or PostgreSQL) never take the
same job.
"""

import math
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.orm import Session

from backend.db.tables import Job, JobMetric, Worker, utcnow
from backend.errors import StudioError
from backend.settings import get_settings
from jobs.rl import checks as rl_checks
from jobs.specs import EvalSpec, SFTSpec

FINAL_STATUSES = ("succeeded", "failed", "cancelled")


def job_dir(job_id: int) -> Path:
    return get_settings().artifacts_dir / f"job-{job_id}"


def log_path(job_id: int) -> Path:
    return job_dir(job_id) / "job.log"


def check_spec(session: Session, spec: Any) -> None:
    """Database-aware checks made before a job is queued (the spec itself is already valid).

    Cheap checks only: the model resolves, the dataset exists (a hub dataset is reachable) and has the split
    the job reads, templates use a data field, a resumed job has a usable checkpoint, early stopping has
    validation data, an evaluated adapter fits its base (shapes only, no weights), extra metrics and the
    toxicity model load. Rows are not read here: column and row problems fail the job with a readable error
    (and ``services.training.preview_examples`` shows them before launch). A job kind without an
    entry in ``SPEC_CHECKS`` is queued as it is.
    """
    check = SPEC_CHECKS.get(spec.kind)
    if check is not None:
        check(session, spec)


def _model_and_splits(session: Session, model_ref: str, dataset: str, split: str):
    from backend.models.store import resolve
    from jobs.data import dataset_splits

    model = resolve(session, model_ref)
    splits = dataset_splits(dataset)
    if split not in splits:
        raise StudioError(f"Dataset '{dataset}' has no '{split}' split (it has: {', '.join(splits) or 'none'}).")
    return model, splits


def _check_sft(session: Session, spec: SFTSpec) -> None:
    from jobs.data import check_templates

    model, splits = _model_and_splits(session, spec.base_model, spec.dataset, "train")
    check_templates(spec)
    if model.kind == "adapter":
        raise StudioError(f"'{model.name}' is an adapter: start SFT from a base or full model.")
    if spec.train.early_stopping_patience and not (
            spec.max_eval_examples and ("validation" in splits or spec.validation_share)):
        raise StudioError("Early stopping needs validation data: the dataset has no validation split, so set "
                          "validation_share above 0 (and max_eval_examples above 0).")
    if spec.resume_from_job is not None:
        resume_checkpoint(session, spec)


def _check_eval(session: Session, spec: EvalSpec) -> None:
    from backend.data.rlhf_prompts import ensure_demo_prompts
    from jobs.data import check_templates

    ensure_demo_prompts(spec.dataset)
    model, _ = _model_and_splits(session, spec.model, spec.dataset, spec.split)
    if spec.reward_model is not None:
        rl_checks.check_reward_model(session, spec.reward_model)
    check_templates(spec)
    if model.kind == "adapter":
        from jobs.modeling import check_adapter_fits

        if not model.base_path:
            raise StudioError(f"Adapter '{model.name}' has no registered base model to load it onto.")
        check_adapter_fits(model.path, model.base_path, model.name, Path(model.base_path).name)
    _check_eval_scorers(spec)


def _check_eval_scorers(spec: EvalSpec) -> None:
    from backend.metrics.text_metrics import load_evaluate_metric

    for name in spec.extra_metrics:
        load_evaluate_metric(name)  # raises MetricError (a StudioError) with the reason
    ref = spec.toxicity_model
    if ref is None:
        return
    folder = Path(ref).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise StudioError(f"toxicity_model {ref} has no config.json: give a transformers classifier folder.")
        return
    try:
        from transformers import AutoConfig

        AutoConfig.from_pretrained(ref)
    except Exception as exc:  # noqa: BLE001 - offline, unknown id: the user's fix is the same
        raise StudioError(f"toxicity_model '{ref}' is neither a local folder nor available from the hub "
                          f"({str(exc).splitlines()[0][:160]}). Download it and give its folder, or leave "
                          "toxicity_model empty to use the packaged profanity classifier.") from None


def _check_label_completions(session: Session, spec: Any) -> None:
    from labeling.campaigns import find_campaign
    from labeling.generation import items_missing_completions

    campaign = find_campaign(session, spec.campaign_id)
    if campaign.status == "archived":
        raise StudioError(f"Campaign '{campaign.name}' is archived: unarchive it to generate completions.")
    if not items_missing_completions(session, campaign):
        raise StudioError(f"Every item of campaign '{campaign.name}' already has its {campaign.k} completions.")


def _checkpoints(job_id: int) -> list[Path]:
    """A job's checkpoints, oldest first (only complete ones: a trainer_state.json is written last)."""
    folder = job_dir(job_id) / "checkpoints"
    found = [p for p in folder.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    return sorted(found, key=lambda p: int(p.name.rsplit("-", 1)[-1]) if p.name.rsplit("-", 1)[-1].isdigit() else -1)


def resume_checkpoint(session: Session, spec: SFTSpec) -> Path:
    """The checkpoint ``spec.resume_from_job`` continues from; raises ``StudioError`` when it cannot resume."""
    import json

    job_id = spec.resume_from_job
    old = session.get(Job, job_id)
    if old is None:
        raise StudioError(f"resume_from_job: there is no job {job_id}.")
    if old.kind != "sft":
        raise StudioError(f"resume_from_job: job {job_id} is a {old.kind} job; resume an SFT job.")
    if old.status not in ("failed", "cancelled"):
        raise StudioError(f"resume_from_job: job {job_id} is {old.status}; only a failed or cancelled job is resumed.")
    checkpoints = _checkpoints(job_id)
    if not checkpoints:
        raise StudioError(f"resume_from_job: job {job_id} left no checkpoint (it ran with train.save_steps 0, or "
                          "stopped before its first save): start a new job instead.")
    before = old.spec or {}
    for field in ("base_model", "peft", "chat_format"):
        if before.get(field) != getattr(spec, field):
            raise StudioError(f"resume_from_job: job {job_id} used {field}={before.get(field)!r}, this spec has "
                              f"{getattr(spec, field)!r}; a checkpoint only resumes with the same setting.")
    method = {"lora": "lora", "prompt_tuning": "prompt_tuning"}.get(spec.peft)
    if method and before.get(method) != getattr(spec, method).model_dump(mode="json"):
        raise StudioError(f"resume_from_job: job {job_id} used other {method} settings; a checkpoint only resumes "
                          "with the same adapter shape.")
    last = checkpoints[-1]
    step = json.loads((last / "trainer_state.json").read_text(encoding="utf-8")).get("global_step", 0)
    if 0 < spec.train.max_steps <= step:
        raise StudioError(f"resume_from_job: job {job_id}'s last checkpoint is at step {step}; set train.max_steps "
                          f"above {step} to train further.")
    return last


def resumable_jobs(session: Session) -> list[dict[str, Any]]:
    """Failed or cancelled SFT jobs that left a checkpoint (for a resume picker), newest first."""
    jobs = session.scalars(select(Job).where(Job.kind == "sft", Job.status.in_(("failed", "cancelled")))
                           .order_by(Job.id.desc()))
    rows = []
    for job in jobs:
        checkpoints = _checkpoints(job.id)
        if checkpoints:
            rows.append({"job": job.id, "name": job.name, "status": job.status, "checkpoint": checkpoints[-1].name,
                         "base_model": (job.spec or {}).get("base_model"), "peft": (job.spec or {}).get("peft")})
    return rows


SPEC_CHECKS: dict[str, Callable[[Session, Any], None]] = {  # one line per kind
    "sft": _check_sft,
    "eval": _check_eval,
    "label_completions": _check_label_completions,
    "reward": rl_checks.check_preference_job,
    "ppo": rl_checks.check_ppo,
    "dpo": rl_checks.check_preference_job,
    "grpo": rl_checks.check_grpo,
}


def submit(session: Session, spec: SFTSpec | EvalSpec) -> Job:
    """Queue a job after checking what the spec refers to; raises ``StudioError`` when it cannot run."""
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
