"""Proximal Policy Optimization for language models, as the math: one function per idea, pure torch.

A completion of T tokens is an episode: the state is the prompt plus the tokens so far, the action the next
token. The reward model scores the whole completion once, at its last token; every token also pays a
*shift penalty* for moving away from the frozen reference model (Ziegler et al., 2019; InstructGPT)::

    r_t = −β · KL_t                    for every completion token t          (KL_t = log π(a_t|s_t) − log π_ref(a_t|s_t))
    r_T += score                       at the last token

GAE turns rewards and the value head's estimates V(s_t) into advantages (Schulman et al., 2016)::

    δ_t = r_t + γ V(s_{t+1}) − V(s_t)         A_t = δ_t + γλ A_{t+1}         R_t = A_t + V(s_t)

and PPO maximises the clipped surrogate, with a clipped value loss and an entropy bonus (Schulman et al.,
2017)::

    ratio_t = π_θ(a_t|s_t) / π_old(a_t|s_t)
    L_policy = −E[min(ratio_t · A_t, clip(ratio_t, 1 − ε, 1 + ε) · A_t)]
    L_value  = ½ E[max((V_θ − R)², (V_old + clip(V_θ − V_old, −ε_v, ε_v) − R)²)]
    L = L_policy + c1 · L_value − c2 · H[π_θ]

β follows an adaptive controller towards a target KL, or stays fixed. All tensors are ``(batch, tokens)``
with a 0/1 ``mask`` marking the completion tokens (padding after the end-of-sequence token is 0). The
trainer (``jobs.rl.trainer``) does the rollouts and calls these functions; tests check them against
hand-computed numbers.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch

# --- masked statistics -------------------------------------------------------------------------------------


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean over the positions where ``mask`` is 1 (over everything, or along ``dim``)."""
    if dim is None:
        return (values * mask).sum() / mask.sum().clamp(min=1)
    return (values * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_var(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Unbiased variance over the masked positions (Bessel's correction, as numpy's ``ddof=1``)."""
    mean = masked_mean(values, mask)
    count = mask.sum()
    var = masked_mean((values - mean) ** 2, mask)
    return var * count / (count - 1) if count > 1 else var


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True,
                  sum_across: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Scale to unit variance over the masked positions (and to zero mean when ``shift_mean``).

    Advantages are whitened with the mean removed, so half the tokens are pushed up and half down. Rewards
    are whitened *without* removing the mean, which would flip the sign of a reward every completion earns.
    Data-parallel PPO passes ``sum_across`` (a sum over the ranks): the mean and variance are then those of the
    whole batch, as one process holding every rollout would compute them.
    """
    if sum_across is None:
        mean, var = masked_mean(values, mask), masked_var(values, mask)
    else:
        total, count = sum_across(torch.stack([(values * mask).sum(), mask.sum()]).double())
        mean = total / count.clamp(min=1)
        var = sum_across((((values - mean) ** 2) * mask).sum().double().reshape(1))[0] / count.clamp(min=1)
        var = var * count / (count - 1) if count > 1 else var
        mean, var = mean.to(values.dtype), var.to(values.dtype)
    whitened = (values - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask


# --- KL between the policy and the reference ---------------------------------------------------------------


def kl_per_token(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str = "k1") -> torch.Tensor:
    """Per-token estimate of KL(π ‖ π_ref) from the log-probabilities of the *sampled* tokens.

    ``k1`` = log π − log π_ref: unbiased, can be negative per token; the classic RLHF shift penalty.
    ``k3`` = (ρ − 1) − log ρ with ρ = π_ref / π: unbiased too, never negative, lower variance (Schulman, "Approximating
    KL divergence", 2020). Averaged over tokens sampled from π, both converge to the exact KL.
    """
    log_ratio = logprobs - ref_logprobs
    if estimator == "k1":
        return log_ratio
    if estimator == "k3":
        return torch.expm1(-log_ratio) + log_ratio
    raise ValueError(f"unknown KL estimator {estimator!r}: use k1 or k3")


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the next-token distribution at every position: logsumexp(z) − Σ softmax(z)·z."""
    probs = torch.softmax(logits, dim=-1)
    return torch.logsumexp(logits, dim=-1) - (probs * logits).sum(-1)


# --- rewards and advantages --------------------------------------------------------------------------------


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of each row's last completion token (where the sequence-level score is paid)."""
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    return (positions * mask.long()).amax(dim=1)


def shaped_rewards(scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, kl_coef: float) -> torch.Tensor:
    """Per-token rewards: −β·KL_t at every completion token, plus the score at the last one."""
    rewards = -kl_coef * kl * mask
    rows = torch.arange(rewards.shape[0], device=rewards.device)
    rewards[rows, last_token_index(mask)] += scores
    return rewards


def gae_advantages(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float,
                   lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation, backwards from the last token; returns ``(advantages, returns)``.

    The state after the last completion token is terminal (its value is 0). Padding carries zero reward and
    zero value, so the recursion passes through it unchanged and the last real token sees V(s_{T+1}) = 0.
    """
    rewards, values = rewards * mask, values * mask
    advantages = torch.zeros_like(rewards)
    next_advantage = torch.zeros_like(rewards[:, 0])
    next_value = torch.zeros_like(values[:, 0])
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        next_advantage = delta + gamma * lam * next_advantage
        advantages[:, t] = next_advantage
        next_value = values[:, t]
    returns = advantages + values
    return advantages * mask, returns * mask


# --- the losses --------------------------------------------------------------------------------------------


@dataclass
class PolicyLoss:
    loss: torch.Tensor  # −E[min(ratio·A, clip(ratio)·A)]
    clipfrac: torch.Tensor  # share of tokens where the clipped term was the one used
    approxkl: torch.Tensor  # ½ E[(log π_θ − log π_old)²]: how far this update moved from the rollout policy


def clipped_policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                        mask: torch.Tensor, clip_range: float) -> PolicyLoss:
    """PPO's clipped surrogate objective, as a loss to minimise.

    Taking the smaller of the unclipped and clipped objectives (the larger loss) removes any incentive to push
    the ratio beyond 1 ± ε: once a token's ratio is outside the trust region in the direction its advantage
    favours, its gradient is zero.
    """
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    return PolicyLoss(
        loss=masked_mean(torch.max(unclipped, clipped), mask),
        clipfrac=masked_mean((clipped > unclipped).float(), mask),
        approxkl=0.5 * masked_mean(log_ratio ** 2, mask),
    )


def clipped_value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
                       clip_range_value: float) -> tuple[torch.Tensor, torch.Tensor]:
    """½ E[max((V − R)², (V_clipped − R)²)] and the share of tokens where the clipped error was larger."""
    clipped = old_values + torch.clamp(values - old_values, -clip_range_value, clip_range_value)
    unclipped_error, clipped_error = (values - returns) ** 2, (clipped - returns) ** 2
    loss = 0.5 * masked_mean(torch.max(unclipped_error, clipped_error), mask)
    return loss, masked_mean((clipped_error > unclipped_error).float(), mask)


# --- the KL coefficient β ----------------------------------------------------------------------------------


class FixedKLController:
    """β stays where it was set."""

    def __init__(self, kl_coef: float):
        self.value = kl_coef

    def update(self, current_kl: float, n_steps: int) -> None:
        pass


class AdaptiveKLController:
    """Ziegler et al. (2019): move β proportionally towards a target KL, at most ±20 % per horizon.

    ``e = clip(KL / target − 1, −0.2, 0.2)`` and ``β ← β · (1 + e · n_steps / horizon)``, where ``n_steps`` is
    how many completions the KL was measured on. Above the target β grows (the penalty pulls the policy
    back); below it β shrinks (the policy may explore).
    """

    def __init__(self, kl_coef: float, target: float, horizon: int):
        if target <= 0 or horizon <= 0:
            raise ValueError("the adaptive KL controller needs a positive target and horizon")
        self.value, self.target, self.horizon = kl_coef, target, horizon

    def update(self, current_kl: float, n_steps: int) -> None:
        proportional_error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + proportional_error * n_steps / self.horizon
