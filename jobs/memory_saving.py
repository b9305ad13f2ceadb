"""Memory savers of the training kinds (SFT, reward, DPO, GRPO, PPO): QLoRA and gradient checkpointing.

QLoRA (Dettmers et al. 2023) loads the frozen base weights in 4 bits (NF4 with double quantization, bf16
compute) or 8 bits through bitsandbytes and trains LoRA adapters on top. bitsandbytes' kernels run on CUDA
GPUs, so a quantized job is refused at submission when neither this machine nor any live worker has one
(``check_quantization``), and a worker without CUDA or bitsandbytes fails it with the fix before loading
anything (``quantized_load_kwargs``).

Gradient checkpointing keeps only each layer's input in the forward pass and recomputes the rest during the
backward pass: activations shrink from ~34·hidden bytes per token per layer to ~2·hidden, for about 30 % more
step time. ``auto`` turns it on for CUDA jobs on models of 1B parameters or more, and for every quantized job
(the QLoRA recipe); on a CPU it stays off unless asked for (time, not memory, is what CPUs lack).
"""

from typing import Any

from backend.errors import StudioError

CHECKPOINTING_FROM_PARAMS = 1e9  # auto: models at least this big checkpoint on a GPU


def quantization(spec) -> str:
    return getattr(spec, "quantization", "none")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]


def cuda_problem() -> str | None:
    """Why this machine cannot run bitsandbytes (no CUDA device, or the package does not import); None if it can."""
    import torch

    if not torch.cuda.is_available():
        return "this machine has no CUDA GPU"
    try:
        import bitsandbytes  # noqa: F401 - only whether it imports
    except Exception as exc:  # noqa: BLE001 - ImportError, or a CUDA library it cannot find: either way unusable
        return f"bitsandbytes does not import here ({_first_line(exc)}): `pip install bitsandbytes`"
    return None


def _gpu_worker_alive(session) -> bool:
    from jobs.resources import alive_workers

    return session is not None and any(w.devices for w in alive_workers(session))


def check_quantization(spec, session=None) -> None:
    """Refuse a quantized spec that cannot run (raises ``StudioError`` with the fix); called before queueing."""
    bits = quantization(spec)
    if bits == "none":
        return
    if getattr(spec, "peft", "none") != "lora":
        raise StudioError(f"quantization {bits} (QLoRA) trains LoRA adapters on a frozen quantized base: set peft "
                          "to lora, or quantization to none for full fine-tuning.")
    resources = getattr(spec, "resources", None)
    if resources is not None and resources.devices == "cpu":
        raise StudioError(f"quantization {bits} runs on CUDA GPUs (bitsandbytes), not on resources.devices cpu: set "
                          "devices to cuda (or auto), or quantization to none.")
    problem = cuda_problem()
    if problem is None or _gpu_worker_alive(session):
        return  # here, or on a GPU worker (which checks bitsandbytes again when it runs the job)
    raise StudioError(f"quantization {bits} needs a CUDA GPU with bitsandbytes, and {problem}; no live worker has a "
                      "GPU either. Set quantization to none (LoRA without quantization), or start a worker on a GPU "
                      "machine with bitsandbytes installed (`pip install bitsandbytes`, then `studio worker`).")


def quantization_config(spec):
    """transformers' ``BitsAndBytesConfig`` for the spec (None without quantization)."""
    import torch
    from transformers import BitsAndBytesConfig

    bits = quantization(spec)
    if bits == "4bit":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=torch.bfloat16)
    if bits == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return None


def load_kwargs(spec, device: str, dtype) -> dict[str, Any]:
    """``from_pretrained`` keywords for the job's model: its dtype, or the quantization and the GPU to load onto.

    A quantized load on a machine that cannot run it fails here, before any weights are read."""
    if quantization(spec) == "none":
        return {"dtype": dtype}
    import torch

    problem = "this job runs on the CPU" if device != "cuda" else cuda_problem()
    if problem is not None:
        raise StudioError(f"quantization {quantization(spec)} needs a CUDA GPU with bitsandbytes, and {problem}: "
                          "run it on a GPU worker (resources.devices cuda), or set quantization to none.")
    return {"dtype": torch.bfloat16, "quantization_config": quantization_config(spec),
            "device_map": {"": torch.cuda.current_device()}}


def use_checkpointing(spec, device: str, params: int) -> bool:
    """Whether the job recomputes activations (see the module docstring for ``auto``)."""
    setting = getattr(spec, "gradient_checkpointing", "off")
    if setting != "auto":
        return setting == "on"
    return device == "cuda" and (quantization(spec) != "none" or params >= CHECKPOINTING_FROM_PARAMS)


def prepare(model, spec, device: str) -> tuple[Any, bool]:
    """Ready a freshly loaded model for training: QLoRA's k-bit preparation (norms in fp32, input gradients) and
    gradient checkpointing. Returns the model and whether checkpointing is on (Trainer kinds pass it to their
    config, our PPO loop uses the model as it is)."""
    params = sum(p.numel() for p in model.parameters())
    checkpointing = use_checkpointing(spec, device, params)
    if quantization(spec) != "none":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing)
    elif checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()  # LoRA: the frozen embeddings' output must carry a gradient
    if checkpointing:
        model.config.use_cache = False  # a cache is useless while training and conflicts with recomputation
    print(f"gradient checkpointing: {'on' if checkpointing else 'off'} ({spec.gradient_checkpointing}); "
          f"quantization: {quantization(spec)}", flush=True)
    return model, checkpointing
