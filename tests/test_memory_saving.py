"""QLoRA and gradient checkpointing (jobs/memory_saving.py): a quantized job is refused before queueing on a
machine without CUDA/bitsandbytes when no GPU worker is alive, waits for a GPU when one is, and a CPU that
claims it anyway fails it before loading; gradient checkpointing really recomputes (same loss, job trains)."""

from datetime import timedelta

import pytest
import torch
from factories import job_row, lora_sft_spec, write_dialogues
from sqlalchemy import func, select

from backend.db.engine import session_scope
from backend.db.tables import Job, Worker, utcnow
from backend.errors import StudioError
from jobs import memory_saving, queue, resources
from jobs.registry import parse_spec
from jobs.run import main as run_job

pytestmark = pytest.mark.usefixtures("one_torch_thread")
NO_CUDA = not torch.cuda.is_available()


def job_count() -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(Job))


def submit(spec) -> int:
    with session_scope(write=True) as s:
        return queue.submit(s, spec).id


def gpu_worker_alive() -> None:
    with session_scope(write=True) as s:
        s.add(Worker(id="gpu-box:1", host="gpu-box", pid=1, heartbeat_at=utcnow() - timedelta(seconds=1),
                     cpu_count=32, ram_gb=256.0, devices=[{"index": 0, "name": "A100", "memory_gb": 80.0}], labels=[]))


def qlora_sft(tmp_path, bits="4bit", **overrides):
    return lora_sft_spec(write_dialogues(tmp_path / "d", {"train": 8}), max_steps=1, save_steps=0,
                         quantization=bits, **overrides)


@pytest.mark.skipif(not NO_CUDA, reason="the refusal is for machines without CUDA")
@pytest.mark.parametrize("bits", ["4bit", "8bit"])
def test_quantized_job_is_refused_before_queueing_without_cuda(tiny_model, tmp_path, bits):
    with pytest.raises(StudioError, match=rf"quantization {bits} needs a CUDA GPU with bitsandbytes, and this "
                       r"machine has no CUDA GPU; no live worker has a GPU either\. Set quantization to none"):
        submit(qlora_sft(tmp_path, bits))
    assert job_count() == 0


@pytest.mark.parametrize("kind, values", [
    ("ppo", {"policy_model": "tiny", "peft": "none"}),
    ("grpo", {"policy_model": "tiny", "peft": "none"}),
    ("sft", {"base_model": "tiny", "peft": "prompt_tuning"}),
])
def test_quantization_needs_lora(tiny_model, kind, values):
    with pytest.raises(StudioError, match="QLoRA. trains LoRA adapters on a frozen quantized base: set peft to lora"):
        submit(parse_spec({"kind": kind, "quantization": "4bit", **values}))
    assert job_count() == 0


def test_quantization_on_cpu_devices_is_refused(tiny_model, tmp_path):
    with pytest.raises(StudioError, match="runs on CUDA GPUs .bitsandbytes., not on resources.devices cpu"):
        submit(qlora_sft(tmp_path, resources={"devices": "cpu"}))


@pytest.mark.skipif(not NO_CUDA, reason="needs a machine whose own device is a CPU")
def test_with_a_gpu_worker_alive_it_queues_for_a_gpu_and_a_cpu_fails_it_before_loading(tiny_model, tmp_path,
                                                                                       capsys):
    gpu_worker_alive()
    job_id = submit(qlora_sft(tmp_path))  # the GPU worker checks bitsandbytes when it runs the job
    with session_scope() as s:
        need = resources.job_need(s.get(Job, job_id).spec, gpu_worker_alive=False)
        assert need.devices == "cuda" and need.gpus == 1  # quantized: a GPU even when auto sees none
        assert queue.claim(s, "cpu-box:2") is None  # a CPU worker passes it over
    assert run_job(job_id) != 0  # run here anyway (this machine has no CUDA): refused before any weights load
    job = job_row(job_id)
    assert job.status == "failed"
    assert "quantization 4bit needs a CUDA GPU with bitsandbytes, and this job runs on the CPU" in job.error
    assert "trainable parameters" not in capsys.readouterr().out


def test_bitsandbytes_config_is_the_qlora_recipe():
    four = memory_saving.quantization_config(parse_spec({"kind": "sft", "quantization": "4bit"}))
    assert four.load_in_4bit and four.bnb_4bit_quant_type == "nf4" and four.bnb_4bit_use_double_quant
    assert four.bnb_4bit_compute_dtype == torch.bfloat16
    eight = memory_saving.quantization_config(parse_spec({"kind": "sft", "quantization": "8bit"}))
    assert eight.load_in_8bit and not eight.load_in_4bit
    assert memory_saving.quantization_config(parse_spec({"kind": "sft"})) is None
    assert memory_saving.load_kwargs(parse_spec({"kind": "sft"}), "cpu", torch.float32) == {"dtype": torch.float32}


@pytest.mark.parametrize("setting, quantization, device, params, on", [
    ("auto", "none", "cpu", 8e9, False),  # a CPU lacks time, not memory
    ("auto", "none", "cuda", 135e6, False),
    ("auto", "none", "cuda", 1e9, True),
    ("auto", "4bit", "cuda", 135e6, True),  # the QLoRA recipe
    ("on", "none", "cpu", 1e6, True),
    ("off", "none", "cuda", 8e9, False),
])
def test_gradient_checkpointing_auto(setting, quantization, device, params, on):
    spec = parse_spec({"kind": "sft", "gradient_checkpointing": setting, "quantization": quantization})
    assert memory_saving.use_checkpointing(spec, device, int(params)) is on


def test_checkpointing_recomputes_to_the_same_loss_and_gradients(tiny_model_dir):
    """On: the forward pass keeps no activations, the backward recomputes them; the numbers do not change."""
    from transformers import AutoModelForCausalLM

    spec = parse_spec({"kind": "sft", "gradient_checkpointing": "on"})
    ids = torch.randint(0, 100, (2, 12))
    results = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).train()
        if checkpointing:
            model, on = memory_saving.prepare(model, spec, "cpu")
            assert on and model.is_activation_checkpointing
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        results.append((loss.item(), model.lm_head.weight.grad.clone()))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-6)
    assert torch.allclose(results[0][1], results[1][1], atol=1e-6)


def test_sft_job_with_checkpointing_on_trains(tiny_model, tmp_path, capsys):
    spec = lora_sft_spec(write_dialogues(tmp_path / "d", {"train": 8}), max_steps=2, save_steps=0,
                         gradient_checkpointing="on")
    job_id = submit(spec)
    assert run_job(job_id) == 0
    assert job_row(job_id).status == "succeeded"
    assert "gradient checkpointing: on (on); quantization: none" in capsys.readouterr().out
