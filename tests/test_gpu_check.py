"""benchmarks/gpu_check.py: the CPU smoke run measures everything it can and says why it skips QLoRA; the default
model's shape matches the embedded model; a missing bitsandbytes or CUDA gives a reason, not a traceback."""

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "gpu_check.py"


def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def positive(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def test_smoke_run_reports_every_measurement(tmp_path):
    out = tmp_path / "gpu_check.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--out", str(out)], cwd=REPO, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert json.loads(out.read_text()) == report  # --out holds the same object
    assert report["smoke"] is True and report["device"]["type"] == "cpu"
    assert report["versions"]["torch"] and report["versions"]["transformers"]
    tiny = report["models"]["tiny"]
    assert tiny["config"]["num_hidden_layers"] == 2 and tiny["config"]["hidden_size"] == 64
    assert set(tiny) == {"config", "lora_sft", "qlora_sft", "ppo_step", "generation_batch_1", "generation_batch_16"}
    assert not [name for name, result in tiny.items() if "error" in result], tiny

    sft = tiny["lora_sft"]
    for key in ("tokens_per_s", "step_s", "peak_memory_gib", "loss_first", "loss_last", "trainable_params"):
        assert positive(sft[key]), (key, sft)
    assert sft["adapter_tensors_changed"] > 0  # the steps trained the adapters
    assert sft["trainable_params"] < sft["total_params"]  # LoRA: the base stays frozen
    assert "CUDA" in tiny["qlora_sft"]["skipped"]

    ppo = tiny["ppo_step"]
    assert positive(ppo["step_s"]) and positive(ppo["peak_memory_gib"]) and positive(ppo["completion_length"])
    assert math.isfinite(ppo["objective_kl"])
    settings = ppo["settings"]  # the CPU preset's own numbers, read from jobs/presets/ppo-detox-cpu.yaml
    assert (settings["batch_size"], settings["mini_batch_size"], settings["ppo_epochs"],
            settings["max_new_tokens"]) == (16, 8, 4, 32)

    for batch in (1, 16):
        gen = tiny[f"generation_batch_{batch}"]
        assert gen["settings"]["batch"] == batch
        assert positive(gen["tokens_per_s"]) and positive(gen["step_s"]) and positive(gen["peak_memory_gib"])
        assert gen["tokens_per_s"] == pytest.approx(batch * gen["settings"]["new_tokens"] / gen["step_s"], rel=0.01)


def test_default_shape_matches_the_embedded_model(real_model_dir_or_skip):
    config = json.loads((real_model_dir_or_skip / "config.json").read_text())
    shape = gpu_check().SMOLLM2_135M
    assert {key: config[key] for key in shape} == shape


def test_qlora_without_bitsandbytes_is_skipped_with_the_wheel_to_carry(monkeypatch):
    module = gpu_check()
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # makes `import bitsandbytes` fail
    with pytest.raises(module.Skipped) as skipped:
        module.quantized_base(module.TINY, module.full_plan("cuda"))  # the CUDA check passes: the plan says cuda
    assert str(skipped.value) == "bitsandbytes is not installed"
    assert "pip install --no-index --find-links .wheels bitsandbytes" in skipped.value.hint


def test_lora_settings_are_the_studios_defaults():
    from jobs.specs import LoraArgs

    defaults = LoraArgs()
    assert gpu_check().LORA == {"r": defaults.r, "alpha": defaults.alpha, "dropout": defaults.dropout,
                                "target_modules": defaults.target_modules}


# A bare CUDA image (the device machine's): torch, transformers and peft, none of the studio's own packages.
BARE_IMAGE = """
import importlib.util, runpy, sys
ABSENT = {"pydantic", "pydantic_core", "pydantic_settings", "dotenv", "sqlalchemy", "trl", "datasets", "bitsandbytes"}
class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ABSENT:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Absent())
find_spec = importlib.util.find_spec  # availability checks (transformers, peft) ask this: absent is None
importlib.util.find_spec = lambda name, package=None: None if name.split(".")[0] in ABSENT else find_spec(name, package)
sys.argv = ["gpu_check.py", "--smoke"]
runpy.run_path("benchmarks/gpu_check.py", run_name="__main__")
"""


def test_bare_cuda_image_measures_what_it_can_and_names_the_wheels_to_carry():
    done = subprocess.run([sys.executable, "-c", BARE_IMAGE], cwd=REPO, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    tiny = json.loads(done.stdout)["models"]["tiny"]
    for name in ("lora_sft", "generation_batch_1", "generation_batch_16"):
        assert positive(tiny[name]["tokens_per_s"]), tiny[name]
    ppo = tiny["ppo_step"]
    assert ppo["skipped"] == "the studio's PPO code needs the Python package 'pydantic', not installed here"
    assert "pip install --no-index --find-links .wheels pydantic pydantic-settings python-dotenv sqlalchemy" in ppo["hint"]


def test_cuda_asked_for_without_cuda_says_so(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(SystemExit) as stopped:
        gpu_check().main(["--device", "cuda"])
    assert "sees no CUDA device" in str(stopped.value.code)
