"""SFT smoke runs on the tiny random Llama, in-process through ``jobs.run.main``: LoRA and full fine-tuning
change weights, write metrics and register the output with its lineage; bad targets and cancels end cleanly."""

import threading
import time

from factories import job_row, write_dialogues
from sqlalchemy import select

from backend.db.engine import session_scope
from backend.db.tables import ModelRecord
from backend.models.store import local_path
from jobs import artifacts, queue
from jobs.run import main as run_job
from jobs.specs import SFTSpec


def write_dataset(folder, n=8):
    return write_dialogues(folder, {"train": n, "test": n})


def submit(spec: SFTSpec) -> int:
    with session_scope(write=True) as s:
        return queue.submit(s, spec).id


def sft_spec(data, **overrides) -> SFTSpec:
    values = {"name": "smoke", "base_model": "tiny", "dataset": str(data),
              "train": {"max_steps": 3, "batch_size": 2, "learning_rate": 1e-2, "warmup_ratio": 0.0,
                        "max_length": 128, "logging_steps": 1},
              "lora": {"r": 4, "alpha": 8, "dropout": 0.0}, "max_eval_examples": 0}
    values.update(overrides)
    return SFTSpec.model_validate(values)


def metric_keys(job_id: int) -> set[str]:
    with session_scope() as s:
        return {m["key"] for m in queue.job_metrics(s, job_id)}


def test_lora_sft_smoke(tiny_model, tmp_path):
    from safetensors.torch import load_file

    job_id = submit(sft_spec(write_dataset(tmp_path / "data")))
    assert run_job(job_id) == 0
    job = job_row(job_id)
    assert job.status == "succeeded", job.error
    assert job.error is None and job.finished_at is not None

    out = artifacts.job_dir(job_id) / "model"
    assert (out / "adapter_config.json").is_file()
    assert (artifacts.job_dir(job_id) / "job_spec.yaml").is_file()
    with session_scope() as s:
        record = s.get(ModelRecord, job.output_model_id)
        assert record.kind == "adapter" and record.source == "job"
        assert record.base_model_id == tiny_model.id and record.job_id == job_id
        assert local_path(record.path, record.source) == str(out)
        assert record.path == f"artifacts/job-{job_id}/model"  # relative: workers sharing the data dir find it
        assert record.meta["trainable_params"] > 0

    keys = metric_keys(job_id)
    assert {"loss", "trainable_params", "total_params"} <= keys

    weights = load_file(out / "adapter_model.safetensors")
    lora_b = [v for k, v in weights.items() if "lora_B" in k]
    assert lora_b, f"no lora_B weights in {sorted(weights)[:5]}"
    assert any(v.abs().sum() > 0 for v in lora_b), "peft inits lora_B to zero: training must have moved it"
    targets = {k.split(".")[-3] for k in weights if "lora_A" in k}
    assert targets == {"q_proj", "k_proj", "v_proj", "o_proj"}

    # the registered adapter loads through the shared loader (merged onto its base)
    from backend.models.loader import load_model
    from backend.models.store import resolve

    with session_scope() as s:
        resolved = resolve(s, record.name)
    assert resolved.kind == "adapter" and resolved.base_path == tiny_model.path
    loaded = load_model(resolved)
    assert not hasattr(loaded.model, "peft_config")


def test_full_sft_changes_base_weights(tiny_model, tmp_path):
    from safetensors.torch import load_file

    job_id = submit(sft_spec(write_dataset(tmp_path / "data"), peft="none",
                             train={"max_steps": 2, "batch_size": 2, "learning_rate": 1e-3, "warmup_ratio": 0.0,
                                    "max_length": 128}))
    assert run_job(job_id) == 0
    job = job_row(job_id)
    assert job.status == "succeeded", job.error
    out = artifacts.job_dir(job_id) / "model"
    assert (out / "config.json").is_file() and not (out / "adapter_config.json").exists()
    with session_scope() as s:
        record = s.get(ModelRecord, job.output_model_id)
        assert record.kind == "full" and record.job_id == job_id and record.meta["base"] == "tiny"

    base = load_file(f"{tiny_model.path}/model.safetensors")
    tuned = load_file(out / "model.safetensors")
    shared = set(base) & set(tuned)
    assert shared
    changed = [k for k in shared if not (base[k] == tuned[k]).all()]
    assert len(changed) > len(shared) // 2, "full fine-tuning updates (nearly) every tensor"
    keys = metric_keys(job_id)
    assert "loss" in keys and "trainable_params" in keys
    with session_scope() as s:
        trainable = [m["value"] for m in queue.job_metrics(s, job_id) if m["key"] == "trainable_params"]
        total = [m["value"] for m in queue.job_metrics(s, job_id) if m["key"] == "total_params"]
    assert trainable == total


def test_bad_lora_target_fails_readably(tiny_model, tmp_path):
    spec = sft_spec(write_dataset(tmp_path / "data"), lora={"target_modules": ["q_proj", "qkv_fused"]})
    job_id = submit(spec)
    assert run_job(job_id) == 1
    job = job_row(job_id)
    assert job.status == "failed"
    assert "qkv_fused" in job.error and "q_proj" in job.error.split(";")[1]  # names it, lists what exists
    assert "Traceback" not in job.error
    with session_scope() as s:
        assert s.scalar(select(ModelRecord).where(ModelRecord.job_id == job_id)) is None


def test_missing_column_fails_readably(tiny_model, tmp_path):
    job_id = submit(sft_spec(write_dataset(tmp_path / "data"), target_field="headline"))
    assert run_job(job_id) == 1
    job = job_row(job_id)
    assert job.status == "failed" and "headline" in job.error


def test_cancel_during_training(tiny_model, tmp_path):
    job_id = submit(sft_spec(write_dataset(tmp_path / "data"),
                             train={"max_steps": 5000, "batch_size": 1, "max_length": 64, "logging_steps": 1}))

    def cancel_once_training():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if "loss" in metric_keys(job_id):
                with session_scope(write=True) as s:
                    queue.request_cancel(s, job_id)
                return
            time.sleep(0.1)

    canceller = threading.Thread(target=cancel_once_training)
    canceller.start()
    began = time.monotonic()
    assert run_job(job_id) == 0
    canceller.join(5)
    job = job_row(job_id)
    assert job.status == "cancelled", job.error
    assert time.monotonic() - began < 60
    assert job.output_model_id is None
    with session_scope() as s:
        steps = [m["step"] for m in queue.job_metrics(s, job_id) if m["key"] == "loss"]
    assert steps and max(steps) < 5000


def test_already_cancelled_job_does_not_run(tiny_model, tmp_path):
    job_id = submit(sft_spec(write_dataset(tmp_path / "data")))
    with session_scope(write=True) as s:
        assert queue.request_cancel(s, job_id) == "cancelled"
    assert run_job(job_id) == 0
    assert job_row(job_id).status == "cancelled"
    assert not (artifacts.job_dir(job_id) / "model").exists()
    assert run_job(987654) == 2


def test_sft_from_unregistered_folder_registers_base(studio_env, tiny_model_dir, tmp_path):
    """A base given as a plain folder gets a registry row, so the adapter's lineage (and loading) works."""
    job_id = submit(sft_spec(write_dataset(tmp_path / "data"), base_model=str(tiny_model_dir),
                             train={"max_steps": 1, "batch_size": 2, "max_length": 64}))
    assert run_job(job_id) == 0
    job = job_row(job_id)
    assert job.status == "succeeded", job.error
    with session_scope() as s:
        record = s.get(ModelRecord, job.output_model_id)
        assert record.base_model is not None and record.base_model.path == str(tiny_model_dir.resolve())
