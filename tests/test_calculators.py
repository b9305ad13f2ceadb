"""Planning calculators and score deltas with the course material's worked numbers."""

import math

import pytest

from backend import calculators as calc
from backend.metrics.deltas import improvement, mean_std, relative_change

B = 1e9


def test_memory_to_load_one_billion_params():
    assert calc.memory_to_load(B, "fp32") == 4e9
    assert calc.memory_to_load(B, "bf16") == 2e9
    assert calc.memory_to_load(B, "fp16") == 2e9
    assert calc.memory_to_load(B, "int8") == 1e9


def test_memory_to_train_one_billion_params():
    assert calc.memory_to_train(B, "fp32") == 24e9  # 4 bytes of weights + 20 of gradients, Adam, activations
    assert calc.memory_to_train(B, "bf16") == 12e9  # "the same degree of savings"
    assert calc.memory_to_train(B, "int8") == 6e9
    est = calc.memory_estimate(B, "fp32")
    assert (est["load_gb"], est["train_gb"]) == (4, 24)
    assert (est["load_bytes_per_param"], est["train_bytes_per_param"]) == (4, 24)


def test_chinchilla_tokens():
    assert calc.compute_optimal_tokens(70e9) == pytest.approx(1.4e12)
    assert calc.chinchilla_series([1e9, 70e9])[1] == {"params": 70e9, "tokens": pytest.approx(1.4e12)}


def test_lora_parameters_course_example():
    p = calc.lora_parameters(512, 64, 8)
    assert (p["full"], p["a"], p["b"], p["lora"]) == (32_768, 512, 4_096, 4_608)
    assert p["reduction"] == pytest.approx(0.859375)
    assert round(p["reduction"] * 100) == 86
    assert calc.lora_parameters(512, 64, 4)["lora"] == 2_304  # the other source's r=4: A 256 + B 2,048
    ranks = calc.lora_rank_series(512, 64, (4, 8, 128))
    assert [r["rank"] for r in ranks] == [4, 8]  # a rank above min(d, k) makes no sense


def test_compute_budget():
    assert calc.PFLOP_S_DAY == 8.64e19
    assert calc.training_flops(1e9, 2e10) == 1.2e20
    assert calc.petaflop_s_days(8.64e19) == 1
    gpt3 = calc.compute_budget(175e9, 300e9)  # GPT-3: 175B parameters, 300B tokens → ≈ 3,700 PF/s-days
    assert gpt3["flops"] == pytest.approx(3.15e23)
    assert 3_600 < gpt3["pf_days"] < 3_700
    one = calc.compute_budget(1e9, 8.64e19 / 6e9)
    assert one["pf_days"] == pytest.approx(1) and one["V100_gpu_days"] == pytest.approx(8)
    assert one["A100_gpu_days"] == pytest.approx(2)
    assert calc.compute_budget(70e9)["tokens"] == pytest.approx(1.4e12)


def test_series_helpers_for_charts():
    points = calc.log_space(1e8, 1e11, 4)
    assert [round(math.log10(p)) for p in points] == [8, 9, 10, 11]
    rows = calc.memory_series([1e9], ("fp32", "int8"))
    assert [(r["precision"], r["load_gb"], r["train_gb"]) for r in rows] == [("fp32", 4, 24), ("int8", 1, 6)]
    assert calc.compute_series([1e9])[0]["tokens"] == 2e10


def test_stored_values_of_pi():
    assert calc.stored_value(math.pi, "fp16") == 3.140625
    assert calc.stored_value(math.pi, "bf16") == 3.140625
    assert calc.stored_value(math.pi, "int8") == 3
    assert calc.stored_value(math.pi, "fp32") == pytest.approx(math.pi, abs=1e-7)
    assert calc.stored_value(1000.0, "int8") == 127
    assert calc.stored_value(1e6, "fp16") == math.inf and calc.stored_value(-1e40, "bf16") == -math.inf
    assert math.isnan(calc.stored_value(math.nan, "int8"))
    assert [d["bytes"] for d in calc.DTYPES] == [4, 2, 2, 1]


@pytest.mark.parametrize(("call", "match"), [
    (lambda: calc.memory_to_load(0), "params"),
    (lambda: calc.memory_to_load(1e9, "fp8"), "precision"),
    (lambda: calc.lora_parameters(512, 64, 0), "r must be"),
    (lambda: calc.training_flops(1e9, -1), "tokens"),
    (lambda: calc.stored_value(1.0, "int4"), "dtype"),
])
def test_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_score_deltas_course_numbers():
    # ROUGE-1 on dialogsum: base 0.2334, full fine-tuning 0.4216 (+80.6%), LoRA 0.4081 (−3.2% vs full).
    assert relative_change(0.2334, 0.4216) == pytest.approx(0.806, abs=5e-4)
    assert relative_change(0.4216, 0.4081) == pytest.approx(-0.032, abs=5e-4)
    # Toxicity before/after RLHF: mean 15.93% and std 8.87% better.
    assert improvement(0.032297799189109355, 0.0271528000858697) == pytest.approx(0.1593, abs=5e-5)
    assert improvement(0.03010236943945737, 0.02743170674039297) == pytest.approx(0.0887, abs=5e-5)
    assert relative_change(0, 1) is None and improvement(0, 1) is None
    assert mean_std([1, 2, 3, 4]) == (2.5, pytest.approx(1.118033988749895))


# --- one fine-tuning job's peak memory ----------------------------------------------------------------------------

def test_finetune_memory_parts_follow_the_byte_counts():
    full = calc.finetune_memory(1e9, 0, 2048, 16, 32_000, weights="fp32", full=True, batch_size=1, seq_len=512,
                                gpu=False)
    assert full["weights_gb"] == 0 and full["trainable_state_gb"] == pytest.approx(16.0)  # 4 copies × 4 bytes
    assert full["activations_gb"] == pytest.approx(512 * 16 * 68 * 2048 / 1e9)  # 68·hidden bytes in fp32
    assert full["logits_gb"] == pytest.approx(2 * 512 * 32_000 * 4 / 1e9) and full["runtime_gb"] == 0
    assert full["total_gb"] == pytest.approx(sum(v for k, v in full.items() if k != "total_gb"))
    lora = calc.finetune_memory(1e9, 4e6, 2048, 16, 32_000, weights="bf16", batch_size=1, seq_len=512)
    assert lora["weights_gb"] == pytest.approx(2.0) and lora["trainable_state_gb"] == pytest.approx(4e6 * 16 / 1e9)
    qlora = calc.finetune_memory(1e9, 4e6, 2048, 16, 32_000, weights="4bit", batch_size=1, seq_len=512)
    assert qlora["weights_gb"] == pytest.approx(0.515625)  # NF4 + double-quantized scales
    assert qlora["total_gb"] < lora["total_gb"] < calc.finetune_memory(
        1e9, 4e6, 2048, 16, 32_000, weights="bf16", full=True, batch_size=1, seq_len=512)["total_gb"]


def test_checkpointing_and_batch_move_the_activations():
    args = (7e9, 4e6, 4096, 32, 32_000)
    plain = calc.finetune_memory(*args, weights="4bit", batch_size=4, seq_len=1024)
    kept = calc.finetune_memory(*args, weights="4bit", batch_size=4, seq_len=1024, checkpointing=True)
    assert kept["activations_gb"] < plain["activations_gb"] / 10  # 32 layers: 2·h each + one layer's 34·h
    double = calc.finetune_memory(*args, weights="4bit", batch_size=8, seq_len=1024)
    assert double["activations_gb"] == pytest.approx(2 * plain["activations_gb"])
    assert double["weights_gb"] == plain["weights_gb"]


def test_finetune_memory_refuses_what_cannot_train():
    with pytest.raises(ValueError, match="full fine-tuning cannot train 8/4-bit weights"):
        calc.finetune_memory(1e9, 0, 2048, 16, 32_000, weights="4bit", full=True)
    with pytest.raises(ValueError, match="weights must be one of"):
        calc.finetune_memory(1e9, 0, 2048, 16, 32_000, weights="int3")
    with pytest.raises(ValueError, match="batch_size must be positive"):
        calc.finetune_memory(1e9, 0, 2048, 16, 32_000, batch_size=0)


def test_model_shape_of_the_presets_and_between_them():
    assert calc.model_shape(135e6) == (576, 30, 49_152)
    assert calc.model_shape(7e9) == (4096, 32, 32_000)
    hidden, layers, _ = calc.model_shape(2e9)  # nearest preset 1B (log scale), hidden × √2
    assert layers == 16 and hidden == round(2048 * 2 ** 0.5 / 64) * 64
    assert calc.lora_trainable(576, 30, 16) == 30 * 4 * 16 * 2 * 576
