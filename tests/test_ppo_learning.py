"""PPO learns on the tiny random Llama when the reward is a known function of its output.

The reward is the share of completion tokens whose id is even: about 0.5 for the random model. PPO must raise
it clearly within 30 steps while the KL to the reference stays bounded; with a huge KL coefficient the same run
must stay near the reference. A LoRA policy's reference is the same backbone with adapters off: at the start
the two are identical (KL exactly 0) and the reference never moves.
"""

from statistics import mean

import pytest
import torch

from jobs.specs import PPOArgs, ppo_decoding

PROMPTS = [f"Say something about cake number {i}" for i in range(32)]


def even_share(prompts, completions, ids):
    return [sum(t % 2 == 0 for t in row) / max(1, len(row)) for row in ids]


def make_trainer(model_dir, *, peft: str, kl_coef: float, learning_rate: float, steps: int = 30):
    import copy

    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from backend.models.loader import load_tokenizer
    from jobs.rl.trainer import PolicyWithValueHead, PPOTrainer

    torch.manual_seed(0)
    tokenizer = load_tokenizer(str(model_dir))
    lm = AutoModelForCausalLM.from_pretrained(model_dir)
    reference = None
    if peft == "lora":
        lm = get_peft_model(lm, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, task_type="CAUSAL_LM",
                                           target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    else:
        reference = copy.deepcopy(lm).requires_grad_(False).eval()
    args = PPOArgs(max_steps=steps, batch_size=16, mini_batch_size=8, ppo_epochs=4, learning_rate=learning_rate,
                   kl_coef=kl_coef, adaptive_kl=False, seed=0)
    decoding = ppo_decoding().model_copy(update={"max_new_tokens": 8})
    return PPOTrainer(PolicyWithValueHead(lm), tokenizer, even_share, args, decoding, reference=reference)


def train(trainer):
    history: list[dict] = []
    summary = trainer.train(PROMPTS, log=lambda step, metrics, samples: history.append(metrics) if step else None,
                            eval_prompts=PROMPTS[:16])
    return history, summary


def test_reward_rises_with_kl_bounded(tiny_model_dir, one_torch_thread):
    trainer = make_trainer(tiny_model_dir, peft="none", kl_coef=0.05, learning_rate=1e-3)
    before = [p.detach().clone() for p in trainer.policy.lm.parameters()]
    history, summary = train(trainer)
    scores = [m["objective/scores"] for m in history]
    assert len(history) == 30 and summary["stopped"] == "max_steps"
    assert mean(scores[:5]) == pytest.approx(0.5, abs=0.08)  # the random model: about half the ids are even
    assert mean(scores[-5:]) - mean(scores[:5]) > 0.1, scores
    first, last = summary["first_eval"], summary["last_eval"]
    assert last["eval/reward"] - first["eval/reward"] > 0.08, (first, last)  # same held-out prompts and draws
    kls = [m["objective/kl"] for m in history]
    assert 0.3 < mean(kls[-10:]) < 5.0, kls  # it moved, but stayed within a few nats of the reference
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.policy.lm.parameters(), strict=True))
    for key in ("objective/entropy", "objective/non_score_reward", "objective/rlhf_reward", "policy/approxkl",
                "policy/clipfrac", "policy/entropy", "val/loss", "val/clipfrac", "loss/policy", "kl_coef"):
        assert all(key in m for m in history), key
    assert all(m["kl_coef"] == 0.05 for m in history)  # fixed β
    assert history[-1]["objective/rlhf_reward"] == pytest.approx(
        history[-1]["objective/scores"] + history[-1]["objective/non_score_reward"])


def test_huge_kl_coefficient_keeps_policy_near_reference(tiny_model_dir, one_torch_thread):
    trainer = make_trainer(tiny_model_dir, peft="none", kl_coef=5.0, learning_rate=1e-3)
    history, summary = train(trainer)
    scores = [m["objective/scores"] for m in history]
    kls = [m["objective/kl"] for m in history]
    assert abs(summary["last_eval"]["eval/reward"] - summary["first_eval"]["eval/reward"]) < 0.06
    assert abs(mean(scores[-5:]) - mean(scores[:5])) < 0.08, scores
    assert mean(kls[-10:]) < 0.6, kls


def test_lora_reference_is_the_backbone_with_adapters_off(tiny_model_dir, one_torch_thread):
    from transformers import AutoModelForCausalLM

    trainer = make_trainer(tiny_model_dir, peft="lora", kl_coef=0.05, learning_rate=2e-3, steps=3)
    history, _ = train(trainer)
    assert history[0]["objective/kl"] == 0.0  # LoRA's B starts at zero: policy and reference are the same model
    assert history[-1]["objective/kl"] != 0.0
    roll = trainer.rollout(PROMPTS[:4])
    width = roll.mask.shape[1]
    reference = trainer.reference_logprobs(roll.input_ids, roll.attention_mask, width)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    trainer.reference = base  # score the same tokens with an untouched copy of the starting model
    fresh = trainer.reference_logprobs(roll.input_ids, roll.attention_mask, width)
    mask = roll.mask.bool()
    torch.testing.assert_close(reference[mask], fresh[mask], atol=1e-5, rtol=0)
    policy = trainer._logprobs_values(roll.input_ids, roll.attention_mask, width)[1]
    assert not torch.allclose(policy[mask], fresh[mask], atol=1e-4)  # while the policy itself moved
