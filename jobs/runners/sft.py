"""Supervised fine-tuning (full or LoRA) with TRL's ``SFTTrainer``.

Dataset: rows with the template's fields and ``target_field``; each becomes a prompt/completion
pair (chat-formatted for chat models) so the loss covers the completion only.

Logged metric keys (TRL/Trainer names): ``loss``, ``grad_norm``, ``learning_rate``, ``epoch``,
``mean_token_accuracy``, ``num_tokens``, ``eval_loss``, ``train/tokens_per_second``,
``train_runtime``.

Output: the adapter (LoRA) or the full model under ``<job dir>/model``, registered as a model whose
lineage names the base model and this job.
"""

from backend.db.engine import session_scope
from backend.errors import StudioError
from backend.models.store import register_model, resolve
from backend.prompts.templates import render, resolve_template, template_fields
from jobs.callbacks import StudioCallback
from jobs.context import JobContext
from jobs.specs import SFTSpec


def to_prompt_completion(rows: list[dict], spec: SFTSpec) -> list[dict]:
    template = resolve_template(spec.template)
    out = []
    for row in rows:
        prompt, completion = render(template, row), str(row[spec.target_field])
        if spec.chat_format:
            out.append({"prompt": [{"role": "user", "content": prompt}],
                        "completion": [{"role": "assistant", "content": completion}]})
        else:
            out.append({"prompt": prompt, "completion": " " + completion})
    return out


def _dataset(spec: SFTSpec, split: str, limit: int):
    from datasets import Dataset

    from backend.data.datasets_io import load_rows

    required = template_fields(resolve_template(spec.template)) + [spec.target_field]
    return Dataset.from_list(to_prompt_completion(load_rows(spec.dataset, split, required, limit), spec))


def _lora_targets(model, wanted: list[str], model_name: str) -> list[str] | str:
    """Check LoRA target names against the model's adaptable layers (peft matches name suffixes)."""
    import torch
    from transformers.pytorch_utils import Conv1D

    if wanted == ["all-linear"]:
        return "all-linear"
    kinds = (torch.nn.Linear, torch.nn.Embedding, torch.nn.Conv1d, torch.nn.Conv2d, Conv1D)
    layers = [name for name, module in model.named_modules() if isinstance(module, kinds)]
    unknown = [t for t in wanted if not any(n == t or n.endswith("." + t) for n in layers)]
    if unknown:
        leaves = sorted({n.rsplit(".", 1)[-1] for n in layers} - {"lm_head"})
        raise StudioError(f"LoRA target module(s) {', '.join(unknown)} do not exist in {model_name}; its layers "
                          f"that LoRA can adapt are: {', '.join(leaves)} (or use all-linear).")
    return wanted


def _registered_base_id(session, base) -> int:
    """The registry id of the model SFT started from, registering a plain folder or hub id first."""
    from pathlib import Path

    from sqlalchemy import select

    from backend.db.tables import ModelRecord

    if base.id is not None:
        return base.id
    existing = session.scalar(select(ModelRecord).where(ModelRecord.path == base.path).order_by(ModelRecord.id))
    if existing is not None:
        return existing.id
    name, n = base.name, 2
    while session.scalar(select(ModelRecord.id).where(ModelRecord.name == name)) is not None:
        name, n = f"{base.name}-{n}", n + 1
    source = "local" if Path(base.path).is_dir() else "hub"
    return register_model(session, name, base.path, source=source).id


def _use_bf16(spec: SFTSpec, device: str) -> bool:
    return spec.train.precision == "bf16" or (spec.train.precision == "auto" and device == "cuda")


def run(ctx: JobContext) -> int | None:
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    from backend.data.datasets_io import check_dataset_ref
    from backend.models.loader import load_tokenizer, resolve_device

    spec: SFTSpec = ctx.spec
    with session_scope(write=True) as s:
        base = resolve(s, spec.base_model)
    if base.kind == "adapter":
        raise StudioError("Start SFT from a base or full model; to continue an adapter, merge it first.")
    device = resolve_device()
    bf16 = _use_bf16(spec, device)
    if bf16 and device == "cpu" and spec.train.precision == "bf16":
        print("bf16 on CPU: supported here but slower than fp32 on most CPUs", flush=True)
    train_ds = _dataset(spec, "train", spec.max_train_examples)
    splits = check_dataset_ref(spec.dataset)
    eval_ds = _dataset(spec, "validation", spec.max_eval_examples) if (
        spec.max_eval_examples and "validation" in splits) else None
    ctx.raise_if_cancelled()
    tokenizer = load_tokenizer(base.path)
    tokenizer.padding_side = "right"  # training pads on the right
    if spec.chat_format and not getattr(tokenizer, "chat_template", None):
        raise StudioError(f"{base.name} has no chat template: set chat_format to false to train on plain text.")
    model = AutoModelForCausalLM.from_pretrained(base.path, dtype=torch.bfloat16 if bf16 else torch.float32)
    peft_config = None
    if spec.peft == "lora":
        targets = _lora_targets(model, spec.lora.target_modules, base.name)
        peft_config = LoraConfig(r=spec.lora.r, lora_alpha=spec.lora.alpha, lora_dropout=spec.lora.dropout,
                                 target_modules=targets, task_type="CAUSAL_LM")
    t = spec.train
    config = SFTConfig(
        output_dir=str(ctx.out_dir / "checkpoints"), max_steps=t.max_steps, num_train_epochs=t.epochs,
        learning_rate=t.learning_rate, lr_scheduler_type=t.lr_scheduler, warmup_steps=t.warmup_ratio,
        per_device_train_batch_size=t.batch_size, per_device_eval_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum, max_length=t.max_length, seed=t.seed,
        logging_steps=t.logging_steps, bf16=bf16, use_cpu=device == "cpu", report_to="none",
        activation_checkpointing=False, completion_only_loss=True, save_strategy="no",
        eval_strategy="steps" if (eval_ds is not None and t.eval_steps) else "no", eval_steps=t.eval_steps or None,
        dataloader_num_workers=0, disable_tqdm=True,
    )
    tokens_per_step = t.batch_size * t.grad_accum * min(t.max_length, 256)  # rough, refined by Trainer's num_tokens
    trainer = SFTTrainer(model=model, args=config, train_dataset=train_ds, eval_dataset=eval_ds,
                         processing_class=tokenizer, peft_config=peft_config,
                         callbacks=[StudioCallback(ctx, tokens_per_step)])
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in trainer.model.parameters())
    ctx.log_metrics(0, {"trainable_params": trainable, "total_params": total})
    print(f"trainable parameters: {trainable:,} of {total:,} ({100 * trainable / total:.2f}%)", flush=True)
    result = trainer.train()
    ctx.raise_if_cancelled()
    if eval_ds is not None:
        ctx.log_metrics(trainer.state.global_step, trainer.evaluate())
    out = ctx.out_dir / "model"
    trainer.save_model(str(out))
    tokenizer.save_pretrained(str(out))
    kind = "adapter" if spec.peft == "lora" else "full"
    name = f"{spec.name or 'sft'}-job{ctx.job_id}"
    with session_scope(write=True) as s:
        # An adapter needs its base's row to load. A full model is self-contained: its lineage is kept in
        # meta because the loader reads a base_model_id as "load the base's weights" (adapters only).
        base_id = _registered_base_id(s, base) if kind == "adapter" else None
        record = register_model(s, name, str(out), kind=kind, source="job", base_model_id=base_id,
                                job_id=ctx.job_id, meta={"base": base.name, "base_path": base.path,
                                                         "base_model_id": base.id, "dataset": spec.dataset,
                                                         "trainable_params": trainable, "total_params": total,
                                                         "train_runtime": result.metrics.get("train_runtime"),
                                                         "spec": spec.model_dump(mode="json")})
        return record.id
