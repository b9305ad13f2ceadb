"""Planning calculators: memory, compute-optimal data, LoRA size and compute budget (pure functions).

The rules of thumb are the course material's; where its sources disagree the choice is stated here.

Memory
    Loading needs the weights: 4 bytes per parameter in fp32, 2 in fp16/bf16, 1 in int8 (1B parameters:
    4 GB, 2 GB, 1 GB). Training adds about 20 bytes per parameter in fp32 (Adam's two states 8, gradients 4,
    activations and temporary buffers up to 8): 4 + 20 = 24 bytes per parameter, so 1B parameters need
    ~24 GB to train in fp32. One source also says "approximately 80 GB" for the same model; that contradicts
    its own 24 bytes/parameter and is not used. Lower precision is taken to give "the same degree of savings"
    for training (bf16: 12 GB, int8: 6 GB for 1B). GB here are decimal (10^9 bytes).
Compute-optimal data (Chinchilla, Hoffmann et al. 2022)
    About 20 training tokens per parameter: 70B parameters → 1.4T tokens.
LoRA
    A d×k weight gets B (d×r) and A (r×k): r·(d+k) trainable parameters instead of d·k. 512×64 with r=8:
    A 512 + B 4,096 = 4,608 instead of 32,768, 86% fewer (85.94%).
Compute
    Training FLOPs ≈ 6·N·D (N parameters, D tokens: forward 2·N·D plus backward 4·N·D). One petaFLOP/s-day
    is 10^15 FLOP/s for a day = 8.64×10^19 FLOPs, about 8 NVIDIA V100 or 2 A100 running flat out for a day.
"""

import math
import struct
from typing import Any

GB = 1e9
BYTES_PER_PARAM: dict[str, int] = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1}
TRAINING_EXTRA_BYTES_FP32 = 20  # Adam states 8 + gradients 4 + activations/temporaries 8, per parameter
TOKENS_PER_PARAM = 20
PFLOP_S_DAY = 1e15 * 86_400  # 8.64e19 FLOPs
GPUS_PER_PFLOP_S_DAY: dict[str, float] = {"V100": 8, "A100": 2}
# Reference points from the course material (training compute in petaFLOP/s-days).
REFERENCE_COMPUTE: dict[str, float] = {"T5 XL (3B)": 100, "GPT-3 (175B)": 3_700}


def _precision(precision: str) -> int:
    key = precision.lower().replace("float32", "fp32").replace("bfloat16", "bf16").replace("float16", "fp16")
    if key not in BYTES_PER_PARAM:
        raise ValueError(f"precision must be one of {', '.join(BYTES_PER_PARAM)}, not {precision!r}")
    return BYTES_PER_PARAM[key]


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be positive, not {value!r}")


def memory_to_load(params: float, precision: str = "fp32") -> float:
    """Bytes to hold the weights: 4/2/1 bytes per parameter for fp32/bf16/int8 (1B fp32 → 4e9)."""
    _positive("params", params)
    return params * _precision(precision)


def memory_to_train(params: float, precision: str = "fp32") -> float:
    """Bytes to train with Adam: 24 bytes per parameter in fp32 (weights 4 + 20), scaled by the precision
    (1B: fp32 24e9, bf16 12e9, int8 6e9)."""
    _positive("params", params)
    return params * (BYTES_PER_PARAM["fp32"] + TRAINING_EXTRA_BYTES_FP32) * _precision(precision) / 4


def memory_estimate(params: float, precision: str = "fp32") -> dict[str, float]:
    """Load and train memory in GB, with the bytes per parameter behind them."""
    load, train = memory_to_load(params, precision), memory_to_train(params, precision)
    return {"params": params, "precision": precision, "load_gb": load / GB, "train_gb": train / GB,
            "load_bytes_per_param": load / params, "train_bytes_per_param": train / params}


def compute_optimal_tokens(params: float, tokens_per_param: float = TOKENS_PER_PARAM) -> float:
    """Chinchilla's compute-optimal training tokens: about 20 per parameter (70B → 1.4e12)."""
    _positive("params", params)
    return params * tokens_per_param


def lora_parameters(d: int, k: int, r: int) -> dict[str, float]:
    """Trainable parameters of LoRA on one d×k weight: B is d×r, A is r×k.

    Returns ``{"full", "a", "b", "lora", "reduction"}``; 512×64 with r=8 gives a=512, b=4,096,
    lora=4,608 vs full=32,768, reduction 0.859 (86% fewer).
    """
    for name, value in (("d", d), ("k", k), ("r", r)):
        if not (isinstance(value, int) and value >= 1):
            raise ValueError(f"{name} must be a whole number of at least 1, not {value!r}")
    full, a, b = d * k, r * k, d * r
    return {"full": full, "a": a, "b": b, "lora": a + b, "reduction": 1 - (a + b) / full}


def training_flops(params: float, tokens: float) -> float:
    """Training compute ≈ 6·N·D FLOPs."""
    _positive("params", params)
    _positive("tokens", tokens)
    return 6 * params * tokens


def petaflop_s_days(flops: float) -> float:
    """FLOPs in petaFLOP/s-days (1 PF/s-day = 8.64e19 FLOPs)."""
    return flops / PFLOP_S_DAY


def compute_budget(params: float, tokens: float | None = None) -> dict[str, float]:
    """Training FLOPs and petaFLOP/s-days for N parameters on D tokens (Chinchilla-optimal D when omitted),
    with the GPU-days that budget means at full efficiency."""
    tokens = compute_optimal_tokens(params) if tokens is None else tokens
    flops = training_flops(params, tokens)
    days = petaflop_s_days(flops)
    return {"params": params, "tokens": tokens, "flops": flops, "pf_days": days,
            **{f"{gpu}_gpu_days": days * n for gpu, n in GPUS_PER_PFLOP_S_DAY.items()}}


# --- numeric types ------------------------------------------------------------------------------------------

DTYPES: list[dict[str, Any]] = [
    {"dtype": "fp32", "bits": 32, "sign": 1, "exponent": 8, "fraction": 23, "bytes": 4, "range": "±3.4e38"},
    {"dtype": "fp16", "bits": 16, "sign": 1, "exponent": 5, "fraction": 10, "bytes": 2, "range": "±65,504"},
    {"dtype": "bf16", "bits": 16, "sign": 1, "exponent": 8, "fraction": 7, "bytes": 2, "range": "±3.4e38 (fp32's)"},
    {"dtype": "int8", "bits": 8, "sign": 1, "exponent": 0, "fraction": 7, "bytes": 1, "range": "-128 to 127"},
]


def stored_value(value: float, dtype: str) -> float:
    """What a number becomes when stored in a type (π: fp32 3.1415927, fp16 3.140625, bf16 3.140625, int8 3).

    int8 is shown as plain rounding (the scale factors of real quantization are left out). A value beyond a
    type's range becomes ±inf, as it does on a GPU; NaN stays NaN (int8 has none: NaN).
    """
    if math.isnan(value):
        return math.nan
    try:
        return _stored(value, dtype)
    except OverflowError:
        return math.copysign(math.inf, value)


def _stored(value: float, dtype: str) -> float:
    if dtype == "fp32":
        return struct.unpack("<f", struct.pack("<f", value))[0]
    if dtype == "fp16":
        return struct.unpack("<e", struct.pack("<e", value))[0]
    if dtype == "bf16":  # the top 16 bits of the fp32 pattern, rounded to nearest even
        bits = struct.unpack("<I", struct.pack("<f", value))[0]
        bits = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
        return struct.unpack("<f", struct.pack("<I", bits & 0xFFFFFFFF))[0]
    if dtype == "int8":
        return float(max(-128, min(127, round(value))))
    raise ValueError(f"dtype must be one of fp32, fp16, bf16, int8, not {dtype!r}")


# --- one fine-tuning job's peak memory --------------------------------------------------------------------------
# The rule above (24 bytes per parameter) is for full fine-tuning of every weight in fp32. A job's estimate needs
# the method (full, LoRA, QLoRA), the weights' format, the batch and the sequence length:
#   frozen weights   params × bytes of their format (fp32 4, bf16 2, 8bit 1, 4bit NF4 0.5 + 1/64 for the
#                    double-quantized block scales: 0.516);
#   trainable state  trainable × 4 copies (weights, gradients, Adam's two moments) in the trainable dtype
#                    (LoRA adapters stay fp32: 16 bytes; full bf16: 8 bytes; full fp32: 16 bytes);
#   activations      per token and layer ~34·hidden bytes in 16-bit (Korthikanti et al. 2022, no attention-score
#                    term with fused attention; 68·hidden in fp32); with gradient checkpointing only each layer's
#                    input (2·hidden, 4 in fp32) is kept, plus one layer recomputed at a time;
#   logits           batch × sequence × vocabulary × 4 bytes, twice (the fp32 logits and their gradient);
#   runtime          ~0.5 GB for the CUDA context and the allocator's slack (0 on a CPU).
# An estimate within ~20 %, not a measurement: fragmentation and framework buffers vary.

WEIGHT_BYTES: dict[str, float] = {"fp32": 4, "bf16": 2, "fp16": 2, "8bit": 1, "4bit": 0.5 + 1 / 64}
CUDA_RUNTIME_GB = 0.5
# Rough shapes of the size presets (hidden size, layers, vocabulary): SmolLM2-135M, Llama-3.2-1B, Llama-2-7B/13B,
# Llama-2-70B, GPT-3.
REFERENCE_SHAPES: dict[float, tuple[int, int, int]] = {
    135e6: (576, 30, 49_152), 1e9: (2048, 16, 128_256), 7e9: (4096, 32, 32_000), 13e9: (5120, 40, 32_000),
    70e9: (8192, 80, 32_000), 175e9: (12288, 96, 50_257)}


def model_shape(params: float) -> tuple[int, int, int]:
    """(hidden, layers, vocabulary) of a model of ``params`` parameters: the nearest preset on a log scale, its
    hidden size scaled by √(params / preset) (parameters grow with hidden² at a fixed depth)."""
    _positive("params", params)
    near = min(REFERENCE_SHAPES, key=lambda size: abs(math.log(size / params)))
    hidden, layers, vocab = REFERENCE_SHAPES[near]
    return max(64, round(hidden * math.sqrt(params / near) / 64) * 64), layers, vocab


def lora_trainable(hidden: int, layers: int, r: int, targets: int = 4) -> int:
    """LoRA parameters on ``targets`` hidden×hidden projections per layer (q, k, v, o): r·2·hidden each."""
    return layers * targets * r * 2 * hidden


def finetune_memory(params: float, trainable: float, hidden: int, layers: int, vocab: int, *, weights: str = "bf16",
                    full: bool = False, batch_size: int = 1, seq_len: int = 512, checkpointing: bool = False,
                    gpu: bool = True) -> dict[str, float]:
    """Peak memory of one training process in GB, by part (see the notes above); ``total_gb`` is their sum.

    ``weights``: the frozen weights' format (fp32, bf16, 8bit, 4bit); ``full``: every weight trains (in the
    weights' dtype) rather than ``trainable`` adapter parameters in fp32."""
    for name, value in (("params", params), ("hidden", hidden), ("layers", layers), ("vocab", vocab),
                        ("batch_size", batch_size), ("seq_len", seq_len)):
        _positive(name, value)
    if weights not in WEIGHT_BYTES:
        raise ValueError(f"weights must be one of {', '.join(WEIGHT_BYTES)}, not {weights!r}")
    if full and weights in ("8bit", "4bit"):
        raise ValueError("full fine-tuning cannot train 8/4-bit weights: quantized bases train LoRA adapters (QLoRA)")
    compute_bytes = 4 if weights == "fp32" else 2  # quantized weights compute in bf16
    trained = params if full else trainable
    frozen = 0 if full else params
    tokens = batch_size * seq_len
    per_token_layer = 2 * compute_bytes / 2 * hidden if checkpointing else 34 * compute_bytes / 2 * hidden
    activations = tokens * layers * per_token_layer
    if checkpointing:  # the layer being recomputed holds its full activations for a moment
        activations += tokens * 34 * compute_bytes / 2 * hidden
    parts = {
        "weights_gb": frozen * WEIGHT_BYTES[weights] / GB,
        "trainable_state_gb": trained * 4 * (WEIGHT_BYTES[weights] if full else 4) / GB,
        "activations_gb": activations / GB,
        "logits_gb": 2 * tokens * vocab * 4 / GB,
        "runtime_gb": CUDA_RUNTIME_GB if gpu else 0.0,
    }
    return {**parts, "total_gb": sum(parts.values())}


# --- series for charts ----------------------------------------------------------------------------------------

def log_space(start: float, stop: float, points: int = 20) -> list[float]:
    """``points`` values evenly spaced on a log scale from start to stop (both included)."""
    _positive("start", start)
    _positive("stop", stop)
    if points < 2:
        return [start]
    step = (math.log10(stop) - math.log10(start)) / (points - 1)
    return [10 ** (math.log10(start) + i * step) for i in range(points)]


def memory_series(params: list[float], precisions: tuple[str, ...] = ("fp32", "bf16", "int8")) -> list[dict]:
    """One row per (model size, precision): load and train GB."""
    return [memory_estimate(p, precision) for p in params for precision in precisions]


def chinchilla_series(params: list[float]) -> list[dict]:
    return [{"params": p, "tokens": compute_optimal_tokens(p)} for p in params]


def lora_rank_series(d: int, k: int, ranks: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)) -> list[dict]:
    return [{"rank": r, **lora_parameters(d, k, r)} for r in ranks if r <= min(d, k)]


def compute_series(params: list[float], tokens_per_param: float = TOKENS_PER_PARAM) -> list[dict]:
    return [compute_budget(p, p * tokens_per_param) for p in params]
