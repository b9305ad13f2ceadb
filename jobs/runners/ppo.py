"""PPO with a KL guard (our own implementation: ``jobs.rl.ppo`` is the math, ``jobs.rl.trainer`` the loop).

Dataset: prompts in ``prompt_field`` of ``split`` (rollouts) and of ``eval_split`` (held-out evaluation);
``demo:provocative`` holds prompts that invite rude answers. Rewards: ``spec.reward`` (``jobs.rl.rewards``).

Logged metric keys, every step: ``objective/scores`` (mean reward-source score), ``objective/kl`` (mean KL to
the reference per completion, summed over tokens), ``objective/entropy`` (mean −log π of the sampled
completion), ``objective/non_score_reward`` (mean −β·KL per completion), ``objective/rlhf_reward`` (score +
non-score reward), ``policy/approxkl`` (½E[(log π_new − log π_old)²] within the update), ``policy/clipfrac``,
``policy/entropy`` (mean per-token entropy), ``val/loss``, ``val/clipfrac``, ``loss/policy``, ``kl_coef`` (β),
``completion_length``, ``time/step_seconds``; at evaluations (step 0, every ``eval_steps``, the end):
``eval/reward``, ``eval/reward_std``, ``eval/toxicity``, ``eval/toxicity_std``, ``eval/kl``.

Several processes (``resources.processes``): data-parallel, ``ppo.batch_size`` and ``mini_batch_size`` count the
whole step and are split evenly over the ranks (see ``jobs.rl.trainer``); rank 0 writes metrics and outputs.

Outputs: ``samples.jsonl`` (a few completions with their rewards per step), ``eval_scores.jsonl`` (every
held-out completion's prompt, reward, toxicity and KL at each evaluation, for paired comparisons),
``ppo_summary.json``, and under
``model/`` the LoRA adapter (registered onto its base) or, for full PPO or a policy that started from an
adapter, the full model; ``value_head.safetensors`` beside it.
"""

import json

from backend.db.engine import session_scope
from backend.errors import StudioError
from backend.models.store import resolve
from jobs.artifacts import EVAL_SCORES
from jobs.context import JobContext
from jobs.distributed import record_weights
from jobs.specs import PPOSpec


def _log_step(ctx: JobContext, samples_path):
    from jobs.rl.trainer import append_samples

    def log(step: int, metrics: dict, samples: list[dict]) -> None:
        if not ctx.is_main:  # several processes: the metrics are already the ranks' means; rank 0 writes them
            return
        ctx.log_metrics(step, metrics)
        shown = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k.startswith(("objective/s", "objective/kl",
                                                                                        "kl_coef", "eval/")))
        print(f"step {step}: {shown}", flush=True)
        for s in samples:
            print(f"  reward {s['reward']:+.3f} | {s['prompt'][:60]!r} → {s['completion'][:120]!r}", flush=True)
        append_samples(samples_path, samples)

    return log


def run(ctx: JobContext) -> int | None:
    import copy

    import torch
    from peft import get_peft_model
    from safetensors.torch import save_file

    from backend.models.loader import load_tokenizer, resolve_device
    from jobs.memory_saving import prepare
    from jobs.modeling import count_parameters, lora_config
    from jobs.rl.best import BestWeights
    from jobs.rl.checks import weights_path
    from jobs.rl.loading import dtype_for, load_causal_lm, prompt_texts, register_output
    from jobs.rl.rewards import load_reward_source, resolve_reward_paths
    from jobs.rl.trainer import PolicyWithValueHead, PPOTrainer

    spec: PPOSpec = ctx.spec
    with session_scope(write=True) as s:
        start = resolve(s, spec.policy_model)
        reference_ref = resolve(s, spec.reference_model) if spec.reference_model else start
        reward_paths = resolve_reward_paths(s, spec.reward)
    torch.manual_seed(spec.ppo.seed)
    device = resolve_device()
    dtype = dtype_for(spec.ppo.precision, device)
    tokenizer = load_tokenizer(weights_path(start))
    if spec.chat_format and not getattr(tokenizer, "chat_template", None):
        raise StudioError(f"{start.name} has no chat template: set chat_format to false.")
    prompts = prompt_texts(spec, spec.split)
    held_out = prompt_texts(spec, spec.eval_split, spec.eval_prompts) if spec.eval_prompts else []
    eval_prompts = [p for p in held_out for _ in range(spec.eval_samples)]  # same seed each time: same draws
    print(f"prompts: {len(prompts)} for rollouts, {len(held_out)} held out × {spec.eval_samples} sample(s)",
          flush=True)
    lm, _ = prepare(load_causal_lm(start, dtype, spec, device), spec, device)
    reference = None
    if spec.peft == "lora":
        lm = get_peft_model(lm, lora_config(spec.lora, lm, start.name))
    else:  # full-parameter PPO: a frozen copy is the reference (twice the memory)
        reference = copy.deepcopy(lm) if reference_ref.path == start.path else load_causal_lm(reference_ref, dtype)
        reference.requires_grad_(False).eval().to(device)
    policy = PolicyWithValueHead(lm).to(device)
    trainable, total = count_parameters(policy)
    ctx.log_metrics(0, {"trainable_params": trainable, "total_params": total})
    print(f"trainable parameters: {trainable:,} of {total:,} ({100 * trainable / total:.2f}%)", flush=True)
    reward_fn = load_reward_source(spec.reward, reward_paths, device)
    print(f"reward: {getattr(reward_fn, 'name', spec.reward.source)}", flush=True)
    trainer = PPOTrainer(policy, tokenizer, reward_fn, spec.ppo, spec.decoding, reference=reference,
                         chat_format=spec.chat_format, device=device)
    samples_path, scores_path = ctx.out_dir / "samples.jsonl", ctx.out_dir / EVAL_SCORES
    if ctx.is_main:
        samples_path.unlink(missing_ok=True)
        scores_path.unlink(missing_ok=True)

    best = BestWeights(policy, spec.ppo.kl_target) if spec.keep_best else None

    def keep_eval_scores(step: int, rows: list[dict]) -> None:
        if best is not None and best.offer(step, rows):  # every rank: they hold the same weights and scores
            print(f"step {step}: best held-out reward so far within the KL limit: kept", flush=True)
        if not ctx.is_main:
            return
        with scores_path.open("a", encoding="utf-8") as fh:
            fh.writelines(json.dumps({"step": step, **row}, ensure_ascii=False) + "\n" for row in rows)

    summary = trainer.train(prompts, log=_log_step(ctx, samples_path), eval_prompts=eval_prompts,
                            eval_steps=spec.eval_steps, stop_reward=spec.stop_reward, stop_toxicity=spec.stop_toxicity,
                            samples_per_step=spec.samples_per_step, should_stop=ctx.should_cancel,
                            on_eval=keep_eval_scores)
    ctx.raise_if_cancelled()
    if best is not None:
        summary["kept_step"], summary["kept_eval"] = best.step, best.scores
        if best.step is None:
            print(f"keep_best: no evaluation had KL per completion within {spec.ppo.kl_target:g}: the last step is "
                  "the output", flush=True)
        elif best.step != summary["steps"]:
            best.restore()
            print(f"keep_best: the output is step {best.step} (reward {best.scores['eval/reward']:.4f}, KL "
                  f"{best.scores['eval/kl']:.2f}), not the last step {summary['steps']}", flush=True)
    record_weights(ctx, policy, kl_coef=trainer.kl.value)
    if not ctx.is_main:  # several processes: rank 0 writes the outputs and registers the model
        return None
    summary["kl_target"] = spec.ppo.kl_target if spec.ppo.adaptive_kl else None
    (ctx.out_dir / "ppo_summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    print(f"stopped after {summary['steps']} step(s): {summary['stopped']}", flush=True)

    out = ctx.out_dir / "model"
    as_adapter = spec.peft == "lora" and start.kind != "adapter"  # an adapter on a merged SFT model needs it all
    to_save = lm if as_adapter or spec.peft == "none" else lm.merge_and_unload()
    to_save.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    save_file({k: v.detach().cpu().contiguous() for k, v in policy.value_head.state_dict().items()},
              str(out / "value_head.safetensors"))
    return register_output(ctx, start, str(out), "adapter" if as_adapter else "full", {
        "reference": reference_ref.name, "reward": spec.reward.model_dump(mode="json"), "prompts": spec.prompts,
        "trainable_params": trainable, "total_params": total, "steps": summary["steps"],
        "stopped": summary["stopped"], "first_eval": summary["first_eval"], "last_eval": summary["last_eval"],
        "kept_step": summary.get("kept_step"), "kept_eval": summary.get("kept_eval")})
