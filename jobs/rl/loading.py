"""Loading the model an RLHF job starts from, and registering what it produced.

A job may start from a base model, a full SFT checkpoint, or an SFT LoRA adapter; an adapter is merged into
its base first, so the job trains (and the reference is) the SFT model itself.
"""

from typing import Any

import torch

from backend.db.engine import session_scope
from backend.errors import StudioError
from backend.models.store import ResolvedModel, register_model, registered_id
from jobs import queue
from jobs.rl.checks import weights_path


def dtype_for(precision: str, device: str) -> torch.dtype:
    return torch.bfloat16 if precision == "bf16" or (precision == "auto" and device == "cuda") else torch.float32


def _load_kwargs(model: ResolvedModel, dtype: torch.dtype, spec, device: str) -> dict[str, Any]:
    from jobs.memory_saving import load_kwargs, quantization

    if spec is None:
        return {"dtype": dtype}
    if quantization(spec) != "none" and model.kind == "adapter":
        raise StudioError(f"'{model.name}' is an adapter: a quantized (QLoRA) job starts from a base or full model, "
                          "because an adapter cannot be merged into 4/8-bit weights without losing precision. Merge "
                          "it first (Models page, or `studio models merge`), or set quantization to none.")
    return load_kwargs(spec, device, dtype)


def load_causal_lm(model: ResolvedModel, dtype: torch.dtype, spec=None, device: str = "cpu"):
    """The causal LM a resolved model names, with a LoRA adapter merged into its base; with a training ``spec``
    its base is loaded quantized when the spec asks for QLoRA (see ``jobs.memory_saving``)."""
    from transformers import AutoModelForCausalLM

    lm = AutoModelForCausalLM.from_pretrained(weights_path(model), **_load_kwargs(model, dtype, spec, device))
    if model.kind == "adapter":
        from peft import PeftModel

        lm = PeftModel.from_pretrained(lm, model.path).merge_and_unload()
    return lm


def prompt_texts(spec, split: str, limit: int = 0) -> list[str]:
    """The prompts of a rollout job (PPO, GRPO): ``spec.prompt_field`` of ``split`` of ``spec.prompts``."""
    from backend.data.rlhf_prompts import ensure_demo_prompts
    from jobs.data import read_rows

    ensure_demo_prompts(spec.prompts)
    rows = read_rows(spec.prompts, split, [spec.prompt_field], limit)
    return [str(r[spec.prompt_field]) for r in rows]


def load_reward_backbone(model: ResolvedModel, dtype: torch.dtype, pad_token_id: int, spec=None,
                         device: str = "cpu"):
    """A one-output sequence classifier whose backbone is the resolved model (an adapter merged in first)."""
    from transformers import AutoModelForSequenceClassification

    reward = AutoModelForSequenceClassification.from_pretrained(weights_path(model), num_labels=1,
                                                                **_load_kwargs(model, dtype, spec, device))
    if model.kind == "adapter":  # copy the merged SFT backbone under the new score head
        reward.base_model.load_state_dict(load_causal_lm(model, dtype).base_model.state_dict())
    reward.config.pad_token_id = pad_token_id  # the classifier reads the last non-pad token
    return reward


def register_output(ctx, start: ResolvedModel, path: str, kind: str, meta: dict[str, Any]) -> int:
    """Register a job's output with its lineage; an adapter is attached to the registry row of its base.

    With several processes only rank 0 registers (the others return None)."""
    if not ctx.is_main:
        return None
    spec = ctx.spec
    with session_scope(write=True) as s:
        queue.require_running(s, ctx.job_id)  # reaped or ended meanwhile: register nothing
        base_id = registered_id(s, start) if kind == "adapter" else None
        record = register_model(s, f"{spec.name or spec.kind}-job{ctx.job_id}", path, kind=kind, source="job",
                                base_model_id=base_id, job_id=ctx.job_id,
                                meta={"method": spec.kind, "start_model": start.name, "start_path": start.path,
                                      "start_kind": start.kind, "start_model_id": start.id, **meta,
                                      "spec": spec.model_dump(mode="json")})
        return record.id
