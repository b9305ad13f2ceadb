"""ORM tables: what people and jobs did. Everything derivable (pairs, agreement, charts) is computed.

Status columns are plain strings guarded by CHECK constraints so SQLite and PostgreSQL agree.
"""

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict] = {dict[str, Any]: JSON, list[Any]: JSON}


JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
MODEL_KINDS = ("base", "adapter", "full", "reward")
MODEL_SOURCES = ("embedded", "local", "hub", "job")


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    role: Mapped[str] = mapped_column(String(20), default="annotator")
    password_hash: Mapped[str | None] = mapped_column(String(300), default=None, doc="pbkdf2; None = no sign-in yet")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    email: Mapped[str | None] = mapped_column(String(254), default=None, unique=True,
                                              doc="lower-cased; single sign-on (st.login) matches accounts by it")
    __table_args__ = (CheckConstraint("role in ('admin','annotator')", name="ck_users_role"),)


class ModelRecord(Base):
    """A model the studio can load: the embedded default, a local folder, a hub id, or a job's output."""

    __tablename__ = "models"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(20), default="base")
    source: Mapped[str] = mapped_column(String(20))
    path: Mapped[str] = mapped_column(Text, doc="Local folder or hub id.")
    base_model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id"), default=None)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", use_alter=True), default=None)
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    base_model: Mapped["ModelRecord | None"] = relationship(remote_side=[id])
    __table_args__ = (
        CheckConstraint(f"kind in {MODEL_KINDS}", name="ck_models_kind"),
        CheckConstraint(f"source in {MODEL_SOURCES}", name="ck_models_source"),
    )


class Prompt(Base):
    __tablename__ = "prompts"
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(80), default="user", doc="demo, upload, playground, …")
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Completion(Base):
    """One generated text with the full provenance needed to reproduce it."""

    __tablename__ = "completions"
    id: Mapped[int] = mapped_column(primary_key=True)
    prompt_id: Mapped[int | None] = mapped_column(ForeignKey("prompts.id"), default=None, index=True)
    item_id: Mapped[int | None] = mapped_column(ForeignKey("campaign_items.id"), default=None, index=True)
    model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id"), default=None)
    model_name: Mapped[str] = mapped_column(String(200))
    prompt_text: Mapped[str] = mapped_column(Text, doc="The exact text fed to the model (after templates).")
    text: Mapped[str] = mapped_column(Text)
    decoding: Mapped[dict[str, Any]] = mapped_column(default=dict)
    seed: Mapped[int | None] = mapped_column(Integer, default=None)
    template: Mapped[str | None] = mapped_column(String(200), default=None)
    prompt_tokens: Mapped[int] = mapped_column(default=0)
    completion_tokens: Mapped[int] = mapped_column(default=0)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    finish_reason: Mapped[str] = mapped_column(String(20), default="length")
    run_id: Mapped[int | None] = mapped_column(ForeignKey("playground_runs.id"), default=None, index=True)
    source_label: Mapped[str | None] = mapped_column(String(300), default=None,
                                                     doc="Which campaign source (model × decoding) made it.")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PlaygroundRun(Base):
    """One playground action: an input run through one or more variants (model × decoding × template)."""

    __tablename__ = "playground_runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    input: Mapped[str] = mapped_column(Text)
    variants: Mapped[list[Any]] = mapped_column(default=list, doc="[{model, template, decoding, …}]")
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PromptTemplate(Base):
    __tablename__ = "prompt_templates"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    task: Mapped[str] = mapped_column(String(80), default="custom")
    text: Mapped[str] = mapped_column(Text)
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RagCollection(Base):
    """A persisted faiss index of document chunks (files under the data dir)."""

    __tablename__ = "rag_collections"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    path: Mapped[str] = mapped_column(Text)
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict, doc="embedder, chunking, documents")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Campaign(Base):
    __tablename__ = "campaigns"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    criterion: Mapped[str] = mapped_column(String(80), default="helpfulness")
    guidelines: Mapped[str] = mapped_column(Text, default="")
    k: Mapped[int] = mapped_column(default=3)
    overlap: Mapped[int] = mapped_column(default=1)
    status: Mapped[str] = mapped_column(String(20), default="open")
    sources: Mapped[list[Any]] = mapped_column(default=list, doc="[{model, decoding}] that produce completions")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The loop's round: 1 for a campaign made from scratch; one more than the latest round that ranked an ancestor
    # of its parent models for a campaign made from evaluated models ("send to labeling").
    round: Mapped[int] = mapped_column(default=1)
    parent_models: Mapped[list[Any]] = mapped_column(default=list, doc="names of the models it was made from")
    # Quality checks (labeling.gold): the share of each annotator's items that are gold items (0 = none served as
    # gold), and the time per completion under which a judgement is flagged "too fast".
    gold_rate: Mapped[float] = mapped_column(Float, default=0.0)
    too_fast_seconds: Mapped[float] = mapped_column(Float, default=2.0)
    __table_args__ = (
        CheckConstraint("k between 2 and 9", name="ck_campaigns_k"),
        CheckConstraint("status in ('open','closed','archived')", name="ck_campaigns_status"),
    )


class CampaignItem(Base):
    __tablename__ = "campaign_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id"))
    completions: Mapped[list[Completion]] = relationship(order_by=Completion.id)
    gold_completion_id: Mapped[int | None] = mapped_column(Integer, default=None,
                                                           doc="a gold item's known best completion (one of its own)")
    __table_args__ = (UniqueConstraint("campaign_id", "prompt_id", name="uq_campaign_items_prompt"),)


class Ranking(Base):
    """One annotator's judgement of one item: ranks keyed by completion id (1 = best, equal = tie)."""

    __tablename__ = "rankings"
    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("campaign_items.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    ranks: Mapped[dict[str, Any]] = mapped_column(doc="{completion_id: rank}")
    flags: Mapped[list[Any]] = mapped_column(default=list, doc="completion ids flagged unusable")
    skipped: Mapped[bool] = mapped_column(Boolean, default=False)
    comment: Mapped[str] = mapped_column(Text, default="")
    seconds_spent: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    __table_args__ = (Index("ix_rankings_user_created", "user_id", "created_at"),
                      UniqueConstraint("item_id", "user_id", name="uq_rankings_item_user"),)


class Job(Base):
    """A queued unit of background work. The database, not any UI process, owns its state."""

    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(20), default="queued", index=True)
    spec: Mapped[dict[str, Any]] = mapped_column()
    worker_id: Mapped[str | None] = mapped_column(String(200), default=None)
    pid: Mapped[int | None] = mapped_column(default=None)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    output_model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    submission_token: Mapped[str | None] = mapped_column(String(64), default=None, unique=True,
                                                         doc="one per form submission: the same token queues once")
    __table_args__ = (CheckConstraint(f"status in {JOB_STATUSES}", name="ck_jobs_status"),)


class JobMetric(Base):
    __tablename__ = "job_metrics"
    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column()
    key: Mapped[str] = mapped_column(String(80))
    value: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    __table_args__ = (Index("ix_job_metrics_job_key_step", "job_id", "key", "step"),)


class Worker(Base):
    __tablename__ = "workers"
    id: Mapped[str] = mapped_column(String(200), primary_key=True, doc="host:pid")
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column()
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)
    stopped_at: Mapped[datetime | None] = mapped_column(default=None)
    # What the worker offers, registered at start-up: a job is claimed only by a worker that satisfies its
    # spec's ``resources`` block.
    cpu_count: Mapped[int] = mapped_column(default=0)
    ram_gb: Mapped[float] = mapped_column(Float, default=0.0)
    devices: Mapped[list[Any]] = mapped_column(default=list, doc='CUDA devices offered: [{"index", "name", '
                                               '"memory_gb"}]; [] = CPU only')
    labels: Mapped[list[Any]] = mapped_column(default=list, doc="free-form labels from STUDIO_WORKER_LABELS")


class EvalRun(Base):
    __tablename__ = "eval_runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"), default=None)
    model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id"), default=None)
    model_name: Mapped[str] = mapped_column(String(200))
    dataset: Mapped[str] = mapped_column(String(200))
    split: Mapped[str] = mapped_column(String(40))
    template: Mapped[str] = mapped_column(Text, default="")
    decoding: Mapped[dict[str, Any]] = mapped_column(default=dict)
    n_examples: Mapped[int] = mapped_column(default=0)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EvalResult(Base):
    __tablename__ = "eval_results"
    id: Mapped[int] = mapped_column(primary_key=True)
    eval_run_id: Mapped[int] = mapped_column(ForeignKey("eval_runs.id", ondelete="CASCADE"), index=True)
    idx: Mapped[int] = mapped_column()
    input: Mapped[str] = mapped_column(Text)
    reference: Mapped[str | None] = mapped_column(Text, default=None)
    prediction: Mapped[str] = mapped_column(Text)
    scores: Mapped[dict[str, Any]] = mapped_column(default=dict)


class SignInFailure(Base):
    """One wrong password (or unknown name) at sign-in: the throttle counts them per name over a window."""

    __tablename__ = "sign_in_failures"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), doc="the name typed, stripped and lower-cased")
    at: Mapped[datetime] = mapped_column(default=utcnow)
    __table_args__ = (Index("ix_sign_in_failures_name_at", "name", "at"),)


class Assignment(Base):
    """A slot of an item's overlap held by one annotator: reserved when the item is served (until ``expires_at``),
    kept for good once they rank it. ``(item_id, slot)`` is unique, so two annotators can never hold the same slot:
    the overlap is exact even when they open the last open slot at the same moment (``labeling.reservations``)."""

    __tablename__ = "assignments"
    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("campaign_items.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    slot: Mapped[int] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    __table_args__ = (UniqueConstraint("item_id", "slot", name="uq_assignments_item_slot"),
                      UniqueConstraint("item_id", "user_id", name="uq_assignments_item_user"))


class WebSession(Base):
    """A browser's sign-in that survives reloads, new tabs and restarts: the cookie holds a random token, the
    database only its SHA-256 (``labeling.web_sessions``). Revoked by sign-out, a password change, "sign out
    everywhere" or an admin."""

    __tablename__ = "web_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
