"""Training services: what the SFT form shows before launch, adapter merging, and training-curve data.

One call per user action; each takes the DB session first and raises ``StudioError`` with a message for
the user. Queue a job with ``jobs.queue.submit(session, spec)`` (the same call ``studio job submit`` makes).
torch/transformers/peft are imported inside the functions that need them.
"""

from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.db.tables import Job, ModelRecord
from backend.errors import StudioError
from backend.limits import confine
from backend.settings import get_settings
from jobs import artifacts, queue
from jobs.specs import EvalSpec, SFTSpec

CURVE_KEYS = ("loss", "eval_loss", "learning_rate", "grad_norm", "train/tokens_per_second")


def estimate_trainable(session: Session, spec: SFTSpec) -> dict[str, Any]:
    """Trainable and total parameters the spec would train, and the trainable share, without loading weights.

    Computed from the base model's config on the meta device with the same peft config the job builds, so the
    numbers equal the ``trainable_params`` / ``total_params`` the job logs. A LoRA target the model lacks
    raises ``StudioError`` naming the layers it has.

    Returns:
        ``{"trainable": int, "total": int, "share": float}`` (share in 0-1).
    """
    from backend.models.store import resolve
    from jobs.modeling import estimate_trainable as estimate

    base = resolve(session, spec.base_model)
    if base.kind == "adapter":
        raise StudioError(f"'{base.name}' is an adapter: start SFT from a base or full model.")
    return estimate(spec, base.path, base.name)


def preview_examples(session: Session, spec: SFTSpec | EvalSpec, n: int = 3) -> list[dict[str, Any]]:
    """The first ``n`` examples exactly as the job will format them, with token counts.

    SFT rows: ``prompt`` and ``completion`` (the text the loss is on) as chat-formatted text when the spec uses
    the chat format, ``text`` (both together), ``template`` (the instruction used: one of a mix),
    ``tokens``, and ``over_max_length`` with ``long_examples``'s consequence. Eval rows: ``prompt`` (what the
    model sees) and ``reference``. Raises ``StudioError`` for the problems the job would fail on (missing
    columns, empty fields, unreadable or non-UTF-8 files, templates without fields, an unreachable hub).
    """
    from backend.generation.engine import format_prompt
    from backend.models.loader import load_tokenizer
    from backend.models.store import resolve
    from backend.prompts.templates import render, resolve_template, template_fields
    from jobs.data import check_templates, example_lengths, read_rows, to_examples

    if n < 1:
        raise StudioError("Preview at least one example.")
    check_templates(spec)
    model = resolve(session, spec.base_model if isinstance(spec, SFTSpec) else spec.model)
    try:
        tokenizer = load_tokenizer(model.base_path if model.kind == "adapter" and model.base_path else model.path)
    except (OSError, ValueError) as exc:
        raise StudioError(f"Could not load the tokenizer of '{model.name}' ({str(exc).splitlines()[0][:200]}): "
                          "check the model folder, or that the hub is reachable.") from None
    if isinstance(spec, EvalSpec):
        template = resolve_template(spec.template)
        target = spec.target_field  # None: the data has no references (e.g. held-out prompts for toxicity)
        rows = read_rows(spec.dataset, spec.split, template_fields(template) + ([target] if target else []), n)
        return [{"index": i, "prompt": format_prompt(tokenizer, render(template, row), spec.chat_format),
                 "reference": str(row[target]) if target else None} for i, row in enumerate(rows)]
    from jobs.data import required_columns

    rows = read_rows(spec.dataset, "train", required_columns(spec), n)
    out = []
    for i, example in enumerate(to_examples(rows, spec)):
        if isinstance(example["prompt"], list):
            prompt = tokenizer.apply_chat_template(example["prompt"], tokenize=False, add_generation_prompt=True)
            text = tokenizer.apply_chat_template(example["prompt"] + example["completion"], tokenize=False)
            instruction = example["prompt"][0]["content"]
            completion = text[len(prompt):] if text.startswith(prompt) else example["completion"][0]["content"]
        else:
            prompt, completion, instruction = example["prompt"], example["completion"], example["prompt"]
            text = prompt + completion
        prompt_tokens, tokens = example_lengths(example, tokenizer)
        over = tokens > spec.train.max_length
        fate = {"truncate": "dropped (no room for the completion)" if prompt_tokens >= spec.train.max_length
                else "truncated", "skip": "skipped", "refuse": "refused (the job fails)"}[spec.long_examples]
        out.append({"index": i, "instruction": instruction, "prompt": prompt, "completion": completion, "text": text,
                    "template": _template_used(spec, instruction, rows[i]), "tokens": tokens,
                    "prompt_tokens": prompt_tokens, "over_max_length": over, "if_too_long": fate if over else ""})
    return out


def _template_used(spec: SFTSpec, instruction: str, row: dict) -> str:
    from backend.prompts.templates import render, resolve_template

    for name in spec.template_mix or [spec.template]:
        if render(resolve_template(name), row) == instruction:
            return name if len(name) <= 60 else name[:57] + "…"
    return spec.template


def merge_adapter(session: Session, model_name: str, out_name: str, out_dir: str | None = None) -> ModelRecord:
    """Merge a LoRA adapter into its base and save a standalone model folder, registered as kind ``full``.

    The folder (config, safetensors weights, tokenizer) is ``<data dir>/models/<out_name>`` unless ``out_dir``
    is given, and loads without peft. Lineage: ``meta`` names the adapter, its base and its training job, and
    ``job_id`` is the adapter's job.

    The checks run first, then the session's transaction is committed, so no SQLite write lock is held while the
    weights merge and save (seconds); the model is registered afterwards in a short transaction (the name is
    checked again there; a name taken meanwhile removes the folder just written and raises).

    Raises:
        StudioError: unknown model, not an adapter, a prompt-tuning adapter (a soft prompt has no weights to
            merge), an adapter that does not fit its base, or a name or folder already in use.
    """
    import re
    import shutil

    from backend.models.store import register_model
    from jobs.modeling import adapter_config

    if not re.fullmatch(r"[\w][\w.-]{0,199}", out_name or ""):
        raise StudioError("Give the merged model a name of letters, digits, '.', '-' or '_' (no spaces).")
    adapter = mergeable_adapter(session, model_name)
    if session.scalar(select(ModelRecord.id).where(ModelRecord.name == out_name)) is not None:
        raise StudioError(f"A model named '{out_name}' already exists: choose another name.")
    target = confine(out_dir, "output") if out_dir else get_settings().models_dir / out_name
    if target.exists() and any(target.iterdir()):
        raise StudioError(f"{target} already exists and is not empty: choose another name or folder.")
    record = session.get(ModelRecord, adapter.id)
    base = record.base_model
    meta = {"method": "merged", "merged_from": adapter.name, "adapter_id": adapter.id,
            "base": base.name, "base_model_id": base.id, "base_path": base.path,
            "adapter_meta": record.meta or {}, "lora": {
                k: adapter_config(adapter.path).get(k) for k in ("r", "lora_alpha", "target_modules")}}
    job_id = record.job_id
    session.commit()  # NOTE: merge first, register after: no transaction (so no SQLite lock) while merging
    created = not target.exists()
    try:
        merge_to_folder(adapter.path, adapter.base_path, target)
        if session.scalar(select(ModelRecord.id).where(ModelRecord.name == out_name)) is not None:
            raise StudioError(f"A model named '{out_name}' was registered while merging: choose another name.")
        return register_model(session, out_name, str(target.resolve()), kind="full",
                              source="job" if job_id else "local", job_id=job_id, meta=meta)
    except BaseException:
        session.rollback()
        if created:
            shutil.rmtree(target, ignore_errors=True)  # no half-written or unregistered folder left behind
        raise


def mergeable_adapter(session: Session, model_name: str):
    """The registered adapter ``model_name`` (a ``ResolvedModel``), checked to merge into its base.

    Raises:
        StudioError: unknown model, not an adapter, no registered base, a prompt-tuning adapter, or an adapter
            that does not fit its base.
    """
    from backend.models.store import resolve
    from jobs.modeling import check_adapter_fits, is_prompt_learning

    adapter = resolve(session, model_name)
    if adapter.kind != "adapter":
        raise StudioError(f"'{adapter.name}' is a {adapter.kind} model, not an adapter: there is nothing to merge.")
    if not adapter.base_path:
        raise StudioError(f"Adapter '{adapter.name}' has no registered base model to merge into.")
    if is_prompt_learning(adapter.path):
        raise StudioError(f"'{adapter.name}' is a prompt-tuning adapter: a soft prompt is extra input, not a weight "
                          "update, so it cannot be merged. Use the adapter as it is.")
    check_adapter_fits(adapter.path, adapter.base_path, adapter.name, session.get(ModelRecord, adapter.id).base_model.name)
    return adapter


def merge_to_folder(adapter_path: str, base_path: str, target: Path) -> None:
    """Merge the adapter into its base (fp32) and save a standalone model folder with the tokenizer at ``target``."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    merged = PeftModel.from_pretrained(base, adapter_path).merge_and_unload()
    target.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(str(target))
    tokenizer_from = adapter_path if (Path(adapter_path) / "tokenizer_config.json").is_file() else base_path
    AutoTokenizer.from_pretrained(tokenizer_from).save_pretrained(str(target))


def training_curves(session: Session, job_ids: list[int], keys: tuple[str, ...] = CURVE_KEYS) -> list[dict[str, Any]]:
    """Metric rows ``{job, job_name, method, step, key, value}`` of jobs, for line charts (one line per job × key).

    Default keys: loss, eval_loss, learning_rate, grad_norm and measured train/tokens_per_second.
    """
    out: list[dict[str, Any]] = []
    for job_id in job_ids:
        job = queue.get_job(session, job_id)
        method = {"none": "full"}.get((job.spec or {}).get("peft"), (job.spec or {}).get("peft") or job.kind)
        out += [{"job": job.id, "job_name": job.name, "method": method, **m}
                for m in queue.job_metrics(session, job_id) if m["key"] in keys]
    return out


def training_summaries(session: Session, kind: str = "sft", limit: int = 50) -> list[dict[str, Any]]:
    """One row per training job: method, status, steps, final loss, eval loss, tokens/s, trainable share, runtime."""
    jobs = session.scalars(select(Job).where(Job.kind == kind).order_by(Job.id.desc()).limit(limit))
    rows = []
    for job in jobs:
        last: dict[str, float] = {}
        step = 0
        for m in queue.job_metrics(session, job.id):
            last[m["key"]] = m["value"]
            step = max(step, m["step"])
        trainable, total = last.get("trainable_params"), last.get("total_params")
        rows.append({"job": job.id, "name": job.name, "status": job.status,
                     "method": {"none": "full"}.get((job.spec or {}).get("peft"), (job.spec or {}).get("peft")),
                     "base_model": (job.spec or {}).get("base_model"), "step": step,
                     "loss": last.get("loss"), "eval_loss": last.get("eval_loss"),
                     "tokens_per_second": last.get("train/tokens_per_second"),
                     "trainable_params": trainable, "total_params": total,
                     "trainable_share": trainable / total if trainable and total else None,
                     "train_runtime": last.get("train_runtime"), "output_model_id": job.output_model_id})
    return rows


def resumable_jobs(session: Session) -> list[dict[str, Any]]:
    """Failed or cancelled SFT jobs with a checkpoint, for the form's ``resume_from_job`` picker."""
    return artifacts.resumable_jobs(session)


# --- what the SFT form offers -------------------------------------------------------------------------------

UPLOAD_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


def lora_target_choices(session: Session, model_name: str) -> list[str]:
    """The layer names LoRA can adapt in a model (leaf names such as ``q_proj``), read on the meta device.

    These are exactly the names ``LoraArgs.target_modules`` accepts for that model (plus ``all-linear``).
    """
    from backend.models.store import resolve
    from jobs.modeling import adaptable_layers, meta_model

    base = resolve(session, model_name)
    if base.kind == "adapter":
        raise StudioError(f"'{base.name}' is an adapter: start SFT from a base or full model.")
    layers = adaptable_layers(meta_model(base.path, base.name))
    return sorted({name.rsplit(".", 1)[-1] for name in layers} - {"lm_head"})


def save_upload(file_name: str, data: bytes | BinaryIO) -> Path:
    """Store an uploaded JSONL/CSV/Parquet file under ``<data dir>/datasets/uploads`` and return its path.

    ``data`` is the upload's bytes or a binary stream (read in chunks, never past the cap). The name is reduced
    to safe characters (``backend.limits.safe_file_name``: the file never leaves the uploads folder); a file
    with the same name and different bytes gets a numbered name, so a dataset a finished job trained on is never
    overwritten. At most ``MAX_DATASET_BYTES``. The rows are checked by the job's own reader when the form
    previews or queues the job (missing columns, empty rows, non-UTF-8 bytes).
    """
    from backend.limits import MAX_DATASET_BYTES, read_capped, safe_file_name

    shown = (file_name or "")[:120]
    stem, dot, suffix = safe_file_name(file_name or "", default="", max_chars=len(file_name or "") + 1).rpartition(".")
    suffix = f".{suffix.lower()}" if dot else ""
    if suffix not in UPLOAD_SUFFIXES:
        raise StudioError(f"'{shown}' is not a dataset file: upload JSONL, CSV or Parquet "
                          f"({', '.join(UPLOAD_SUFFIXES)}).")
    data = read_capped(data, MAX_DATASET_BYTES, f"'{shown}'", "dataset file")
    if not data:
        raise StudioError(f"'{shown}' is empty.")
    stem = stem[:100].strip("-.") or "dataset"
    folder = get_settings().datasets_dir / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    target, n = folder / f"{stem}{suffix}", 1
    while target.exists() and target.read_bytes() != data:
        n += 1
        target = folder / f"{stem}-{n}{suffix}"
    target.write_bytes(data)
    return target


def uploaded_datasets() -> list[str]:
    """Paths of the dataset files uploaded before, newest first."""
    folder = get_settings().datasets_dir / "uploads"
    files = [p for p in folder.glob("*") if p.suffix.lower() in UPLOAD_SUFFIXES] if folder.is_dir() else []
    return [str(p) for p in sorted(files, key=lambda p: p.stat().st_mtime, reverse=True)]


def model_lineage(session: Session, model_name: str) -> dict[str, Any]:
    """Where a registered model came from: kind, base, dataset, method, training job and its spec.

    Returns ``{name, kind, source, path, base, job_id, method, dataset, trainable_params, total_params,
    train_runtime, spec, merged_from}`` (None where unknown; ``spec`` is the training job's spec dict).
    """
    from backend.models.store import local_path

    record = session.scalar(select(ModelRecord).where(ModelRecord.name == model_name))
    if record is None:
        raise StudioError(f"Unknown model '{model_name}'.")
    meta = record.meta or {}
    spec = meta.get("spec") or meta.get("adapter_meta", {}).get("spec")
    if spec is None and record.job_id is not None:
        job = session.get(Job, record.job_id)
        spec = job.spec if job is not None else None
    base = record.base_model.name if record.base_model is not None else meta.get("base")
    return {"name": record.name, "kind": record.kind, "source": record.source, "path": local_path(record.path, record.source), "base": base,
            "job_id": record.job_id, "method": meta.get("method"),
            "dataset": meta.get("dataset") or (spec or {}).get("dataset"),
            "trainable_params": meta.get("trainable_params") or meta.get("adapter_meta", {}).get("trainable_params"),
            "total_params": meta.get("total_params"), "train_runtime": meta.get("train_runtime"),
            "merged_from": meta.get("merged_from"), "spec": spec}


def output_lineage(session: Session, model_id: int) -> dict[str, Any] | None:
    """``model_lineage`` of a job's output model by its id; None when the model was deleted."""
    record = session.get(ModelRecord, model_id)
    return model_lineage(session, record.name) if record is not None else None


def memory_plan(session: Session, spec: SFTSpec) -> dict[str, Any]:
    """The SFT spec's estimated peak memory per process (``backend.calculators.finetune_memory``, by part), the
    device it would run on, whether gradient checkpointing is on, and a warning when no live worker has that much.

    Returns:
        ``{"device", "weights", "checkpointing", "parts": {...}, "total_gb", "on_offer": {...}, "warning"}``.
    """
    from backend.calculators import finetune_memory
    from backend.models.store import resolve
    from jobs.memory_saving import use_checkpointing
    from jobs.modeling import meta_model
    from jobs.resources import job_need
    from services.workers import memory_on_offer, memory_warning

    counts = estimate_trainable(session, spec)
    base = resolve(session, spec.base_model)
    config = meta_model(base.path, base.name).config.get_text_config()
    on_offer = memory_on_offer(session)
    device = job_need(spec.model_dump(mode="json"), on_offer["gpu_gb"] is not None).devices
    t = spec.train
    weights = spec.quantization if spec.quantization != "none" else (
        "bf16" if t.precision == "bf16" or (t.precision == "auto" and device == "cuda") else "fp32")
    checkpointing = use_checkpointing(spec, device, counts["total"])
    parts = finetune_memory(counts["total"], counts["trainable"], config.hidden_size, config.num_hidden_layers,
                            config.vocab_size, weights=weights, full=spec.peft == "none", batch_size=t.batch_size,
                            seq_len=t.max_length, checkpointing=checkpointing, gpu=device == "cuda")
    total = parts.pop("total_gb")
    return {"device": device, "weights": weights, "checkpointing": checkpointing, "parts": parts, "total_gb": total,
            "on_offer": on_offer, "warning": memory_warning(total, device, on_offer)}
