"""Model-side helpers shared by the SFT runner, the eval runner and the training services.

Everything that only needs a model's *shape* works on the meta device (``AutoConfig`` + ``from_config``
under ``torch.device("meta")``): no weights are read, so trainable-parameter estimates and adapter/base
checks take a second even for large models. torch/transformers/peft are imported inside functions.
"""

import json
from pathlib import Path
from typing import Any

from backend.errors import StudioError
from jobs.specs import SFTSpec


def meta_model(path: str, name: str | None = None):
    """The model's architecture with no weights (every tensor on the meta device)."""
    import torch

    # The concrete modules, not ``from transformers import …``: in the studio's server the first lookup through
    # transformers' lazy top-level module failed ("cannot import name 'AutoConfig'") while the same names
    # resolved a moment later; importing the defining modules goes through Python's ordinary import locks.
    from transformers.models.auto.configuration_auto import AutoConfig
    from transformers.models.auto.modeling_auto import AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise StudioError(f"Could not read the config of model '{name or path}' ({str(exc).splitlines()[0][:200]}): "
                          "check the folder holds config.json, or that the hub is reachable.") from None
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def adaptable_layers(model) -> list[str]:
    import torch
    from transformers.pytorch_utils import Conv1D

    kinds = (torch.nn.Linear, torch.nn.Embedding, torch.nn.Conv1d, torch.nn.Conv2d, Conv1D)
    return [name for name, module in model.named_modules() if isinstance(module, kinds)]


def lora_targets(model, wanted: list[str], model_name: str) -> list[str] | str:
    """Check LoRA target names against the model's adaptable layers (peft matches name suffixes)."""
    if wanted == ["all-linear"]:
        return "all-linear"
    layers = adaptable_layers(model)
    unknown = [t for t in wanted if not any(n == t or n.endswith("." + t) for n in layers)]
    if unknown:
        leaves = sorted({n.rsplit(".", 1)[-1] for n in layers} - {"lm_head"})
        raise StudioError(f"LoRA target module(s) {', '.join(unknown)} do not exist in {model_name}; its layers "
                          f"that LoRA can adapt are: {', '.join(leaves)} (or use all-linear).")
    return wanted


def lora_config(lora, model, model_name: str, task_type: str = "CAUSAL_LM"):
    """A peft ``LoraConfig`` from a spec's ``LoraArgs``, its target modules checked against ``model``."""
    from peft import LoraConfig

    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, task_type=task_type,
                      target_modules=lora_targets(model, lora.target_modules, model_name),
                      use_rslora=lora.use_rslora, use_dora=lora.use_dora)


def peft_config(spec: SFTSpec, model, base_path: str, base_name: str):
    """The peft config for a spec's method (None for full fine-tuning)."""
    if spec.peft == "lora":
        return lora_config(spec.lora, model, base_name)
    if spec.peft == "prompt_tuning":
        from peft import PromptTuningConfig

        pt = spec.prompt_tuning
        init = {"text": "TEXT", "random": "RANDOM", "sample_vocab": "SAMPLE_VOCAB"}[pt.init]
        text = {"prompt_tuning_init_text": pt.init_text, "tokenizer_name_or_path": base_path} if init == "TEXT" else {}
        return PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=pt.num_virtual_tokens,
                                  prompt_tuning_init=init, **text)
    return None


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameters; shared (tied) tensors count once."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def estimate_trainable(spec: SFTSpec, base_path: str, base_name: str) -> dict[str, Any]:
    """Trainable and total parameters of an SFT spec's model, computed on the meta device (no weights)."""
    model = meta_model(base_path, base_name)
    if spec.peft == "prompt_tuning":
        # The soft prompt is num_virtual_tokens × hidden size; peft's TEXT init would read real embeddings.
        _, total = count_parameters(model)
        trainable = spec.prompt_tuning.num_virtual_tokens * model.get_input_embeddings().embedding_dim
        total += trainable
    else:
        config = peft_config(spec, model, base_path, base_name)
        if config is not None:
            from peft import get_peft_model

            model = get_peft_model(model, config)
        trainable, total = count_parameters(model)
    return {"trainable": trainable, "total": total, "share": trainable / total if total else 0.0}


# --- adapters ----------------------------------------------------------------------------------------------

def adapter_config(adapter_path: str) -> dict[str, Any]:
    path = Path(adapter_path) / "adapter_config.json"
    if not path.is_file():
        raise StudioError(f"{adapter_path} holds no adapter_config.json: it is not a PEFT adapter folder.")
    return json.loads(path.read_text(encoding="utf-8"))


def is_prompt_learning(adapter_path: str) -> bool:
    return adapter_config(adapter_path).get("peft_type") in ("PROMPT_TUNING", "P_TUNING", "PREFIX_TUNING")


def _adapter_shapes(adapter_path: str) -> dict[str, tuple[int, ...]]:
    from safetensors import safe_open

    weights = Path(adapter_path) / "adapter_model.safetensors"
    if not weights.is_file():
        raise StudioError(f"{adapter_path} holds no adapter_model.safetensors: the adapter is incomplete.")
    with safe_open(str(weights), framework="pt") as fh:
        return {key: tuple(fh.get_slice(key).get_shape()) for key in fh.keys()}  # noqa: SIM118 - not a dict


def check_adapter_fits(adapter_path: str, base_path: str, adapter_name: str, base_name: str) -> None:
    """Refuse an adapter whose tensors do not fit its base model's layers (it was trained on another base).

    Compares each LoRA A/B matrix with the in/out features of the base layer it adapts, and a soft prompt's
    width with the base's embedding size, on the meta device (no weights are loaded).
    """
    config = adapter_config(adapter_path)
    model = meta_model(base_path, base_name)
    problems: list[str] = []
    shapes = _adapter_shapes(adapter_path)
    if config.get("peft_type") in ("PROMPT_TUNING", "P_TUNING"):
        width = model.get_input_embeddings().embedding_dim
        got = {shape[-1] for key, shape in shapes.items() if "prompt_embeddings" in key}
        if got and got != {width}:
            problems.append(f"its soft prompt is {min(got)} wide, the base's embeddings are {width}")
    for key, shape in shapes.items():
        for part in ("lora_A", "lora_B"):
            if f".{part}." not in key:
                continue
            module_name = key.split(f".{part}.")[0].removeprefix("base_model.model.")
            try:
                layer = model.get_submodule(module_name)
            except AttributeError:
                problems.append(f"it adapts a layer the base does not have ({module_name})")
                break
            features = (getattr(layer, "in_features", None), getattr(layer, "out_features", None))
            expected = features[0] if part == "lora_A" else features[1]
            actual = shape[1] if part == "lora_A" else shape[0]
            if expected is not None and actual != expected:
                problems.append(f"{module_name} is {features[0]}→{features[1]} in the base, but the adapter's "
                                f"{part} expects {'input' if part == 'lora_A' else 'output'} size {actual}")
        if len(problems) >= 3:
            break
    if problems:
        trained_on = config.get("base_model_name_or_path") or "another model"
        raise StudioError(f"Adapter '{adapter_name}' does not fit base model '{base_name}': {'; '.join(problems[:3])}. "
                          f"It was trained on a different base ({trained_on}): use it with that model.")


def load_prompt_tuned(resolved, precision: str = "auto"):
    """Load a prompt-tuning adapter for inference: its base model wrapped by peft (a soft prompt cannot be merged
    into weights). Returns a ``LoadedModel`` that the generation engine and perplexity accept."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from backend.models.loader import LoadedModel, load_tokenizer, resolve_device

    if precision == "int8":
        raise StudioError("int8 is not available for prompt-tuning adapters: choose float32 or bfloat16.")
    device = resolve_device()
    dtype = torch.bfloat16 if precision == "bfloat16" or (precision == "auto" and device == "cuda") else torch.float32
    try:
        tokenizer = load_tokenizer(resolved.base_path)
        base = AutoModelForCausalLM.from_pretrained(resolved.base_path, dtype=dtype)
        model = PeftModel.from_pretrained(base, resolved.path, is_trainable=False)
    except (OSError, ValueError) as exc:
        raise StudioError(f"Could not load prompt-tuning adapter '{resolved.name}': {exc}") from exc
    model.eval().to(device)
    eos = base.generation_config.eos_token_id
    eos_ids = [eos] if isinstance(eos, int) else list(eos or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in eos_ids:
        eos_ids.append(tokenizer.eos_token_id)
    return LoadedModel(resolved.name, model, tokenizer, device, precision, eos_ids)
