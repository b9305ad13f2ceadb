"""SFT methods beyond the LoRA/full smoke runs, on the tiny model: prompt tuning trains only the soft prompt,
the trainable-parameter estimate (meta device) equals what the job logs, tokens/s is measured from num_tokens,
and early stopping ends a run on the eval loss."""

import json

import pytest
from factories import write_dialogues

from backend.db.engine import session_scope
from backend.db.tables import Job, ModelRecord
from jobs import artifacts, queue
from jobs.run import main as run_job
from jobs.specs import SFTSpec
from services.training import estimate_trainable


def write_dataset(folder, n=8, splits=("train", "test")):
    return write_dialogues(folder, dict.fromkeys(splits, n))


def sft_spec(data, **overrides) -> SFTSpec:
    values = {"name": "m", "base_model": "tiny", "dataset": str(data),
              "train": {"max_steps": 2, "batch_size": 2, "learning_rate": 5e-2, "warmup_ratio": 0.0,
                        "max_length": 128, "logging_steps": 1},
              "lora": {"r": 4, "alpha": 8, "dropout": 0.0}, "max_eval_examples": 0}
    values.update(overrides)
    return SFTSpec.model_validate(values)


def run(spec: SFTSpec) -> Job:
    with session_scope(write=True) as s:
        job_id = queue.submit(s, spec).id
    run_job(job_id)
    with session_scope() as s:
        return s.get(Job, job_id)


def metrics(job_id: int) -> dict[str, list[tuple[int, float]]]:
    out: dict[str, list] = {}
    with session_scope() as s:
        for m in queue.job_metrics(s, job_id):
            out.setdefault(m["key"], []).append((m["step"], m["value"]))
    return out


def test_prompt_tuning_trains_only_the_soft_prompt(tiny_model, tmp_path):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = sft_spec(write_dataset(tmp_path / "data"), peft="prompt_tuning",
                    prompt_tuning={"num_virtual_tokens": 6, "init": "text", "init_text": "Summarize the dialogue"})
    with session_scope() as s:
        estimate = estimate_trainable(s, spec)
    assert estimate["trainable"] == 6 * 64  # virtual tokens × hidden size
    job = run(spec)
    assert job.status == "succeeded", job.error
    out = artifacts.job_dir(job.id) / "model"
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["peft_type"] == "PROMPT_TUNING" and config["num_virtual_tokens"] == 6
    prompt = load_file(out / "adapter_model.safetensors")["prompt_embeddings"]
    assert prompt.shape == (6, 64)

    # it started from the embeddings of the init text (repeated to 6 tokens) and training moved it
    tok = AutoTokenizer.from_pretrained(tiny_model.path)
    ids = (tok("Summarize the dialogue")["input_ids"] * 6)[:6]
    base = AutoModelForCausalLM.from_pretrained(tiny_model.path)
    start = base.get_input_embeddings().weight[torch.tensor(ids)].detach()
    assert not torch.allclose(prompt.float(), start, atol=1e-6)

    m = metrics(job.id)
    assert m["trainable_params"][0][1] == estimate["trainable"]
    assert m["total_params"][0][1] == estimate["total"]
    with session_scope() as s:
        record = s.get(ModelRecord, job.output_model_id)
        assert record.kind == "adapter" and record.meta["method"] == "prompt_tuning"
        assert record.base_model_id == tiny_model.id and record.meta["spec"]["peft"] == "prompt_tuning"


def test_estimate_equals_logged_for_lora_and_full(tiny_model, tmp_path):
    data = write_dataset(tmp_path / "data")
    lora = sft_spec(data, lora={"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]})
    full = sft_spec(data, peft="none", train={"max_steps": 1, "batch_size": 2, "max_length": 64})
    with session_scope() as s:
        est_lora, est_full = estimate_trainable(s, lora), estimate_trainable(s, full)
    # 2 layers × (q: 4·(64+64) + v: 4·(64+32)) on the 2-layer hidden-64 model with 2 KV heads of 16
    assert est_lora["trainable"] == 2 * (4 * (64 + 64) + 4 * (64 + 32))
    assert est_lora["share"] == pytest.approx(est_lora["trainable"] / est_lora["total"])
    assert est_full["trainable"] == est_full["total"] and est_full["share"] == 1.0

    job = run(lora)
    assert job.status == "succeeded", job.error
    m = metrics(job.id)
    assert (m["trainable_params"][0][1], m["total_params"][0][1]) == (est_lora["trainable"], est_lora["total"])
    # tokens/s comes from TRL's num_tokens deltas over measured step time: one value per training log
    tps = m["train/tokens_per_second"]
    assert [step for step, _ in tps] == [1, 2] and all(v > 0 for _, v in tps)
    assert {"data/train_examples", "data/truncated_examples", "data/dropped_examples"} <= set(m)


def test_estimate_names_a_missing_lora_target(tiny_model, tmp_path):
    from backend.errors import StudioError

    spec = sft_spec(write_dataset(tmp_path / "data"), lora={"target_modules": ["query_key_value"]})
    with pytest.raises(StudioError, match="query_key_value.*q_proj"), session_scope() as s:
        estimate_trainable(s, spec)


def test_early_stopping_stops_on_eval_loss(tiny_model, tmp_path):
    # A threshold no evaluation can beat: the first evaluation sets the best loss, the next one counts
    # against patience 1, so training stops at step 2 of 20 and the best checkpoint becomes the output.
    data = write_dataset(tmp_path / "data", splits=("train", "validation", "test"))
    spec = sft_spec(data, max_eval_examples=4,
                    train={"max_steps": 20, "batch_size": 2, "max_length": 64, "eval_steps": 1,
                           "early_stopping_patience": 1, "early_stopping_threshold": 100.0, "logging_steps": 1})
    job = run(spec)
    assert job.status == "succeeded", job.error
    with session_scope() as s:
        meta = s.get(ModelRecord, job.output_model_id).meta
    assert meta["stopped_early"] is True and meta["global_step"] == 2
    assert meta["best_checkpoint"].rsplit("/", 1)[-1] in ("checkpoint-1", "checkpoint-2")  # the lower eval loss
    assert [step for step, _ in metrics(job.id)["eval_loss"]][:2] == [1, 2]


def test_early_stopping_without_validation_is_refused(tiny_model, tmp_path):
    from backend.errors import StudioError

    spec = sft_spec(write_dataset(tmp_path / "data"), max_eval_examples=8, validation_share=0.0,
                    train={"max_steps": 5, "eval_steps": 1, "early_stopping_patience": 2})
    with pytest.raises(StudioError, match="validation"), session_scope(write=True) as s:
        queue.submit(s, spec)
