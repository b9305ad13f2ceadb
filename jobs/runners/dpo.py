"""Direct preference optimization with TRL's ``DPOTrainer``: the policy learns from pairs directly, no reward model.

Dataset: TRL preference rows ``prompt``, ``chosen``, ``rejected`` from a labeling campaign or a file
(``jobs.rl.preferences``), split by prompt; with ``data.chat_format`` they are conversations (the prompt a user
turn, each completion an assistant turn) so TRL applies the model's chat template. The loss (``loss_type``
sigmoid) is −log σ(β·[(log π(y_c) − log π_ref(y_c)) − (log π(y_r) − log π_ref(y_r))]); with LoRA the
reference is the base with its adapters off (one model in memory).

Logged metric keys (TRL's names): ``loss``, ``rewards/chosen``, ``rewards/rejected``, ``rewards/accuracies``,
``rewards/margins``, ``logps/chosen``, ``logps/rejected``, ``learning_rate``, ``grad_norm``, and ``eval_*`` on
held-out pairs; ``data/train_pairs``, ``data/test_pairs``, ``trainable_params``, ``total_params``.

Output: the adapter (LoRA on a base or full model) or the full model under ``model/``, registered with lineage.

Several processes: data-parallel through the Trainer (DDP, or FSDP for full fine-tuning); ``train.batch_size`` is
per process; rank 0 writes the metrics and the model.
"""

from jobs.callbacks import StudioCallback
from jobs.context import JobContext
from jobs.distributed import save_trained_policy, trainer_arguments
from jobs.specs import DPOSpec


def _dataset(rows: list[dict], chat: bool):
    from datasets import Dataset

    if chat:
        return Dataset.from_list([{"prompt": [{"role": "user", "content": r["prompt"]}],
                                   "chosen": [{"role": "assistant", "content": r["chosen"]}],
                                   "rejected": [{"role": "assistant", "content": r["rejected"]}]} for r in rows])
    return Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows])


def run(ctx: JobContext) -> int | None:
    from trl import DPOConfig, DPOTrainer

    from backend.models.loader import load_tokenizer, resolve_device
    from jobs.memory_saving import prepare
    from jobs.modeling import count_parameters, lora_config
    from jobs.rl.checks import weights_path
    from jobs.rl.loading import dtype_for, load_causal_lm
    from jobs.rl.preferences import open_preference_job

    spec: DPOSpec = ctx.spec
    t = spec.train
    start, data = open_preference_job(ctx, spec)
    device = resolve_device()
    dtype = dtype_for(t.precision, device)
    tokenizer = load_tokenizer(weights_path(start))
    chat = spec.data.chat_format and bool(getattr(tokenizer, "chat_template", None))
    model, checkpointing = prepare(load_causal_lm(start, dtype, spec, device), spec, device)
    peft_config = None
    if spec.peft == "lora":
        peft_config = lora_config(spec.lora, model, start.name)
    config = DPOConfig(
        output_dir=str(ctx.out_dir / "checkpoints"), beta=spec.beta, loss_type=[spec.loss_type],
        max_steps=t.max_steps, num_train_epochs=t.epochs, learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler, warmup_steps=t.warmup_ratio, per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.batch_size, gradient_accumulation_steps=t.grad_accum, max_length=t.max_length,
        seed=t.seed, weight_decay=t.weight_decay, logging_steps=t.logging_steps, bf16=dtype != dtype_for("fp32", "cpu"),
        use_cpu=device == "cpu", report_to="none", activation_checkpointing=checkpointing, save_strategy="no",
        eval_strategy="steps" if (data.test and t.eval_steps) else "no", eval_steps=t.eval_steps or None,
        dataloader_num_workers=0, disable_tqdm=True, **trainer_arguments(ctx, device),
    )
    trainer = DPOTrainer(model=model, args=config, train_dataset=_dataset(data.train, chat),
                         eval_dataset=_dataset(data.test, chat) if data.test else None, processing_class=tokenizer,
                         peft_config=peft_config, callbacks=[StudioCallback(ctx)])
    trainable, total = count_parameters(trainer.model)
    ctx.log_metrics(0, {"trainable_params": trainable, "total_params": total})
    result = trainer.train()
    ctx.raise_if_cancelled()
    if data.test:
        trainer.evaluate()  # the final eval row: Trainer.log → StudioCallback.on_log records it once
    return save_trained_policy(ctx, trainer, tokenizer, start, spec.peft, {
        "data": data.source, "beta": spec.beta, "loss_type": spec.loss_type, "trainable_params": trainable,
        "total_params": total, "train_runtime": result.metrics.get("train_runtime"),
        "global_step": trainer.state.global_step})
