"""GPU proof: LoRA and QLoRA SFT, one PPO step and generation, timed on random-weight models; prints one JSON object.

Models (random weights: no hub, no network; speed and memory do not depend on the weights' values):

- ``smollm2-135m``: the embedded default model's shape (SmolLM2-135M-Instruct as ``backend/models/bootstrap.py``
  converts its GGUF: 30 layers, hidden 576, 9 heads / 3 KV heads, vocabulary 49 152);
- ``llama-1b``: Llama 3.2 1B's shape (16 layers, hidden 2048, 32 heads / 8 KV heads, MLP 8192, vocabulary 128 256).

Measurements, each on a freshly built model, so a peak memory is that measurement's own (CUDA's allocator peak,
the model included; on CPU only the process's peak RSS exists, which includes every earlier measurement):

- ``lora_sft``: LoRA training steps (the studio's default ``LoraArgs``: r 16 on the attention projections) on random
  token ids, bf16 weights under bf16 autocast as the SFT runner trains on a GPU; tokens/s = batch × length / median
  step time.
- ``qlora_sft``: the same on a 4-bit base (bitsandbytes NF4, double quantization, bf16 compute; peft's
  ``prepare_model_for_kbit_training`` without gradient checkpointing, like ``lora_sft``). CUDA only.
- ``ppo_step``: steps of the studio's own PPO trainer (``jobs.rl.trainer.PPOTrainer``, LoRA policy, reference = the
  adapters switched off) with the ``ppo-detox-cpu`` preset's settings: 16 rollouts of up to 32 sampled tokens,
  mini-batch 8, 4 PPO epochs. The reward is the share of even token ids (no reward model), so the time is PPO's own.
- ``generation_batch_1`` / ``generation_batch_16``: greedy ``generate`` forced to exactly N new tokens.

Needs torch, transformers and peft, which a bare CUDA image has; the PPO step also needs the studio's own packages
(pydantic, pydantic-settings, python-dotenv, sqlalchemy) and QLoRA bitsandbytes. A measurement that cannot run here
is ``{"skipped": reason}`` (with a ``hint`` naming the wheels to carry where one is missing); one that fails is ``{"error": message}``, and the
others still run. Progress goes to stderr; ``--out`` also writes the JSON after every measurement, so a run cut
short keeps what it measured.

    python benchmarks/gpu_check.py --out gpu_check.json        # CUDA when available, else CPU
    python benchmarks/gpu_check.py --smoke                     # tiny model on CPU, 2 steps each (tests run this)
"""

import argparse
import gc
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# The embedded default's config.json, shape only (tests/test_gpu_check.py checks these against a bootstrapped copy).
SMOLLM2_135M = {"vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
                "num_attention_heads": 9, "num_key_value_heads": 3, "head_dim": 64, "max_position_embeddings": 8192,
                "tie_word_embeddings": True}
LLAMA_1B = {"vocab_size": 128256, "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
            "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64, "max_position_embeddings": 8192,
            "tie_word_embeddings": True}
TINY = {"vocab_size": 512, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "max_position_embeddings": 1024,
        "tie_word_embeddings": True}
MODELS = {"smollm2-135m": SMOLLM2_135M, "llama-1b": LLAMA_1B}
PPO_PRESET = "ppo-detox-cpu"
# Token ids of the stand-in tokenizer (and of every model config here): the ChatML specials first.
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "user", "assistant", "system"]
UNK_ID, BOS_ID, EOS_ID = 0, 1, 2
CHATML = ("{% for message in messages %}{{'<|im_start|> ' + message['role'] + ' ' + message['content'] + "
          "' <|im_end|> '}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|> assistant ' }}{% endif %}")
# The studio's defaults for LoRA (jobs.specs.LoraArgs; tests/test_gpu_check.py keeps the two equal). A copy, so the
# SFT and generation measurements need only torch, transformers and peft, which a bare CUDA image has.
LORA = {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}
CARRY_HINT = ("Carry the missing wheels: README, 'GPU check', has the `pip download` command for the device's Python "
              "(3.12, x86-64); there, `pip install --no-index --find-links .wheels {packages}` before this script.")
BNB_HINT = CARRY_HINT.format(packages="bitsandbytes") + (" The bitsandbytes wheel (0.50.2, manylinux_2_24_x86_64) "
                                                          "is 41 MiB: it fits the 64 MiB a device run carries.")
# What the studio's PPO code imports beyond torch/transformers/peft (its specs, settings and job context).
STUDIO_PACKAGES = "pydantic pydantic-settings python-dotenv sqlalchemy"


@dataclass(frozen=True)
class Plan:
    """How big and how long each measurement is (the full run on CUDA, or the CPU smoke run)."""

    device: str
    dtype: str  # weights: bfloat16 on CUDA (the studio's "auto" precision), float32 on CPU
    sft_batch: int
    sft_length: int  # tokens per sequence
    warmup_steps: int  # untimed: CUDA kernels, the allocator and autotuning settle first
    timed_steps: int  # the median step time is reported
    ppo_timed_steps: int
    ppo_prompt_words: int  # user-prompt tokens before the chat template (the detox prompts are one short sentence)
    generation_prompt: int
    generation_new_tokens: int


def full_plan(device: str) -> Plan:
    return Plan(device=device, dtype="bfloat16" if device == "cuda" else "float32", sft_batch=8, sft_length=512,
                warmup_steps=2, timed_steps=5, ppo_timed_steps=3, ppo_prompt_words=24, generation_prompt=128,
                generation_new_tokens=128)


def smoke_plan() -> Plan:
    return Plan(device="cpu", dtype="float32", sft_batch=2, sft_length=32, warmup_steps=1, timed_steps=1,
                ppo_timed_steps=1, ppo_prompt_words=8, generation_prompt=8, generation_new_tokens=8)


class Skipped(Exception):
    """This measurement cannot run here; ``hint`` says what would let it."""

    def __init__(self, reason: str, hint: str | None = None):
        super().__init__(reason)
        self.hint = hint


# --- helpers -----------------------------------------------------------------------------------------------------


def torch_dtype(name: str):
    import torch

    return getattr(torch, name)


def build_model(shape: dict, device: str, dtype: str):
    """A random-weight Llama of this shape, built directly on ``device`` in ``dtype``."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(**shape, bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=EOS_ID)
    torch.manual_seed(0)
    with torch.device(device):
        return AutoModelForCausalLM.from_config(config, dtype=torch_dtype(dtype))


def stand_in_tokenizer(vocab_size: int):
    """A word-level tokenizer over the whole vocabulary ("w6" is id 6) with a ChatML template; no files needed."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {word: i for i, word in enumerate(SPECIALS)} | {f"w{i}": i for i in range(len(SPECIALS), vocab_size)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=SPECIALS[UNK_ID]))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token=SPECIALS[UNK_ID], bos_token=SPECIALS[BOS_ID],
                                   eos_token=SPECIALS[EOS_ID], pad_token=SPECIALS[EOS_ID])
    fast.chat_template = CHATML
    return fast


def synchronize(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def time_steps(step, plan: Plan, timed: int) -> list[float]:
    """Seconds per call of ``step`` after ``plan.warmup_steps`` untimed calls (CUDA work waited for each time)."""
    for _ in range(plan.warmup_steps):
        step()
    synchronize(plan.device)
    seconds = []
    for _ in range(timed):
        began = time.perf_counter()
        step()
        synchronize(plan.device)
        seconds.append(time.perf_counter() - began)
    return seconds


def release(device: str) -> None:
    import torch

    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


def peak_memory(device: str) -> dict:
    import torch

    if device == "cuda":
        return {"peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3),
                "peak_memory_source": "torch.cuda.max_memory_allocated (this measurement)"}
    return {"peak_memory_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
            "peak_memory_source": "process peak RSS (CPU: includes every earlier measurement)"}


def step_summary(seconds: list[float], tokens_per_step: int | None = None) -> dict:
    median = statistics.median(seconds)
    summary = {"step_s": round(median, 4), "step_s_all": [round(s, 4) for s in seconds]}
    if tokens_per_step is not None:
        summary["tokens_per_s"] = round(tokens_per_step / median, 1)
    return summary


# --- the measurements --------------------------------------------------------------------------------------------


def lora_sft(shape: dict, plan: Plan, quantized: bool = False) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model

    model = quantized_base(shape, plan) if quantized else build_model(shape, plan.device, plan.dtype)
    model = get_peft_model(model, LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                                             target_modules=LORA["target_modules"], task_type="CAUSAL_LM"))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=2e-4)  # the SFT spec's default learning rate
    ids = torch.randint(len(SPECIALS), shape["vocab_size"], (plan.sft_batch, plan.sft_length), device=plan.device)
    losses: list[float] = []

    def step() -> None:
        # bf16 autocast on CUDA, as the SFT runner's Trainer (bf16=True) does
        with torch.autocast(plan.device, dtype=torch.bfloat16, enabled=plan.device == "cuda"):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())  # the runner logs every step, which waits for the GPU the same way

    before = [p.detach().clone() for p in params]
    seconds = time_steps(step, plan, plan.timed_steps)
    changed = sum(not torch.equal(a, b) for a, b in zip(before, params, strict=True))
    trainable = sum(p.numel() for p in params)
    total = sum(p.numel() for p in model.parameters())
    base = "4-bit NF4, double quantization, bf16 compute" if quantized else plan.dtype
    return {**step_summary(seconds, plan.sft_batch * plan.sft_length), "loss_first": round(losses[0], 4),
            "loss_last": round(losses[-1], 4), "trainable_params": trainable, "total_params": total,
            "adapter_tensors_changed": changed, "settings": {
                "batch": plan.sft_batch, "length": plan.sft_length, "base_weights": base,
                "autocast": "bfloat16" if plan.device == "cuda" else None, "lora": LORA,
                "optimizer": "AdamW lr 2e-4", "gradient_checkpointing": False}}


def quantized_base(shape: dict, plan: Plan):
    """The random model, saved and loaded back through bitsandbytes' 4-bit quantizer (QLoRA's frozen base)."""
    if plan.device != "cuda":
        raise Skipped(f"QLoRA needs CUDA (bitsandbytes' 4-bit kernels); this run is on {plan.device}")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise Skipped("bitsandbytes is not installed", BNB_HINT) from None
    import torch
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                      bnb_4bit_compute_dtype=torch.bfloat16)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as folder:
        model = build_model(shape, plan.device, "bfloat16")
        model.save_pretrained(folder)
        del model
        release(plan.device)
        torch.cuda.reset_peak_memory_stats()  # the bf16 copy saved above is not part of QLoRA's footprint
        model = AutoModelForCausalLM.from_pretrained(folder, quantization_config=quantization, dtype=torch.bfloat16,
                                                     device_map={"": torch.cuda.current_device()})
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)


def even_token_share(prompts: list[str], completions: list[str], ids: list[list[int]]) -> list[float]:
    """A reward computed from the token ids alone, so the step's time is PPO's, not a reward model's."""
    return [sum(t % 2 == 0 for t in row) / max(1, len(row)) for row in ids]


def ppo_step(shape: dict, plan: Plan) -> dict:
    import torch
    from peft import get_peft_model

    try:
        from jobs.modeling import lora_config
        from jobs.rl.loading import dtype_for
        from jobs.rl.trainer import PolicyWithValueHead, PPOTrainer
        from jobs.spec_files import list_presets, load_spec_file
    except ModuleNotFoundError as exc:  # a bare CUDA image: torch, transformers and peft, not the studio's packages
        raise Skipped(f"the studio's PPO code needs the Python package {exc.name!r}, not installed here",
                      CARRY_HINT.format(packages=STUDIO_PACKAGES)) from None

    spec = load_spec_file(list_presets()[PPO_PRESET])
    dtype = str(dtype_for(spec.ppo.precision, plan.device)).removeprefix("torch.")  # as the PPO runner loads it
    tokenizer = stand_in_tokenizer(shape["vocab_size"])
    lm = build_model(shape, plan.device, dtype)
    lm = get_peft_model(lm, lora_config(spec.lora, lm, "random-weight model"))
    policy = PolicyWithValueHead(lm).to(plan.device)
    trainer = PPOTrainer(policy, tokenizer, even_token_share, spec.ppo, spec.decoding, chat_format=spec.chat_format,
                         device=plan.device)
    generator = torch.Generator().manual_seed(0)
    words = torch.randint(len(SPECIALS), shape["vocab_size"], (spec.ppo.batch_size, plan.ppo_prompt_words),
                          generator=generator)
    prompts = [" ".join(f"w{i}" for i in row.tolist()) for row in words]
    steps: list[dict] = []
    seconds = time_steps(lambda: steps.append(trainer.step(prompts)[0]), plan, plan.ppo_timed_steps)
    last = steps[-1]
    return {**step_summary(seconds), "completion_length": round(last["completion_length"], 2),
            "objective_kl": round(last["objective/kl"], 4), "settings": {
                "preset": PPO_PRESET, "batch_size": spec.ppo.batch_size, "mini_batch_size": spec.ppo.mini_batch_size,
                "ppo_epochs": spec.ppo.ppo_epochs, "max_new_tokens": spec.decoding.max_new_tokens,
                "sampling": {"temperature": spec.decoding.temperature, "top_p": spec.decoding.top_p},
                "peft": spec.peft, "lora": spec.lora.model_dump(), "weights": dtype,
                "prompt_words": plan.ppo_prompt_words, "chat_format": spec.chat_format,
                "reward": "share of even token ids (no reward model)"}}


def generation(shape: dict, plan: Plan, batch: int) -> dict:
    import torch

    model = build_model(shape, plan.device, plan.dtype).eval()
    ids = torch.randint(len(SPECIALS), shape["vocab_size"], (batch, plan.generation_prompt), device=plan.device)
    new = plan.generation_new_tokens
    lengths: list[int] = []

    @torch.no_grad()
    def generate() -> None:
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new,
                             min_new_tokens=new, do_sample=False, pad_token_id=EOS_ID)
        lengths.append(out.shape[1] - ids.shape[1])

    seconds = time_steps(generate, plan, plan.timed_steps)
    if set(lengths) != {new}:
        raise RuntimeError(f"generate returned {sorted(set(lengths))} new tokens, not exactly {new}")
    summary = step_summary(seconds, batch * new)
    return {**summary, "tokens_per_s_per_sequence": round(new / summary["step_s"], 1),
            "settings": {"batch": batch, "prompt_tokens": plan.generation_prompt, "new_tokens": new,
                         "decoding": "greedy", "weights": plan.dtype, "kv_cache": True}}


MEASUREMENTS = {
    "lora_sft": lambda shape, plan: lora_sft(shape, plan),
    "qlora_sft": lambda shape, plan: lora_sft(shape, plan, quantized=True),
    "ppo_step": ppo_step,
    "generation_batch_1": lambda shape, plan: generation(shape, plan, 1),
    "generation_batch_16": lambda shape, plan: generation(shape, plan, 16),
}


def measure(name: str, shape: dict, plan: Plan) -> dict:
    import torch

    release(plan.device)
    if plan.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    try:
        result = MEASUREMENTS[name](shape, plan)
        return {**result, **peak_memory(plan.device)}
    except Skipped as exc:
        return {"skipped": str(exc), **({"hint": exc.hint} if exc.hint else {})}
    except Exception as exc:  # noqa: BLE001 - one failed measurement (say out of memory) must not lose the others
        return {"error": f"{type(exc).__name__}: {exc}"[:1000]}
    finally:
        release(plan.device)


# --- the report --------------------------------------------------------------------------------------------------


def describe_device(device: str) -> dict:
    import torch

    if device == "cuda":
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        return {"type": "cuda", "name": props.name, "memory_gib": round(props.total_memory / 2**30, 1),
                "capability": f"{props.major}.{props.minor}", "cuda": torch.version.cuda,
                "count": torch.cuda.device_count()}
    return {"type": "cpu", "name": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads()}


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for package in ("torch", "transformers", "peft", "trl", "accelerate", "bitsandbytes"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    return found


def choose_device(requested: str | None) -> str:
    import torch

    if requested is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        sys.exit(f"--device cuda: torch {torch.__version__} sees no CUDA device (a CPU-only build, or no driver). "
                 "Run on a machine with an NVIDIA GPU and a CUDA build of torch, or pass --device cpu.")
    return requested


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny model (2 layers, hidden 64) on CPU, 2 steps each: "
                        "checks that every measurement runs, in seconds")
    parser.add_argument("--device", choices=("cuda", "cpu"), help="default: cuda when available, else cpu")
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS),
                        help="model shapes to measure (default: all)")
    parser.add_argument("--out", type=Path, help="also write the JSON here (rewritten after every measurement)")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    if args.smoke:
        plan, models = smoke_plan(), {"tiny": TINY}
    else:
        plan, models = full_plan(choose_device(args.device)), {name: MODELS[name] for name in args.models}
    report = {"device": describe_device(plan.device), "versions": versions(), "smoke": args.smoke,
              "plan": asdict(plan), "models": {}}
    for model_name, shape in models.items():
        entry = report["models"][model_name] = {"config": shape}
        for name in MEASUREMENTS:
            entry[name] = result = measure(name, shape, plan)
            shown = result.get("tokens_per_s", result.get("step_s", result.get("skipped", result.get("error"))))
            print(f"gpu_check: {model_name} {name}: {shown}", file=sys.stderr, flush=True)
            report["total_s"] = round(time.perf_counter() - began, 1)
            if args.out:
                args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2), flush=True)
    return report


if __name__ == "__main__":
    main()
