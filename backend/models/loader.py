"""One loader for every part of the studio: base models, full checkpoints and LoRA adapters.

Loaded models are cached per process (the cache key is what was loaded and how) and treated as
read-only: callers must not train or mutate them. Training jobs load their own copies.
"""

import threading
from dataclasses import dataclass, field
from typing import Any

from backend.errors import StudioError
from backend.models.store import ResolvedModel
from backend.settings import get_settings

PRECISIONS = ("auto", "float32", "bfloat16", "int8")


@dataclass
class LoadedModel:
    name: str
    model: Any
    tokenizer: Any
    device: str
    precision: str
    eos_token_ids: list[int] = field(default_factory=list)

    @property
    def context_window(self) -> int:
        return int(getattr(self.model.config, "max_position_embeddings", 2048) or 2048)


def resolve_device(requested: str | None = None) -> str:
    requested = requested or get_settings().device
    if requested == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def _torch_dtype(precision: str, device: str):
    import torch

    if precision == "bfloat16" or (precision == "auto" and device == "cuda"):
        return torch.bfloat16
    return torch.float32


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"  # decoder-only batches pad on the left so generation continues the prompt
    return tokenizer


def load_uncached(resolved: ResolvedModel, device: str, precision: str) -> LoadedModel:
    """Load a model from disk or the hub, every call (``load_model`` keeps what this returns)."""
    import torch
    from transformers import AutoModelForCausalLM

    # Only an adapter loads its base's weights; a full model's folder holds all of its own.
    weights = resolved.base_path if resolved.kind == "adapter" and resolved.base_path else resolved.path
    try:
        tokenizer = load_tokenizer(weights)
        model = AutoModelForCausalLM.from_pretrained(weights, dtype=_torch_dtype(precision, device))
        if resolved.kind == "adapter":
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, resolved.path)
            # LoRA merges into the weights (faster inference); a soft prompt cannot, it stays a PeftModel.
            if not model.peft_config["default"].is_prompt_learning:
                model = model.merge_and_unload()
            elif precision == "int8":
                raise StudioError("int8 quantization is not available for prompt-tuned adapters: use float32.")
    except (OSError, ValueError) as exc:
        raise StudioError(f"Could not load model '{resolved.name}' from {resolved.path}: {exc}. "
                          "Check that the folder holds a transformers checkpoint (config.json and weights), "
                          "or that the hub id is right and the hub is reachable.") from exc
    model.eval().to(device)
    if precision == "int8":
        if device != "cpu":
            raise StudioError("int8 dynamic quantization runs on the CPU only: choose bfloat16 on a GPU.")
        # Post-training dynamic quantization of the Linear layers: ~3x faster decoding on CPU.
        model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    eos = model.generation_config.eos_token_id
    eos_ids = [eos] if isinstance(eos, int) else list(eos or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in eos_ids:
        eos_ids.append(tokenizer.eos_token_id)
    return LoadedModel(resolved.name, model, tokenizer, device, precision, eos_ids)


_cache: dict[tuple, LoadedModel] = {}
_lock = threading.Lock()


def load_model(resolved: ResolvedModel, device: str | None = None, precision: str = "auto") -> LoadedModel:
    """Load (or reuse) a model for inference."""
    if precision not in PRECISIONS:
        raise StudioError(f"Unknown precision '{precision}': choose one of {', '.join(PRECISIONS)}.")
    device = resolve_device(device)
    key = (resolved.path, resolved.base_path, device, precision)
    with _lock:  # one load at a time; a second caller waits and then reuses it
        if key not in _cache:
            _cache[key] = load_uncached(resolved, device, precision)
        return _cache[key]


def clear_cache() -> None:
    with _lock:
        _cache.clear()
