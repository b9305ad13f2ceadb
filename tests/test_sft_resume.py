"""Checkpoints and resume: a job that saves checkpoints can be continued by another after it failed or was
cancelled; every way a resume could not work is refused when the job is submitted."""

import json

import pytest
from factories import lora_sft_spec, write_dialogues
from sqlalchemy import update

from backend.db.engine import session_scope
from backend.db.tables import Job, ModelRecord
from backend.errors import StudioError
from jobs import artifacts, queue
from jobs.run import main as run_job
from jobs.specs import SFTSpec
from services.training import resumable_jobs


def write_dataset(folder, n=8):
    return write_dialogues(folder, {"train": n, "test": n})


def sft_spec(data, max_steps=2, save_steps=1, **overrides) -> SFTSpec:
    return lora_sft_spec(data, max_steps, save_steps, **{"name": "resume", **overrides})


def submit(spec: SFTSpec) -> int:
    with session_scope(write=True) as s:
        return queue.submit(s, spec).id


def set_status(job_id: int, status: str) -> None:
    with session_scope(write=True) as s:
        s.execute(update(Job).where(Job.id == job_id).values(status=status))


def loss_steps(job_id: int) -> list[int]:
    with session_scope() as s:
        return [m["step"] for m in queue.job_metrics(s, job_id) if m["key"] == "loss"]


def test_resume_continues_from_the_last_checkpoint(tiny_model, tmp_path):
    data = write_dataset(tmp_path / "data")
    first = submit(sft_spec(data, max_steps=2))
    assert run_job(first) == 0
    checkpoints = sorted(p.name for p in (artifacts.job_dir(first) / "checkpoints").glob("checkpoint-*"))
    assert checkpoints == ["checkpoint-1", "checkpoint-2"]
    set_status(first, "failed")  # as if it had died after its second checkpoint
    with session_scope() as s:
        assert [r["job"] for r in resumable_jobs(s)] == [first]

    second = submit(sft_spec(data, max_steps=3, resume_from_job=first))
    assert run_job(second) == 0
    with session_scope() as s:
        job = s.get(Job, second)
        assert job.status == "succeeded", job.error
        meta = s.get(ModelRecord, job.output_model_id).meta
    assert loss_steps(second) == [3]  # steps 1-2 came from the checkpoint; only step 3 ran
    assert meta["resumed_from"].endswith(f"job-{first}/checkpoints/checkpoint-2") and meta["global_step"] == 3


@pytest.mark.parametrize(("change", "match"), [
    ({"resume_from_job": 999}, "no job 999"),
    ({"peft": "none"}, "peft"),
    ({"lora": {"r": 8}}, "lora settings"),
    ({"max_steps": 1}, "above 1"),
])
def test_resume_refused_at_submit(tiny_model, tmp_path, change, match):
    data = write_dataset(tmp_path / "data")
    with session_scope(write=True) as s:  # a cancelled job with one checkpoint, made without training
        job = Job(kind="sft", name="old", status="cancelled",
                  spec=sft_spec(data, max_steps=5).model_dump(mode="json"))
        s.add(job)
        s.flush()
        old = job.id
    checkpoint = artifacts.job_dir(old) / "checkpoints" / "checkpoint-1"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": 1}))
    values = {"max_steps": 5, "resume_from_job": old, **change}
    spec = sft_spec(data, **{k: v for k, v in values.items()})
    with pytest.raises(StudioError, match=match), session_scope(write=True) as s:
        queue.submit(s, spec)
    ok = sft_spec(data, max_steps=5, resume_from_job=old)
    with session_scope(write=True) as s:
        assert queue.submit(s, ok).spec["resume_from_job"] == old


def test_resume_needs_a_failed_or_cancelled_sft_job_with_a_checkpoint(tiny_model, tmp_path):
    data = write_dataset(tmp_path / "data")
    with session_scope(write=True) as s:
        jobs = [Job(kind=kind, name=kind, status=status, spec={"kind": kind})
                for kind, status in (("sft", "succeeded"), ("eval", "failed"), ("sft", "failed"))]
        s.add_all(jobs)
        s.flush()
        succeeded, evaluation, no_checkpoint = (j.id for j in jobs)
    for job_id, match in ((succeeded, "succeeded"), (evaluation, "eval job"), (no_checkpoint, "no checkpoint")):
        with pytest.raises(StudioError, match=match), session_scope(write=True) as s:
            queue.submit(s, sft_spec(data, resume_from_job=job_id))
