"""Reward model training: a one-output sequence classifier r(prompt, completion) on preference pairs.

Dataset: TRL preference rows ``prompt``, ``chosen``, ``rejected`` (+ ``margin``) from a labeling campaign
(``labeling.export``) or a file, split by prompt (``jobs.rl.preferences``). Each pair is scored as
``pair_text(prompt, completion)`` — the chat template when ``data.chat_format`` — and the loss is
``−log σ(r_chosen − r_rejected − margin)`` (the seeds' "minimise the log of sigmoid difference"). With
``group_by_ranking`` every batch holds whole rankings and each pair weighs 1/C(K,2) (InstructGPT), so a prompt
ranked once counts once however many pairs it gave.

A small custom loop rather than TRL's RewardTrainer: the grouped batches and their weights do not fit its
collator, and the loop stays short. Several processes (``resources.processes``): each rank takes every N-th batch
(``train.batch_size`` is per process), gradients are averaged over the ranks before each step (what DDP does), the
logged means are over all ranks; evaluation runs whole on each rank and rank 0 writes the model.

Logged metric keys: ``loss``, ``accuracy`` (share of pairs with r_chosen > r_rejected), ``margin`` (mean
r_chosen − r_rejected), ``learning_rate``; on held-out pairs ``eval_loss``, ``eval_accuracy``, ``eval_margin``;
``human_agreement`` (pooled annotator–annotator pairwise agreement of the campaign: the ceiling); and
``data/train_pairs``, ``data/test_pairs``.

Outputs under ``model/``: the full classifier (a LoRA is merged into it), its tokenizer and
``reward_format.json``; ``reward_report.json`` holds accuracy, human agreement and the chosen/rejected
reward distributions. The model is registered with kind ``reward``.
"""

import json
import math
import random
from statistics import mean

from jobs.context import JobContext
from jobs.specs import RewardSpec


def rank_share(all_batches: list, rank: int, world: int) -> list:
    """This rank's batches of one epoch: every ``world``-th, the same count on every rank (a tail too short to give
    each rank one is left for the next epoch's shuffle), so the ranks step together."""
    from backend.errors import StudioError

    if world == 1:
        return all_batches
    if len(all_batches) < world:
        raise StudioError(f"The training pairs make {len(all_batches)} batch(es) per epoch, fewer than the {world} "
                          "processes: lower batch_size or resources.processes.")
    return all_batches[rank::world][:len(all_batches) // world]


def batches(rows: list[dict], batch_size: int, group_by_ranking: bool, rng: random.Random) -> list[list[tuple]]:
    """One epoch of batches of ``(row index, weight)``: shuffled pairs, or whole rankings weighted 1/C(K,2)."""
    from jobs.rl.preferences import ranking_groups

    if not group_by_ranking:
        order = list(range(len(rows)))
        rng.shuffle(order)
        return [[(i, 1.0) for i in order[s:s + batch_size]] for s in range(0, len(order), batch_size)]
    groups = ranking_groups(rows)
    rng.shuffle(groups)
    out, current = [], []
    for group in groups:  # a ranking larger than the batch becomes a batch of its own
        if current and len(current) + len(group) > batch_size:
            out.append(current)
            current = []
        current += [(i, 1.0 / len(group)) for i in group]
    return out + ([current] if current else [])


def pairwise_loss(chosen, rejected, margin, weights):
    """Weighted mean of −log σ(r_chosen − r_rejected − margin)."""
    import torch.nn.functional as F

    losses = -F.logsigmoid(chosen - rejected - margin)
    return (losses * weights).sum() / weights.sum()


class _Scorer:
    def __init__(self, model, tokenizer, chat: bool, max_length: int, device: str):
        self.model, self.tokenizer, self.chat, self.max_length, self.device = model, tokenizer, chat, max_length, device

    def __call__(self, prompts: list[str], completions: list[str]):
        from jobs.rl.rewards import pair_text

        texts = [pair_text(self.tokenizer, p, c, self.chat) for p, c in zip(prompts, completions, strict=True)]
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt").to(self.device)
        return self.model(**enc).logits[:, 0].float()

    def pairs(self, rows: list[dict]):
        import torch

        prompts = [r["prompt"] for r in rows]
        both = self(prompts + prompts, [r["chosen"] for r in rows] + [r["rejected"] for r in rows])
        margin = torch.tensor([r["margin"] for r in rows], device=both.device)
        return both[:len(rows)], both[len(rows):], margin


def evaluate(scorer: _Scorer, rows: list[dict], batch_size: int) -> dict:
    import torch

    chosen, rejected, losses = [], [], []
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            c, r, m = scorer.pairs(rows[start:start + batch_size])
            chosen += c.tolist()
            rejected += r.tolist()
            losses.append(pairwise_loss(c, r, m, torch.ones_like(c)).item() * len(c))
    return {"eval_loss": sum(losses) / len(rows), "eval_accuracy": mean(c > r for c, r in zip(chosen, rejected)),
            "eval_margin": mean(c - r for c, r in zip(chosen, rejected)), "chosen": chosen, "rejected": rejected}


def run(ctx: JobContext) -> int | None:
    import torch
    from transformers import get_scheduler

    from backend.models.loader import load_tokenizer, resolve_device
    from jobs.distributed import average_gradients, broadcast_parameters, mean_across_ranks, record_weights
    from jobs.memory_saving import prepare, quantization
    from jobs.modeling import count_parameters, lora_config
    from jobs.rl.checks import weights_path
    from jobs.rl.loading import dtype_for, load_reward_backbone, register_output
    from jobs.rl.preferences import open_preference_job
    from jobs.rl.rewards import REWARD_FORMAT_FILE

    spec: RewardSpec = ctx.spec
    t = spec.train
    start, data = open_preference_job(ctx, spec)
    torch.manual_seed(t.seed)
    device = resolve_device()
    tokenizer = load_tokenizer(weights_path(start))
    tokenizer.padding_side = "right"
    model = load_reward_backbone(start, dtype_for(t.precision, device), tokenizer.pad_token_id, spec, device)
    model, _ = prepare(model, spec, device)
    if spec.peft == "lora":
        from peft import get_peft_model

        model = get_peft_model(model, lora_config(spec.lora, model, start.name, task_type="SEQ_CLS"))
    if quantization(spec) == "none":  # a quantized model was loaded onto its GPU and cannot move
        model.to(device)
    model.train()
    broadcast_parameters([p for p in model.parameters() if p.requires_grad])  # several ranks: one starting point
    trainable, total = count_parameters(model)
    ctx.log_metrics(0, {"trainable_params": trainable, "total_params": total})
    scorer = _Scorer(model, tokenizer, spec.data.chat_format and bool(tokenizer.chat_template), t.max_length, device)
    rng = random.Random(t.seed)
    per_epoch = len(rank_share(batches(data.train, t.batch_size, spec.group_by_ranking, rng), ctx.rank,
                               ctx.world_size))
    steps_per_epoch = math.ceil(per_epoch / t.grad_accum)
    max_steps = t.max_steps if t.max_steps > 0 else max(1, math.ceil(t.epochs * steps_per_epoch))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=t.learning_rate,
                                  weight_decay=t.weight_decay)
    scheduler = get_scheduler(t.lr_scheduler, optimizer, num_warmup_steps=int(t.warmup_ratio * max_steps),
                              num_training_steps=max_steps)
    step, pending, window = 0, [], []
    while step < max_steps:
        for batch in rank_share(batches(data.train, t.batch_size, spec.group_by_ranking, rng), ctx.rank,
                                ctx.world_size):
            c, r, m = scorer.pairs([data.train[i] for i, _ in batch])
            weights = torch.tensor([w for _, w in batch], device=c.device)
            (pairwise_loss(c, r, m, weights) / t.grad_accum).backward()
            window.append((pairwise_loss(c, r, m, weights).item(), (c > r).float().mean().item(),
                           (c - r).mean().item()))
            pending.append(1)
            if len(pending) < t.grad_accum:
                continue
            pending = []
            average_gradients([p for p in model.parameters() if p.requires_grad])  # several ranks: DDP's mean
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if step % t.logging_steps == 0 or step == max_steps:
                loss, acc, margin = (mean(x) for x in zip(*window))
                if ctx.world_size > 1:  # the means over every rank's pairs
                    loss, acc, margin = mean_across_ranks({"a": loss, "b": acc, "c": margin}).values()
                ctx.log_metrics(step, {"loss": loss, "accuracy": acc, "margin": margin,
                                       "learning_rate": scheduler.get_last_lr()[0]})
                print(f"step {step}: loss={loss:.4f} accuracy={acc:.3f} margin={margin:.3f}", flush=True)
                window = []
            if data.test and t.eval_steps and step % t.eval_steps == 0 and step < max_steps:
                model.eval()
                ctx.log_metrics(step, {k: v for k, v in evaluate(scorer, data.test, t.batch_size).items()
                                       if k.startswith("eval_")})
                model.train()
            ctx.raise_if_cancelled()
            if step >= max_steps:
                break
    model.eval()
    report = evaluate(scorer, data.test or data.train, t.batch_size)
    held_out = bool(data.test)
    if held_out:
        ctx.log_metrics(step, {k: v for k, v in report.items() if k.startswith("eval_")})
    record_weights(ctx, model)
    if not ctx.is_main:  # several processes: rank 0 writes the report and the model
        return None
    report.update(held_out=held_out, train_pairs=len(data.train), test_pairs=len(data.test), source=data.source,
                  **data.agreement)
    print(f"{'held-out' if held_out else 'training'} pairwise accuracy {report['eval_accuracy']:.3f} "
          f"(human–human agreement: {data.agreement.get('human_pairwise_agreement')})", flush=True)
    (ctx.out_dir / "reward_report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    out = ctx.out_dir / "model"
    (model.merge_and_unload() if spec.peft == "lora" else model).save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    (out / REWARD_FORMAT_FILE).write_text(json.dumps({"chat_format": scorer.chat}), encoding="utf-8")
    return register_output(ctx, start, str(out), "reward", {
        "data": data.source, "trainable_params": trainable, "total_params": total, "steps": step,
        "accuracy": report["eval_accuracy"], "held_out": held_out, **data.agreement})
