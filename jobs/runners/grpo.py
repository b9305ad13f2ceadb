"""Group-relative policy optimization with TRL's ``GRPOTrainer``, scored by the same reward sources as PPO.

For each prompt the policy samples ``num_generations`` completions; the reward source (``jobs.rl.rewards``: the
packaged toxicity score, a trained reward model, or a classifier's class logit) scores each one, and a
completion's advantage is its score minus its group's mean (divided by the group's std with
``scale_rewards: group``). No value head and no GAE: the group is the baseline. With ``beta > 0`` a KL term
keeps the policy near the reference (LoRA: the policy with its adapters off).

Dataset: prompts in ``prompt_field`` of ``split`` (``demo:provocative`` by default), as chat conversations when
``chat_format`` is on (TRL applies the model's chat template).

Logged metric keys (TRL's names): ``reward``, ``reward_std``, ``rewards/<source>/mean``, ``kl``, ``entropy``,
``completions/mean_length``, ``clip_ratio/region_mean``, ``loss``, ``learning_rate``, ``grad_norm``;
``trainable_params``, ``total_params``. A few completions with their scores go to ``samples.jsonl`` every step.

Output: the adapter (LoRA on a base or full model) or the full model under ``model/``, registered with lineage.

Several processes: ``batch_size`` stays the completions per step, split evenly over the ranks (each generates
and scores its share; TRL gathers the rewards so groups are normalised whole); rank 0 writes samples and outputs.
"""

from backend.db.engine import session_scope
from backend.models.store import resolve
from jobs.callbacks import StudioCallback
from jobs.context import JobContext
from jobs.distributed import save_trained_policy, trainer_arguments
from jobs.specs import GRPOSpec

SAMPLES_PER_CALL = 3


def _text(message) -> str:
    """A prompt or completion as TRL passes it: plain text, or a conversation whose last turn holds the text."""
    return message[-1]["content"] if isinstance(message, list) else str(message)


def make_reward_func(source, samples_path, current_step):
    """A TRL reward function around one of our reward sources; it also writes a few scored samples per call
    (``current_step()`` numbers them) to ``samples_path`` (None: none, as on ranks other than 0)."""
    from jobs.rl.trainer import append_samples

    def reward(prompts, completions, completion_ids=None, **_columns) -> list[float]:
        asked, texts = [_text(p) for p in prompts], [_text(c) for c in completions]
        scores = [float(s) for s in source(asked, texts, completion_ids)]
        if samples_path is not None:
            append_samples(samples_path, [{"step": current_step(), "prompt": p, "completion": c, "reward": s}
                                          for p, c, s in list(zip(asked, texts, scores, strict=True))[
                                              :SAMPLES_PER_CALL]])
        return scores

    from jobs.rl.rewards import ToxicityReward

    reward.__name__ = "toxicity" if isinstance(source, ToxicityReward) else "reward"  # TRL's rewards/<name>/mean
    return reward


def run(ctx: JobContext) -> int | None:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from backend.models.loader import load_tokenizer, resolve_device
    from jobs.memory_saving import prepare
    from jobs.modeling import count_parameters, lora_config
    from jobs.rl.checks import weights_path
    from jobs.rl.loading import dtype_for, load_causal_lm, prompt_texts
    from jobs.rl.rewards import load_reward_source, resolve_reward_paths

    spec: GRPOSpec = ctx.spec
    with session_scope(write=True) as s:
        start = resolve(s, spec.policy_model)
        reward_paths = resolve_reward_paths(s, spec.reward)
    device = resolve_device()
    dtype = dtype_for(spec.precision, device)
    tokenizer = load_tokenizer(weights_path(start))
    chat = spec.chat_format and bool(getattr(tokenizer, "chat_template", None))
    prompts = prompt_texts(spec, spec.split)
    print(f"prompts: {len(prompts)}; {spec.num_generations} completions each, "
          f"{spec.batch_size // spec.num_generations} prompt(s) per step", flush=True)
    data = Dataset.from_list([{"prompt": [{"role": "user", "content": p}]} if chat else {"prompt": p}
                              for p in prompts])
    model, checkpointing = prepare(load_causal_lm(start, dtype, spec, device), spec, device)
    peft_config = None
    if spec.peft == "lora":
        peft_config = lora_config(spec.lora, model, start.name)
    source = load_reward_source(spec.reward, reward_paths, device)
    print(f"reward: {getattr(source, 'name', spec.reward.source)}", flush=True)
    config = GRPOConfig(
        output_dir=str(ctx.out_dir / "checkpoints"), max_steps=spec.max_steps, learning_rate=spec.learning_rate,
        per_device_train_batch_size=spec.batch_size // ctx.world_size, num_generations=spec.num_generations, beta=spec.beta,
        temperature=spec.temperature, max_completion_length=spec.max_new_tokens, loss_type=spec.loss_type,
        scale_rewards=spec.scale_rewards, seed=spec.seed, logging_steps=1, bf16=dtype != dtype_for("fp32", "cpu"),
        use_cpu=device == "cpu", report_to="none", save_strategy="no", dataloader_num_workers=0, disable_tqdm=True,
        activation_checkpointing=checkpointing,
        lr_scheduler_type="constant", warmup_steps=0, **trainer_arguments(ctx, device),
    )
    samples_path = ctx.out_dir / "samples.jsonl" if ctx.is_main else None  # rank 0 writes the samples
    if samples_path is not None:
        samples_path.unlink(missing_ok=True)
    made: dict = {}  # the trainer, once built: its state numbers the samples (scoring happens before the step)
    reward_func = make_reward_func(source, samples_path, lambda: made["trainer"].state.global_step + 1)
    made["trainer"] = trainer = GRPOTrainer(model=model, reward_funcs=[reward_func], args=config, train_dataset=data,
                                            processing_class=tokenizer, peft_config=peft_config,
                                            callbacks=[StudioCallback(ctx)])
    trainable, total = count_parameters(trainer.model)
    ctx.log_metrics(0, {"trainable_params": trainable, "total_params": total})
    print(f"trainable parameters: {trainable:,} of {total:,} ({100 * trainable / total:.2f}%)", flush=True)
    result = trainer.train()
    ctx.raise_if_cancelled()
    return save_trained_policy(ctx, trainer, tokenizer, start, spec.peft, {
        "reference": start.name, "reward": spec.reward.model_dump(mode="json"), "prompts": spec.prompts,
        "num_generations": spec.num_generations, "beta": spec.beta, "trainable_params": trainable,
        "total_params": total, "train_runtime": result.metrics.get("train_runtime"),
        "global_step": trainer.state.global_step})
