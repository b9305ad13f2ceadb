"""PPO's math against hand-computed numbers: GAE and returns, the clipped objective on constructed ratios, the
clipped value loss, KL estimates against the exact KL, whitening, and the KL controllers."""

import math

import pytest
import torch

from jobs.rl.ppo import (
    AdaptiveKLController,
    FixedKLController,
    clipped_policy_loss,
    clipped_value_loss,
    entropy_from_logits,
    gae_advantages,
    kl_per_token,
    last_token_index,
    masked_whiten,
    shaped_rewards,
)


def exact_kl(logits: torch.Tensor, ref_logits: torch.Tensor) -> torch.Tensor:
    """Exact KL(π ‖ π_ref) = Σ_x π(x) (log π(x) − log π_ref(x)) over the last dimension (the vocabulary)."""
    logp, ref_logp = torch.log_softmax(logits, -1), torch.log_softmax(ref_logits, -1)
    return (logp.exp() * (logp - ref_logp)).sum(-1)


def assert_table(actual: torch.Tensor, expected: list[list[float]]) -> None:
    torch.testing.assert_close(actual, torch.tensor(expected), atol=1e-6, rtol=0)


def test_gae_and_returns_match_hand_computation():
    # Row 0: three tokens, score 1 at the end. γ = 0.9, λ = 0.8, so γλ = 0.72:
    #   δ2 = 1 + 0.9·0 − 0.3 = 0.7                 A2 = 0.7
    #   δ1 = 0 + 0.9·0.3 − 0.4 = −0.13             A1 = −0.13 + 0.72·0.7 = 0.374
    #   δ0 = 0 + 0.9·0.4 − 0.5 = −0.14             A0 = −0.14 + 0.72·0.374 = 0.12928
    # Row 1: the third position is padding (its reward and value must be ignored, the state after token 1 is
    # terminal):  δ1 = 2 − 0.2 = 1.8, A1 = 1.8;  δ0 = 0.9·0.2 − 0.1 = 0.08, A0 = 0.08 + 0.72·1.8 = 1.376
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 2.0, 99.0]])
    values = torch.tensor([[0.5, 0.4, 0.3], [0.1, 0.2, 99.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    advantages, returns = gae_advantages(rewards, values, mask, gamma=0.9, lam=0.8)
    assert_table(advantages, [[0.12928, 0.374, 0.7], [1.376, 1.8, 0.0]])
    assert_table(returns, [[0.62928, 0.774, 1.0], [1.476, 2.0, 0.0]])


def test_gae_with_gamma_and_lambda_one_is_monte_carlo_return_minus_value():
    rewards = torch.tensor([[0.5, -0.25, 2.0, 0.0]])
    values = torch.tensor([[1.0, 0.3, -0.7, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    advantages, returns = gae_advantages(rewards, values, mask, gamma=1.0, lam=1.0)
    future = [2.25, 1.75, 2.0, 0.0]  # sum of this and later rewards
    assert returns.tolist()[0] == pytest.approx(future)
    assert advantages.tolist()[0] == pytest.approx([2.25 - 1.0, 1.75 - 0.3, 2.0 + 0.7, 0.0])


def test_lambda_zero_is_one_step_td_error():
    rewards = torch.tensor([[0.1, 0.2, 0.3]])
    values = torch.tensor([[1.0, 2.0, 3.0]])
    mask = torch.ones(1, 3)
    advantages, _ = gae_advantages(rewards, values, mask, gamma=0.5, lam=0.0)
    assert advantages.tolist()[0] == pytest.approx([0.1 + 0.5 * 2 - 1, 0.2 + 0.5 * 3 - 2, 0.3 - 3])


def test_shaped_rewards_pay_score_at_last_token_and_kl_everywhere():
    kl = torch.tensor([[0.5, 1.0, 2.0, 7.0], [0.25, -0.5, 9.0, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    assert last_token_index(mask).tolist() == [2, 1]
    rewards = shaped_rewards(torch.tensor([3.0, -1.0]), kl, mask, kl_coef=0.1)
    assert_table(rewards, [[-0.05, -0.1, -0.2 + 3.0, 0.0], [-0.025, 0.05 - 1.0, 0.0, 0.0]])


def test_clipped_objective_on_constructed_ratios():
    # ε = 0.2. Per token, the objective is min(r·A, clip(r, 0.8, 1.2)·A):
    #   A=+1, r=1.5 → min(1.5, 1.2) = 1.2 (clipped: no incentive to go further)
    #   A=+1, r=0.5 → min(0.5, 0.8) = 0.5 (unclipped: the token may still be promoted)
    #   A=−1, r=1.5 → min(−1.5, −1.2) = −1.5 (unclipped: the bad token is pulled back)
    #   A=−1, r=0.5 → min(−0.5, −0.8) = −0.8 (clipped)
    # loss = −mean = −(1.2 + 0.5 − 1.5 − 0.8) / 4 = 0.15; clipped on 2 of 4 tokens.
    old = torch.zeros(1, 4)
    new = torch.log(torch.tensor([[1.5, 0.5, 1.5, 0.5]])).requires_grad_()
    advantages = torch.tensor([[1.0, 1.0, -1.0, -1.0]])
    result = clipped_policy_loss(new, old, advantages, torch.ones(1, 4), clip_range=0.2)
    assert result.loss.item() == pytest.approx(0.15)
    assert result.clipfrac.item() == pytest.approx(0.5)
    logs = [math.log(1.5), math.log(0.5)] * 2
    assert result.approxkl.item() == pytest.approx(0.5 * sum(x * x for x in logs) / 4)
    result.loss.backward()
    grad = new.grad[0].tolist()
    # d/dlogπ of −A·r/4 = −A·r/4 on unclipped tokens, 0 where the clip is active
    assert grad == pytest.approx([0.0, -0.5 / 4, 1.5 / 4, 0.0])


def test_clipped_objective_ignores_masked_tokens_and_is_plain_pg_at_ratio_one():
    logprobs = torch.tensor([[-1.0, -2.0, -3.0]])
    advantages = torch.tensor([[2.0, -1.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    result = clipped_policy_loss(logprobs, logprobs.clone(), advantages, mask, clip_range=0.2)
    assert result.loss.item() == pytest.approx(-(2.0 - 1.0) / 2)
    assert result.clipfrac.item() == 0.0 and result.approxkl.item() == 0.0


def test_clipped_value_loss():
    # returns 1.0; old value 0.0; new values 0.5 and 2.0, ε_v = 0.2:
    #   v=0.5 → clipped 0.2: errors 0.25 vs 0.64 → 0.64 (clipped larger)
    #   v=2.0 → clipped 0.2: errors 1.0 vs 0.64 → 1.0
    values = torch.tensor([[0.5, 2.0]])
    loss, clipfrac = clipped_value_loss(values, torch.zeros(1, 2), torch.ones(1, 2), torch.ones(1, 2), 0.2)
    assert loss.item() == pytest.approx(0.5 * (0.64 + 1.0) / 2)
    assert clipfrac.item() == pytest.approx(0.5)


def test_kl_estimates_converge_to_exact_kl_on_small_distributions():
    # exact: p = [0.5, 0.5], q = [0.9, 0.1] → KL(p‖q) = 0.5·ln(0.5/0.9) + 0.5·ln(0.5/0.1) = 0.5108
    p, q = torch.tensor([0.5, 0.5]), torch.tensor([0.9, 0.1])
    assert exact_kl(p.log(), q.log()).item() == pytest.approx(0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(5), abs=1e-6)
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        logits, ref_logits = torch.randn(5, generator=generator) * 2, torch.randn(5, generator=generator) * 2
        exact = exact_kl(logits, ref_logits).item()
        logp, ref_logp = torch.log_softmax(logits, -1), torch.log_softmax(ref_logits, -1)
        # the expectation under π of either estimator is the exact KL (enumerated, no sampling noise) ...
        for estimator in ("k1", "k3"):
            per_token = kl_per_token(logp, ref_logp, estimator)
            assert (logp.exp() * per_token).sum().item() == pytest.approx(exact, abs=1e-5)
        # ... and the sample mean over tokens drawn from π converges to it
        tokens = torch.multinomial(logp.exp(), 200_000, replacement=True, generator=generator)
        for estimator in ("k1", "k3"):
            estimate = kl_per_token(logp[tokens], ref_logp[tokens], estimator).mean().item()
            assert estimate == pytest.approx(exact, abs=0.03 + 0.03 * exact)
        assert (kl_per_token(logp[tokens], ref_logp[tokens], "k3") >= 0).all()  # k3 is never negative
    with pytest.raises(ValueError):
        kl_per_token(logp, ref_logp, "k9")


def test_entropy_from_logits():
    uniform = torch.zeros(4)
    assert entropy_from_logits(uniform).item() == pytest.approx(math.log(4))
    p = torch.tensor([0.7, 0.2, 0.1])
    assert entropy_from_logits(p.log()).item() == pytest.approx(-(p * p.log()).sum().item())


def test_whitening():
    values = torch.tensor([[1.0, 2.0, 3.0, 50.0], [4.0, 5.0, 6.0, 50.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 0.0]])
    white = masked_whiten(values, mask)
    kept = white[mask.bool()]
    assert kept.mean().item() == pytest.approx(0.0, abs=1e-6)
    assert kept.std().item() == pytest.approx(1.0, abs=1e-4)  # unbiased std, as the variance
    assert white[0, 3].item() == 0.0
    scaled = masked_whiten(values, mask, shift_mean=False)[mask.bool()]
    assert scaled.mean().item() == pytest.approx(3.5, abs=1e-5)  # the mean stays: rewards keep their sign
    assert scaled.std().item() == pytest.approx(1.0, abs=1e-4)


def test_adaptive_kl_controller_moves_towards_target():
    above = AdaptiveKLController(0.1, target=6.0, horizon=100)
    above.update(9.0, n_steps=10)  # error = 9/6 − 1 = 0.5, clipped to 0.2 → β · (1 + 0.2·10/100)
    assert above.value == pytest.approx(0.1 * 1.02)
    below = AdaptiveKLController(0.1, target=6.0, horizon=100)
    below.update(4.5, n_steps=10)  # error = −0.25 → −0.2
    assert below.value == pytest.approx(0.1 * 0.98)
    near = AdaptiveKLController(0.1, target=6.0, horizon=100)
    near.update(6.6, n_steps=50)  # error = 0.1 (inside the clip) → β · 1.05
    assert near.value == pytest.approx(0.105)
    runaway = AdaptiveKLController(0.1, target=1.0, horizon=10)
    for _ in range(20):
        runaway.update(100.0, n_steps=10)  # each update at most ×1.2
    assert runaway.value == pytest.approx(0.1 * 1.2 ** 20)
    fixed = FixedKLController(0.3)
    fixed.update(100.0, n_steps=10)
    assert fixed.value == 0.3
    with pytest.raises(ValueError):
        AdaptiveKLController(0.1, target=0.0, horizon=10)
