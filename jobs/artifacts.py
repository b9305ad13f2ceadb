"""A job's files under the data dir: its folder, log, checkpoints, and which stopped jobs can resume from them.

``<data dir>/artifacts/job-<id>/`` holds ``job.log``, ``job_spec.yaml``, ``checkpoints/checkpoint-<step>/`` and the
outputs (``model/``…). Workers and pages find a job's files only through these functions.
"""

import json
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.db.lookup import get_or_raise
from backend.db.tables import Job
from backend.errors import StudioError
from backend.settings import get_settings
from jobs.specs import SFTSpec

EVAL_SCORES = "eval_scores.jsonl"  # a PPO job's per-completion held-out scores, one JSON line each


def job_dir(job_id: int) -> Path:
    return get_settings().artifacts_dir / f"job-{job_id}"


def log_path(job_id: int) -> Path:
    return job_dir(job_id) / "job.log"


def read_log_tail(job_id: int, max_bytes: int = 8000) -> str:
    path = log_path(job_id)
    if not path.is_file():
        return ""
    with path.open("rb") as fh:
        fh.seek(max(0, path.stat().st_size - max_bytes))
        return fh.read().decode("utf-8", errors="replace")


def checkpoints(job_id: int) -> list[Path]:
    """A job's checkpoints, oldest first (only complete ones: a trainer_state.json is written last)."""
    folder = job_dir(job_id) / "checkpoints"
    found = [p for p in folder.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    return sorted(found, key=lambda p: int(p.name.rsplit("-", 1)[-1]) if p.name.rsplit("-", 1)[-1].isdigit() else -1)


def resume_checkpoint(session: Session, spec: SFTSpec) -> Path:
    """The checkpoint ``spec.resume_from_job`` continues from; raises ``StudioError`` when it cannot resume."""
    job_id = spec.resume_from_job
    old = get_or_raise(session, Job, job_id, message=f"resume_from_job: there is no job {job_id}.")
    if old.kind != "sft":
        raise StudioError(f"resume_from_job: job {job_id} is a {old.kind} job; resume an SFT job.")
    if old.status not in ("failed", "cancelled"):
        raise StudioError(f"resume_from_job: job {job_id} is {old.status}; only a failed or cancelled job is resumed.")
    saved = checkpoints(job_id)
    if not saved:
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
    last = saved[-1]
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
        saved = checkpoints(job.id)
        if saved:
            rows.append({"job": job.id, "name": job.name, "status": job.status, "checkpoint": saved[-1].name,
                         "base_model": (job.spec or {}).get("base_model"), "peft": (job.spec or {}).get("peft")})
    return rows


MODEL_FIELDS = ("base_model", "model", "policy_model", "reference_model", "reward_model", "toxicity_model")


def _model_refs(data: Any) -> list[str]:
    """Every model named in a spec's fields (nested blocks included: reward terms, …)."""
    if isinstance(data, dict):
        refs = [v for k, v in data.items() if k in MODEL_FIELDS and isinstance(v, str) and v]
        return refs + [r for v in data.values() if isinstance(v, (dict, list)) for r in _model_refs(v)]
    if isinstance(data, list):
        return [r for item in data for r in _model_refs(item)]
    return []


def check_input_models(session: Session, spec: Any) -> None:
    """Fail a job whose registered input models have no files on this worker (its data dir is not the shared one),
    naming the missing path, before any loading starts."""
    from backend.db.tables import ModelRecord
    from backend.models.store import require_files, resolve

    for ref in dict.fromkeys(_model_refs(spec.model_dump())):
        if session.scalar(select(ModelRecord.id).where(ModelRecord.name == ref)) is not None:
            require_files(resolve(session, ref))
