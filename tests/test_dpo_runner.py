"""The ``dpo`` job with TRL's DPOTrainer on the tiny model: LoRA (reference = adapters off) and full fine-tuning move
the weights, log TRL's preference metrics and register the output with its lineage."""

import json

import pytest

from backend.db.engine import session_scope
from backend.db.tables import Job, ModelRecord
from backend.errors import StudioError
from jobs import artifacts, queue
from jobs.registry import parse_spec
from jobs.run import main as run_job

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def preference_file(path, n_prompts: int = 8):
    rows = [{"prompt": f"Reply to customer {i}", "chosen": f"hello thanks booking {i}",
             "rejected": f"refund refund {i}"} for i in range(n_prompts)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def dpo_spec(data, **overrides):
    values = {"kind": "dpo", "name": "dpo-smoke", "base_model": "tiny",
              "data": {"dataset": str(data), "test_size": 0.25, "min_pairs": 4},
              "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
              "train": {"max_steps": 2, "batch_size": 2, "learning_rate": 5e-3, "warmup_ratio": 0.0,
                        "max_length": 64, "logging_steps": 1}}
    values.update(overrides)
    return parse_spec(values)


def run_spec(spec) -> Job:
    with session_scope(write=True) as s:
        job_id = queue.submit(s, spec).id
    assert run_job(job_id) == 0
    with session_scope() as s:
        return s.get(Job, job_id)


def test_dpo_lora_moves_the_adapter_and_logs_preference_metrics(tiny_model, tmp_path):
    from safetensors.torch import load_file

    job = run_spec(dpo_spec(preference_file(tmp_path / "prefs.jsonl"), beta=0.2))
    assert job.status == "succeeded", job.error
    with session_scope() as s:
        record = s.get(ModelRecord, job.output_model_id)
        assert record.kind == "adapter" and record.base_model_id == tiny_model.id
        assert record.meta["method"] == "dpo" and record.meta["beta"] == 0.2
        metrics = queue.job_metrics(s, job.id)
    keys = {m["key"] for m in metrics}
    assert {"loss", "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins",
            "data/train_pairs", "eval_loss"} <= keys
    final_eval = [m for m in metrics if m["key"] == "eval_loss" and m["step"] == max(x["step"] for x in metrics)]
    assert len(final_eval) == 1  # recorded once (the trainer's own log), not twice
    weights = load_file(artifacts.job_dir(job.id) / "model" / "adapter_model.safetensors")
    assert any(v.abs().sum() > 0 for k, v in weights.items() if "lora_B" in k)


def test_dpo_full_fine_tuning_with_ipo_loss(tiny_model, tmp_path):
    from safetensors.torch import load_file

    spec = dpo_spec(preference_file(tmp_path / "prefs.jsonl"), peft="none", loss_type="ipo")
    spec.data.test_size, spec.data.chat_format = 0.0, False  # plain-text pairs, no held-out split
    job = run_spec(spec)
    assert job.status == "succeeded", job.error
    base = load_file(f"{tiny_model.path}/model.safetensors")
    tuned = load_file(artifacts.job_dir(job.id) / "model" / "model.safetensors")
    assert any(not (base[k] == tuned[k]).all() for k in set(base) & set(tuned))
    with session_scope() as s:
        assert s.get(ModelRecord, job.output_model_id).kind == "full"


def test_dpo_refuses_too_few_pairs(tiny_model, tmp_path):
    with pytest.raises(StudioError, match="fewer than data.min_pairs"), session_scope(write=True) as s:
        queue.submit(s, dpo_spec(preference_file(tmp_path / "few.jsonl", 3)))
