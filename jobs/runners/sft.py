"""Supervised fine-tuning with TRL's ``SFTTrainer``: full fine-tuning, LoRA or prompt tuning (``spec.peft``).

Dataset: rows with the template's fields (``template`` or each of ``template_mix``) and ``target_field``;
each becomes a prompt/completion pair (chat-formatted for chat models) so the loss covers the completion
only. Validation: the dataset's ``validation`` split, else ``validation_share`` of the training rows.
Examples over ``train.max_length`` follow ``long_examples`` (see ``jobs.data``).

Logged metric keys (TRL/Trainer names): ``loss``, ``grad_norm``, ``learning_rate``, ``epoch``, ``entropy``,
``mean_token_accuracy``, ``num_tokens``, ``eval_loss`` (and the other ``eval_*``),
``train/tokens_per_second`` (measured from ``num_tokens``), ``train_runtime``, ``trainable_params``,
``total_params``, ``data/train_examples``, ``data/validation_examples``, ``data/truncated_examples``,
``data/dropped_examples``.

Checkpoints: ``<job dir>/checkpoints/checkpoint-<step>`` every ``train.save_steps`` (the last
``save_total_limit`` kept); ``resume_from_job`` continues from another job's last checkpoint.

Output: the adapter (LoRA, prompt tuning) or the full model under ``<job dir>/model``, registered as a
model whose lineage names the base model, the data, the spec and this job.

Several processes (``resources.processes``/``gpus``): data-parallel through the Trainer (DDP, or FSDP for full
fine-tuning); ``train.batch_size`` is per process; rank 0 writes the metrics, checkpoints and the model.
"""

from backend.db.engine import session_scope
from backend.errors import StudioError
from backend.models.store import register_model, registered_id, resolve
from jobs import queue
from jobs.callbacks import StudioCallback
from jobs.context import JobContext
from jobs.data import apply_length_policy, load_sft_data
from jobs.distributed import record_weights, trainer_arguments
from jobs.modeling import count_parameters, peft_config
from jobs.specs import SFTSpec


def _use_bf16(spec: SFTSpec, device: str) -> bool:
    return spec.train.precision == "bf16" or (spec.train.precision == "auto" and device == "cuda")


def _datasets(ctx: JobContext, tokenizer):
    """Train and validation ``datasets.Dataset`` after the long-example policy, with the counts logged."""
    from datasets import Dataset

    spec: SFTSpec = ctx.spec
    data = load_sft_data(spec)
    train, stats = apply_length_policy(data.train, tokenizer, spec.train.max_length, spec.long_examples)
    val, val_stats = apply_length_policy(data.validation, tokenizer, spec.train.max_length, spec.long_examples,
                                         "validation")
    for what, s in (("training", stats), ("validation", val_stats)):
        if s["truncated"] or s["dropped"]:
            print(f"WARNING: {s['truncated']} {what} example(s) longer than max_length={spec.train.max_length} "
                  f"tokens will be truncated; {s['dropped']} dropped (long_examples={spec.long_examples}); "
                  f"longest: {s['longest_tokens']} tokens", flush=True)
    print(f"data: {len(train)} training examples, {len(val)} validation ({data.validation_source})", flush=True)
    ctx.log_metrics(0, {"data/train_examples": len(train), "data/validation_examples": len(val),
                        "data/truncated_examples": stats["truncated"] + val_stats["truncated"],
                        "data/dropped_examples": stats["dropped"] + val_stats["dropped"]})
    use_val = bool(val) and spec.max_eval_examples > 0
    if spec.train.early_stopping_patience and not use_val:
        raise StudioError("Early stopping needs validation data: the dataset has no validation split and "
                          "validation_share or max_eval_examples is 0.")
    return Dataset.from_list(train), (Dataset.from_list(val) if use_val else None)


def _config(spec: SFTSpec, ctx: JobContext, bf16: bool, device: str, has_eval: bool, checkpointing: bool = False):
    from trl import SFTConfig

    t = spec.train
    save = t.save_steps or (t.eval_steps if t.early_stopping_patience else 0)
    early = {"load_best_model_at_end": True, "metric_for_best_model": "eval_loss",
             "greater_is_better": False} if t.early_stopping_patience else {}
    return SFTConfig(
        output_dir=str(ctx.out_dir / "checkpoints"), max_steps=t.max_steps, num_train_epochs=t.epochs,
        learning_rate=t.learning_rate, lr_scheduler_type=t.lr_scheduler, warmup_steps=t.warmup_ratio,
        per_device_train_batch_size=t.batch_size, per_device_eval_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum, max_length=t.max_length, seed=t.seed, weight_decay=t.weight_decay,
        logging_steps=t.logging_steps, bf16=bf16, use_cpu=device == "cpu", report_to="none",
        activation_checkpointing=checkpointing, completion_only_loss=True,
        save_strategy="steps" if save else "no", save_steps=save or 500, save_total_limit=t.save_total_limit,
        eval_strategy="steps" if (has_eval and t.eval_steps) else "no", eval_steps=t.eval_steps or None,
        dataloader_num_workers=0, disable_tqdm=True, **early, **trainer_arguments(ctx, device),
    )


def run(ctx: JobContext) -> int | None:
    import torch
    from transformers import AutoModelForCausalLM, EarlyStoppingCallback
    from trl import SFTTrainer

    from backend.models.loader import load_tokenizer, resolve_device
    from jobs.artifacts import resume_checkpoint
    from jobs.memory_saving import load_kwargs, prepare

    spec: SFTSpec = ctx.spec
    with session_scope(write=True) as s:
        base = resolve(s, spec.base_model)
        resume = resume_checkpoint(s, spec) if spec.resume_from_job else None
    if base.kind == "adapter":
        raise StudioError("Start SFT from a base or full model; to continue an adapter, merge it first.")
    device = resolve_device()
    bf16 = _use_bf16(spec, device)
    if bf16 and device == "cpu" and spec.train.precision == "bf16":
        print("bf16 on CPU: supported here but slower than fp32 on most CPUs", flush=True)
    tokenizer = load_tokenizer(base.path)
    tokenizer.padding_side = "right"  # training pads on the right
    if spec.chat_format and not getattr(tokenizer, "chat_template", None):
        raise StudioError(f"{base.name} has no chat template: set chat_format to false to train on plain text.")
    train_ds, eval_ds = _datasets(ctx, tokenizer)
    ctx.raise_if_cancelled()
    model = AutoModelForCausalLM.from_pretrained(base.path, **load_kwargs(spec, device, torch.bfloat16 if bf16
                                                                           else torch.float32))
    model, checkpointing = prepare(model, spec, device)
    config = _config(spec, ctx, bf16, device, eval_ds is not None, checkpointing)
    callbacks = [StudioCallback(ctx)]
    if spec.train.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(spec.train.early_stopping_patience,
                                               spec.train.early_stopping_threshold))
    trainer = SFTTrainer(model=model, args=config, train_dataset=train_ds, eval_dataset=eval_ds,
                         processing_class=tokenizer, peft_config=peft_config(spec, model, base.path, base.name),
                         callbacks=callbacks)
    trainable, total = count_parameters(trainer.model)
    ctx.log_metrics(0, {"trainable_params": trainable, "total_params": total})
    print(f"trainable parameters: {trainable:,} of {total:,} ({100 * trainable / total:.2f}%)", flush=True)
    if resume:
        print(f"resuming from {resume}", flush=True)
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    ctx.raise_if_cancelled()
    if eval_ds is not None:
        trainer.evaluate()  # the final eval row: Trainer.log → StudioCallback.on_log records it once
    record_weights(ctx, trainer.model)
    out = ctx.out_dir / "model"
    trainer.save_model(str(out))  # on every rank: FSDP gathers the full weights; only rank 0 writes
    if not ctx.is_main:  # several processes: rank 0 alone writes files and registers the model
        return None
    tokenizer.save_pretrained(str(out))
    kind = "full" if spec.peft == "none" else "adapter"
    name = f"{spec.name or 'sft'}-job{ctx.job_id}"
    stopped_early = bool(spec.train.early_stopping_patience and spec.train.max_steps > 0
                         and trainer.state.global_step < spec.train.max_steps)
    with session_scope(write=True) as s:
        queue.require_running(s, ctx.job_id)  # reaped or ended meanwhile: register nothing
        # An adapter needs its base's row to load. A full model is self-contained: its lineage is kept in
        # meta because the loader reads a base_model_id as "load the base's weights" (adapters only).
        base_id = registered_id(s, base) if kind == "adapter" else None
        record = register_model(s, name, str(out), kind=kind, source="job", base_model_id=base_id,
                                job_id=ctx.job_id, meta={
                                    "method": {"none": "full"}.get(spec.peft, spec.peft), "base": base.name,
                                    "base_path": base.path, "base_model_id": base.id, "dataset": spec.dataset,
                                    "trainable_params": trainable, "total_params": total,
                                    "train_runtime": result.metrics.get("train_runtime"),
                                    "global_step": trainer.state.global_step, "stopped_early": stopped_early,
                                    "best_checkpoint": trainer.state.best_model_checkpoint,
                                    "resumed_from": str(resume) if resume else None,
                                    "spec": spec.model_dump(mode="json")})
        return record.id
