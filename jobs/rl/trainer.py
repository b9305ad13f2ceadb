"""The PPO loop around a causal language model: rollouts → scores → KL-shaped rewards → GAE → clipped updates.

One step::

    1. rollout   sample a completion for each of ``batch_size`` prompts with the policy's decoding settings
    2. score     the reward source scores each completion once (paid at its last token)
    3. evaluate  one no-grad pass gives the policy's log-probs and values, and the reference's log-probs
    4. shape     r_t = −β·KL_t (+ score at the end); GAE gives advantages and returns; advantages are whitened
    5. update    ``ppo_epochs`` passes over shuffled mini-batches: clipped policy loss + c1·value loss − c2·entropy
    6. adapt β   the KL controller moves β towards the target

Data-parallel (several ranks, ``jobs.distributed``): ``batch_size`` and ``mini_batch_size`` count the whole step;
every rank walks the same shuffled prompt order and rolls out its own slice (``batch[rank::world]``), advantages are
whitened with the whole batch's statistics, each mini-batch's gradients are averaged over the ranks before the
optimizer step (so the weights stay identical everywhere), and the step's statistics are averaged over the ranks
before the KL controller moves, so every rank keeps the same β. The held-out evaluation runs whole on every rank
(same weights, same seed: same numbers), so stop decisions agree without a message.

Memory: the value head sits on the policy's last hidden state (``PolicyWithValueHead``); with LoRA the reference
is the same backbone with its adapters disabled, so one model is in memory. Dropout stays off throughout, so
the rollout's log-probabilities and the first update's agree (ratio = 1 before any step).
"""

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from statistics import mean, pstdev

import torch

from jobs.distributed import average_gradients, broadcast_parameters, mean_across_ranks
from jobs.rl.ppo import (
    AdaptiveKLController,
    FixedKLController,
    clipped_policy_loss,
    clipped_value_loss,
    entropy_from_logits,
    gae_advantages,
    kl_per_token,
    masked_mean,
    masked_whiten,
    shaped_rewards,
)

RewardFn = Callable[[list[str], list[str], list[list[int]]], list[float]]


class PolicyWithValueHead(torch.nn.Module):
    """A causal LM and a scalar value head V(s_t) on its last hidden state (zero at the start)."""

    def __init__(self, lm):
        super().__init__()
        self.lm = lm
        hidden = lm.config.get_text_config().hidden_size
        self.value_head = torch.nn.Linear(hidden, 1, dtype=next(lm.parameters()).dtype)
        torch.nn.init.zeros_(self.value_head.weight)
        torch.nn.init.zeros_(self.value_head.bias)

    def forward(self, input_ids, attention_mask, keep: int):
        """Logits and values for the last ``keep`` positions (the completion and the token before it)."""
        out = self.lm(input_ids=input_ids, attention_mask=attention_mask, position_ids=_positions(attention_mask),
                      output_hidden_states=True, logits_to_keep=keep)
        values = self.value_head(out.hidden_states[-1][:, -keep:]).squeeze(-1)
        return out.logits, values


def _positions(attention_mask: torch.Tensor) -> torch.Tensor:
    # Left-padded prompts: positions count real tokens only, as ``generate`` does.
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


@dataclass
class Rollout:
    prompts: list[str]  # the user-visible prompt texts
    completions: list[str]
    input_ids: torch.Tensor  # (B, prompt + completion), prompts left-padded
    attention_mask: torch.Tensor
    mask: torch.Tensor  # (B, completion): 1 up to and including the end-of-sequence token
    completion_ids: list[list[int]]


class PPOTrainer:
    """Runs PPO steps; ``log(step, metrics, samples)`` receives every step's numbers and a few samples."""

    def __init__(self, policy: PolicyWithValueHead, tokenizer, reward_fn: RewardFn, args, decoding, *,
                 reference=None, chat_format: bool = True, device: str = "cpu"):
        self.policy, self.tokenizer, self.reward_fn, self.args = policy, tokenizer, reward_fn, args
        self.decoding, self.reference, self.chat, self.device = decoding, reference, chat_format, device
        self.temperature = decoding.temperature  # log-probs are those of the distribution actually sampled
        self.kl = AdaptiveKLController(args.kl_coef, args.kl_target, args.kl_horizon) if args.adaptive_kl \
            else FixedKLController(args.kl_coef)
        self.params = params = [p for p in policy.parameters() if p.requires_grad]
        self.rank, self.world = _rank_and_world()
        if self.world > 1:
            broadcast_parameters(params)  # random initialisations (LoRA's A, a new head) must agree
            torch.manual_seed(args.seed + self.rank)  # each rank samples its own completions
        self.local_mini_batch = max(1, args.mini_batch_size // self.world)
        self._sum_across = _sum_all_ranks if self.world > 1 else None
        # eps 1e-5 as in OpenAI's PPO baselines: a larger eps damps steps on parameters whose gradients are pure noise
        self.optimizer = torch.optim.AdamW(params, lr=args.learning_rate, eps=1e-5)
        self.rng = random.Random(args.seed)
        self.eos_ids = {i for i in [tokenizer.eos_token_id, *_as_list(policy.lm.generation_config.eos_token_id)]
                        if i is not None}
        policy.eval()  # no dropout: see the module docstring

    # --- 1. rollout ------------------------------------------------------------------------------------------
    def _format(self, prompt: str) -> str:
        from backend.generation.engine import format_prompt

        return format_prompt(self.tokenizer, prompt, self.chat)

    @torch.no_grad()
    def rollout(self, prompts: list[str]) -> Rollout:
        tok = self.tokenizer
        tok.padding_side = "left"
        enc = tok([self._format(p) for p in prompts], return_tensors="pt", padding=True,
                  add_special_tokens=False).to(self.device)
        kwargs = self.decoding.generate_kwargs()
        kwargs.pop("num_return_sequences", None)
        out = self.policy.lm.generate(**enc, **kwargs, pad_token_id=tok.pad_token_id)
        completion = out[:, enc.input_ids.shape[1]:]
        is_eos = torch.zeros_like(completion, dtype=torch.bool)
        for eos in self.eos_ids:
            is_eos |= completion == eos
        # a token belongs to the completion if no end-of-sequence token came before it
        mask = (torch.cumsum(is_eos.long(), dim=1) - is_eos.long() == 0).float()
        completion = torch.where(mask.bool(), completion, torch.full_like(completion, tok.pad_token_id))
        ids = [row[: int(m.sum())].tolist() for row, m in zip(completion, mask, strict=True)]
        texts = [tok.decode(i, skip_special_tokens=True) for i in ids]
        return Rollout(prompts, texts, torch.cat([enc.input_ids, completion], 1),
                       torch.cat([enc.attention_mask, mask.long()], 1), mask, ids)

    # --- 3. log-probs, values, reference -----------------------------------------------------------------------
    def _logprobs_values(self, input_ids, attention_mask, width: int, model=None):
        if model is None:
            logits, values = self.policy(input_ids, attention_mask, width + 1)
        else:
            out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=_positions(attention_mask),
                        logits_to_keep=width + 1)
            logits, values = out.logits, None
        logits = logits[:, :-1].float() / self.temperature  # position t predicts completion token t
        logprobs = torch.log_softmax(logits, -1).gather(-1, input_ids[:, -width:, None]).squeeze(-1)
        return logits, logprobs, (values[:, :-1].float() if values is not None else None)

    @torch.no_grad()
    def reference_logprobs(self, input_ids, attention_mask, width: int) -> torch.Tensor:
        if self.reference is not None:
            return self._logprobs_values(input_ids, attention_mask, width, model=self.reference)[1]
        with self.policy.lm.disable_adapter():  # LoRA: the reference is the backbone without adapters
            return self._logprobs_values(input_ids, attention_mask, width, model=self.policy.lm)[1]

    # --- one PPO step ------------------------------------------------------------------------------------------
    def step(self, prompts: list[str]) -> tuple[dict[str, float], Rollout, list[float]]:
        a = self.args
        roll = self.rollout(prompts)
        scores_list = [float(s) for s in self.reward_fn(roll.prompts, roll.completions, roll.completion_ids)]
        scores = torch.tensor(scores_list, device=self.device)
        if a.score_clip:
            scores = scores.clamp(-a.score_clip, a.score_clip)
        width, mask = roll.mask.shape[1], roll.mask
        mini = self.local_mini_batch
        with torch.no_grad():
            chunks = [self._logprobs_values(roll.input_ids[i:i + mini], roll.attention_mask[i:i + mini], width)
                      for i in range(0, len(prompts), mini)]
            old_logprobs = torch.cat([c[1] for c in chunks])
            old_values = torch.cat([c[2] for c in chunks]) * mask
            ref_logprobs = torch.cat([self.reference_logprobs(roll.input_ids[i:i + mini],
                                                              roll.attention_mask[i:i + mini], width)
                                      for i in range(0, len(prompts), mini)])
            kl = kl_per_token(old_logprobs, ref_logprobs, a.kl_estimator) * mask
            rewards = shaped_rewards(scores, kl, mask, self.kl.value)
            if a.whiten_rewards:
                rewards = masked_whiten(rewards, mask, shift_mean=False, sum_across=self._sum_across)
            advantages, returns = gae_advantages(rewards, old_values, mask, a.gamma, a.lam)
            advantages = masked_whiten(advantages, mask, sum_across=self._sum_across)
        stats = self._update(roll, old_logprobs, old_values, advantages, returns)
        kl_sum = kl.sum(1)
        non_score = (-self.kl.value * kl).sum(1)
        metrics = {
            "objective/scores": scores.mean().item(),
            "objective/kl": kl_sum.mean().item(),
            "objective/entropy": (-old_logprobs * mask).sum(1).mean().item(),
            "objective/non_score_reward": non_score.mean().item(),
            "objective/rlhf_reward": (scores + non_score).mean().item(),
            **stats,
            "kl_coef": self.kl.value,
            "completion_length": mask.sum(1).mean().item(),
        }
        if self.world > 1:  # the whole batch's statistics: β moves the same way on every rank
            metrics = mean_across_ranks(metrics)
        self.kl.update(metrics["objective/kl"], len(prompts) * self.world)
        return metrics, roll, scores_list

    # --- 5. the update -----------------------------------------------------------------------------------------
    def _update(self, roll: Rollout, old_logprobs, old_values, advantages, returns) -> dict[str, float]:
        a, width = self.args, roll.mask.shape[1]
        totals: dict[str, list[float]] = {k: [] for k in ("policy/approxkl", "policy/clipfrac", "policy/entropy",
                                                           "val/loss", "val/clipfrac", "loss/policy")}
        indices = list(range(len(roll.prompts)))
        for _ in range(a.ppo_epochs):
            self.rng.shuffle(indices)
            for start in range(0, len(indices), self.local_mini_batch):
                mb = torch.tensor(indices[start:start + self.local_mini_batch], device=self.device)
                mask = roll.mask[mb]
                logits, logprobs, values = self._logprobs_values(roll.input_ids[mb], roll.attention_mask[mb], width)
                policy = clipped_policy_loss(logprobs, old_logprobs[mb], advantages[mb], mask, a.clip_range)
                value_loss, value_clipfrac = clipped_value_loss(values, old_values[mb], returns[mb], mask,
                                                                a.clip_range_value)
                entropy = masked_mean(entropy_from_logits(logits), mask)
                loss = policy.loss + a.vf_coef * value_loss - a.entropy_coef * entropy
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if self.world > 1:
                    average_gradients(self.params)  # what DDP does: every rank steps with the batch's mean gradient
                torch.nn.utils.clip_grad_norm_([p for p in self.policy.parameters() if p.requires_grad],
                                               a.max_grad_norm)
                self.optimizer.step()
                for key, value in (("policy/approxkl", policy.approxkl), ("policy/clipfrac", policy.clipfrac),
                                   ("policy/entropy", entropy), ("val/loss", value_loss),
                                   ("val/clipfrac", value_clipfrac), ("loss/policy", policy.loss)):
                    totals[key].append(value.item())
        return {k: mean(v) for k, v in totals.items()}

    # --- held-out evaluation -----------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, prompts: list[str], batch_size: int, seed: int) -> dict[str, float]:
        """Mean reward, toxicity (profanity classifier) and KL on held-out prompts, sampled with a fixed seed."""
        from backend.metrics.scorers import toxicity_scores

        state = torch.random.get_rng_state()
        torch.manual_seed(seed)  # the same draws at every evaluation: changes come from the policy
        scores, texts, kls, prompts_seen = [], [], [], []
        for start in range(0, len(prompts), batch_size):
            roll = self.rollout(prompts[start:start + batch_size])
            prompts_seen += roll.prompts
            scores += [float(s) for s in self.reward_fn(roll.prompts, roll.completions, roll.completion_ids)]
            texts += roll.completions
            width = roll.mask.shape[1]
            logprobs = self._logprobs_values(roll.input_ids, roll.attention_mask, width)[1]
            ref = self.reference_logprobs(roll.input_ids, roll.attention_mask, width)
            kls += (kl_per_token(logprobs, ref, self.args.kl_estimator) * roll.mask).sum(1).tolist()
        torch.random.set_rng_state(state)
        toxicity = toxicity_scores(texts)
        # per completion, for paired comparisons between evaluations (same prompts, same seeded draws)
        self.last_eval_rows = [{"prompt": p, "reward": r, "toxicity": float(t), "kl": float(k)}
                               for p, r, t, k in zip(prompts_seen, scores, toxicity, kls, strict=True)]
        return {"eval/reward": mean(scores), "eval/reward_std": pstdev(scores), "eval/toxicity": mean(toxicity),
                "eval/toxicity_std": pstdev(toxicity), "eval/kl": mean(kls), "eval/completions": len(texts)}

    # --- the loop ----------------------------------------------------------------------------------------------
    def train(self, prompts: list[str], *, log: Callable[[int, dict, list[dict]], None], eval_prompts=(),
              eval_steps: int = 0, stop_reward: float | None = None, stop_toxicity: float | None = None,
              samples_per_step: int = 3, should_stop: Callable[[], bool] = lambda: False,
              on_eval: Callable[[int, list[dict]], None] | None = None) -> dict[str, object]:
        """Run up to ``max_steps`` steps; returns a summary (steps run, why it stopped, first/last evaluation).

        ``on_eval(step, rows)`` receives each held-out evaluation's per-completion scores (prompt, reward,
        toxicity, kl), step 0 being the start.
        """
        a, eval_prompts = self.args, list(eval_prompts)
        first_eval = last_eval = self.evaluate(eval_prompts, a.batch_size, a.seed) if eval_prompts else {}
        if first_eval:
            log(0, first_eval, [])
            if on_eval is not None:
                on_eval(0, self.last_eval_rows)
        reason, step = "max_steps", 0
        order: list[str] = []
        for step in range(1, a.max_steps + 1):
            if should_stop():
                reason = "cancelled"
                break
            if len(order) < a.batch_size:  # walk through the prompts in shuffled passes
                fresh = list(prompts)
                self.rng.shuffle(fresh)
                order += fresh * (1 + a.batch_size // max(1, len(fresh)))
            batch, order = order[:a.batch_size], order[a.batch_size:]
            began = time.perf_counter()
            metrics, roll, scores = self.step(batch[self.rank::self.world])  # this rank's share of the batch
            metrics["time/step_seconds"] = time.perf_counter() - began
            samples = [{"step": step, "prompt": p, "completion": c, "reward": s}
                       for p, c, s in list(zip(roll.prompts, roll.completions, scores, strict=True))[:samples_per_step]]
            at_eval = eval_prompts and (step == a.max_steps or (eval_steps and step % eval_steps == 0))
            if at_eval:
                last_eval = self.evaluate(eval_prompts, a.batch_size, a.seed)
                metrics.update(last_eval)
                if on_eval is not None:
                    on_eval(step, self.last_eval_rows)
            log(step, metrics, samples)
            if at_eval and stop_reward is not None and last_eval["eval/reward"] >= stop_reward:
                reason = "stop_reward"
                break
            if at_eval and stop_toxicity is not None and last_eval["eval/toxicity"] <= stop_toxicity:
                reason = "stop_toxicity"
                break
        if eval_prompts and reason == "cancelled":
            last_eval = {}
        return {"steps": step if reason != "cancelled" else step - 1, "stopped": reason, "first_eval": first_eval,
                "last_eval": last_eval}


def _rank_and_world() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _sum_all_ranks(tensor: torch.Tensor) -> torch.Tensor:
    import torch.distributed as dist

    dist.all_reduce(tensor)
    return tensor


def _as_list(value) -> list:
    return [] if value is None else [value] if isinstance(value, int) else list(value)


def append_samples(path: Path, samples: list[dict]) -> None:
    """Append sample completions as JSON lines (the RLHF page reads them)."""
    if samples:
        with path.open("a", encoding="utf-8") as fh:
            fh.writelines(json.dumps(s, ensure_ascii=False) + "\n" for s in samples)
