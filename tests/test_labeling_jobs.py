"""The ``label_completions`` job: queue checks, the runner on the tiny model (in-process through ``jobs.run.main``),
cooperative cancel and resume, launching a campaign with its job, and the workbench's on-demand fallback."""

from collections import Counter

import pytest
from sqlalchemy import func, select

from backend.db.engine import session_scope
from backend.db.tables import Campaign, Completion, Job, JobMetric
from backend.errors import StudioError
from jobs.context import JobCancelled, JobContext
from jobs.registry import parse_spec
from jobs.run import main as run_job
from jobs.runners import label_completions
from jobs.specs import LabelCompletionsSpec
from labeling import accounts, campaigns
from services import completion_jobs

SOURCES = [
    {"model": "tiny", "decoding": {"do_sample": True, "temperature": 0.7, "max_new_tokens": 4}, "label": "cool"},
    {"model": "tiny", "decoding": {"do_sample": True, "temperature": 1.3, "max_new_tokens": 4}, "label": "hot"},
]
PROMPTS = ["Say hi.", "Name a fruit.", "Cake or donut?", "Tea or coffee?", "Pick a colour."]


def make_campaign(name: str = "gen", prompts=PROMPTS, k: int = 3) -> int:
    with session_scope(write=True) as s:
        return campaigns.create_campaign(s, name, list(prompts), k=k, sources=SOURCES).id


def n_completions() -> int:
    with session_scope() as s:
        return s.scalar(select(func.count(Completion.id)))


def test_spec_defaults_round_trip_and_validate():
    spec = parse_spec({"kind": "label_completions", "campaign_id": 3, "batch_size": 4})
    assert isinstance(spec, LabelCompletionsSpec) and spec.precision == "auto"
    with pytest.raises(StudioError, match="batch_size"):
        parse_spec({"kind": "label_completions", "campaign_id": 3, "batch_size": 0})


def test_queue_refuses_unknown_archived_complete_and_duplicate(tiny_model):
    with session_scope(write=True) as s, pytest.raises(StudioError, match="no campaign"):
        completion_jobs.queue_completions(s, 99)
    cid = make_campaign()
    with session_scope(write=True) as s:
        job = completion_jobs.queue_completions(s, cid, batch_size=2)
        spec = dict(job.spec)
        assert spec.pop("resources")["devices"] == "auto"  # generation may use a GPU when a worker has one
        assert spec == {"kind": "label_completions", "name": "completions · gen", "campaign_id": cid,
                        "campaign": "gen", "batch_size": 2, "precision": "auto"}
    with session_scope(write=True) as s, pytest.raises(StudioError, match="already making"):
        completion_jobs.queue_completions(s, cid)
    with session_scope(write=True) as s:
        campaigns.set_status(s, cid, "archived")
        s.get(Job, job.id).status = "cancelled"
    with session_scope(write=True) as s, pytest.raises(StudioError, match="archived"):
        completion_jobs.queue_completions(s, cid)


def test_runner_generates_every_item_with_provenance_and_metrics(tiny_model):
    cid = make_campaign()
    with session_scope(write=True) as s:
        job_id = completion_jobs.queue_completions(s, cid, batch_size=2).id
    assert run_job(job_id) == 0
    with session_scope() as s:
        job = s.get(Job, job_id)
        assert job.status == "succeeded", job.error
        assert job.output_model_id is None  # completions only: no model registered
        rows = s.scalars(select(Completion).order_by(Completion.id)).all()
        progress = s.scalars(select(JobMetric.value).where(JobMetric.job_id == job_id,
                                                           JobMetric.key == "label/progress")
                             .order_by(JobMetric.step)).all()
        written = s.scalar(select(JobMetric.value).where(JobMetric.key == "label/completions"))
        jobs = completion_jobs.completion_jobs(s, cid)
        assert campaigns.campaign_progress(s, cid)["items_ready"] == 5
    assert len(rows) == 15 and written == 15
    assert Counter(c.source_label for c in rows) == {"cool": 10, "hot": 5}
    assert all(c.model_name == "tiny" and c.seed is not None and c.decoding["max_new_tokens"] == 4 for c in rows)
    assert progress == [0.0, 0.4, 0.8, 1.0]  # after each batch of 2 items
    assert jobs[0]["status"] == "succeeded" and jobs[0]["progress"] == 1.0
    with session_scope(write=True) as s, pytest.raises(StudioError, match="already has its 3 completions"):
        completion_jobs.queue_completions(s, cid)


class CancelAfter:
    """A JobContext stand-in that asks to cancel after ``n`` checks."""

    def __init__(self, spec, n: int):
        self.spec, self.n, self.metrics = spec, n, []

    def should_cancel(self) -> bool:
        self.n -= 1
        return self.n < 0

    def log_metrics(self, step, values) -> None:
        self.metrics.append((step, values))


def test_cancel_stops_between_batches_and_a_new_job_resumes(tiny_model):
    cid = make_campaign()
    spec = LabelCompletionsSpec(campaign_id=cid, batch_size=2)
    with pytest.raises(JobCancelled):
        label_completions.run(CancelAfter(spec, 1))
    assert n_completions() == 6  # the first batch (2 items × 3) was written, then the job stopped
    label_completions.run(CancelAfter(spec, 99))
    assert n_completions() == 15
    with session_scope() as s:
        per_item = Counter(s.scalars(select(Completion.item_id)))
    assert set(per_item.values()) == {3}


def test_runner_fails_readably_when_the_campaign_is_gone(tiny_model, tmp_path):
    with pytest.raises(StudioError, match="no campaign"):
        label_completions.run(JobContext(1, LabelCompletionsSpec(campaign_id=42), tmp_path))


def test_launch_campaign_creates_campaign_and_job_together(tiny_model):
    with session_scope(write=True) as s:
        admin = accounts.sign_up(s, "ada", "correct horse").id
        annotator = accounts.sign_up(s, "bob", "correct horse").id
    with session_scope(write=True) as s:
        made = completion_jobs.launch_campaign(s, admin, "launched", prompts=PROMPTS, k=2, sources=SOURCES[:1],
                                               batch_size=3)
    assert made["items"] == 5
    with session_scope() as s:
        assert s.get(Job, made["job_id"]).spec["batch_size"] == 3
    with session_scope(write=True) as s, pytest.raises(StudioError, match="Only an admin"):
        completion_jobs.launch_campaign(s, annotator, "sneaky", prompts=PROMPTS)
    with session_scope(write=True) as s, pytest.raises(StudioError, match="K must be between 2 and 9"):
        completion_jobs.launch_campaign(s, admin, "bad-k", prompts=PROMPTS, k=12)
    with session_scope() as s:
        assert s.scalar(select(func.count(Campaign.id))) == 1
        assert s.scalar(select(func.count(Job.id))) == 1


def test_on_demand_fallback_generates_only_the_next_item(tiny_model):
    cid = make_campaign()
    with session_scope(write=True) as s:
        bob = accounts.sign_up(s, "bob", "correct horse").id
    report = completion_jobs.complete_next_item(cid, bob)
    assert report["done"] == 1 and report["completions"] == 3
    assert n_completions() == 3
