"""Training services: merging a LoRA adapter into a standalone model (with lineage, and the refusals),
training-curve rows, job summaries, and queuing comparable evaluations."""

import json

import pytest
from sqlalchemy import select

from backend.db.engine import session_scope
from backend.db.tables import Job, ModelRecord
from backend.errors import StudioError
from backend.models import store
from backend.models.store import register_model
from jobs import queue
from jobs.specs import EvalSpec
from services import evaluation, training


def make_adapter(base_dir, out, method="lora"):
    """An adapter saved by peft; LoRA's B matrices are set non-zero so merging changes the weights."""
    import torch
    from peft import LoraConfig, PromptTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_dir)
    config = (LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
              if method == "lora" else PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4))
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.fill_(0.05)
    peft_model.save_pretrained(out)
    return out


@pytest.fixture
def adapter(tiny_model, tiny_model_dir, tmp_path):
    with session_scope(write=True) as s:
        job = Job(kind="sft", name="lora", status="succeeded", spec={"kind": "sft"})
        s.add(job)
        s.flush()
        record = register_model(s, "tiny-lora", str(make_adapter(tiny_model_dir, tmp_path / "lora")), kind="adapter",
                                source="job", base_model_id=tiny_model.id, job_id=job.id,
                                meta={"method": "lora", "trainable_params": 1024})
        return record.name


def test_merge_adapter_registers_a_standalone_full_model(adapter, tiny_model, tiny_model_dir, studio_env):
    from safetensors.torch import load_file

    from backend.models.loader import load_model
    from backend.models.store import resolve

    with session_scope(write=True) as s:
        merged = training.merge_adapter(s, adapter, "tiny-merged")
        merged_id, merged_path = merged.id, store.local_path(merged.path, merged.source)
    with session_scope() as s:
        record = s.get(ModelRecord, merged_id)
        assert (record.kind, record.base_model_id) == ("full", None)  # self-contained: the loader loads it alone
        assert record.meta["merged_from"] == "tiny-lora" and record.meta["base"] == "tiny"
        assert record.meta["lora"]["r"] == 2 and record.job_id is not None
        resolved = resolve(s, "tiny-merged")
    assert merged_path == str((studio_env / "models" / "tiny-merged").resolve())  # stored relative, found here
    files = {p.name for p in (studio_env / "models" / "tiny-merged").iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer_config.json"} <= files
    assert "adapter_config.json" not in files

    base = load_file(f"{tiny_model_dir}/model.safetensors")
    tuned = load_file(f"{merged_path}/model.safetensors")
    changed = {k for k in base if k in tuned and not (base[k] == tuned[k]).all()}
    assert changed and all("q_proj" in k or "v_proj" in k for k in changed)
    assert not any("lora" in k for k in tuned)
    assert not hasattr(load_model(resolved).model, "peft_config")


@pytest.mark.parametrize(("source", "out", "match"), [
    ("tiny", "x", "not an adapter"),
    ("tiny-lora", "tiny", "already exists"),
    ("tiny-lora", "has space", "no spaces"),
    ("nope", "x", "Unknown model"),
])
def test_merge_refusals(adapter, source, out, match):
    with pytest.raises(StudioError, match=match), session_scope(write=True) as s:
        training.merge_adapter(s, source, out)


def test_merge_refuses_soft_prompts_and_misfits(tiny_model, tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    narrow = tmp_path / "narrow"
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                 num_attention_heads=2, num_key_value_heads=1)).save_pretrained(narrow)
    with session_scope(write=True) as s:
        other = register_model(s, "narrow", str(narrow))
        register_model(s, "soft", str(make_adapter(tiny_model_dir, tmp_path / "pt", "prompt_tuning")),
                       kind="adapter", base_model_id=tiny_model.id)
        register_model(s, "misfit", str(make_adapter(tiny_model_dir, tmp_path / "lora")), kind="adapter",
                       base_model_id=other.id)
    with pytest.raises(StudioError, match="prompt-tuning adapter.*cannot be merged"), session_scope(write=True) as s:
        training.merge_adapter(s, "soft", "soft-merged")
    with pytest.raises(StudioError, match="does not fit base model 'narrow'.*q_proj is 32→32"), \
            session_scope(write=True) as s:
        training.merge_adapter(s, "misfit", "misfit-merged")
    with session_scope() as s:
        assert s.scalar(select(ModelRecord).where(ModelRecord.name.like("%merged"))) is None


def test_training_curves_and_summaries(studio_env):
    with session_scope(write=True) as s:
        jobs = [Job(kind="sft", name=n, status="succeeded", spec={"kind": "sft", "peft": p})
                for n, p in (("full", "none"), ("pt", "prompt_tuning"))]
        s.add_all(jobs)
        s.flush()
        ids = [j.id for j in jobs]
        queue.log_metrics(s, ids[0], 0, {"trainable_params": 100, "total_params": 100})
        for step in (1, 2):
            queue.log_metrics(s, ids[0], step, {"loss": 3.0 - step, "learning_rate": 1e-4, "grad_norm": 1.0,
                                                "train/tokens_per_second": 500.0, "epoch": 0.1})
        queue.log_metrics(s, ids[1], 1, {"loss": 2.5, "eval_loss": 2.7})
    with session_scope() as s:
        rows = training.training_curves(s, ids)
        summary = {r["name"]: r for r in training.training_summaries(s)}
    assert {(r["job"], r["key"]) for r in rows} >= {(ids[0], "loss"), (ids[0], "train/tokens_per_second"),
                                                    (ids[1], "eval_loss")}
    assert all(r["key"] != "epoch" for r in rows)
    assert {r["method"] for r in rows} == {"full", "prompt_tuning"}
    assert summary["full"]["loss"] == 1.0 and summary["full"]["step"] == 2
    assert summary["full"]["trainable_share"] == 1.0 and summary["full"]["tokens_per_second"] == 500.0
    with pytest.raises(StudioError, match="no job 999"), session_scope() as s:
        training.training_curves(s, [999])


def test_submit_comparison_queues_same_split_for_each_model(tiny_model, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "test.jsonl").write_text(json.dumps({"dialogue": "#Person1#: hi", "summary": "Hi."}) + "\n")
    spec = EvalSpec(dataset=str(data), max_examples=1, name="cmp")
    with session_scope(write=True) as s:
        register_model(s, "tiny-2", tiny_model.path)
        ids = evaluation.submit_comparison(s, spec, ["tiny", "tiny-2", "tiny"])
    with session_scope() as s:
        jobs = [s.get(Job, i) for i in ids]
    assert [j.spec["model"] for j in jobs] == ["tiny", "tiny-2"]
    assert {j.spec["dataset"] for j in jobs} == {str(data)} and jobs[0].name == "cmp tiny"
    with pytest.raises(StudioError, match="Unknown model 'gone'"), session_scope(write=True) as s:
        evaluation.submit_comparison(s, spec, ["tiny", "gone"])
    with session_scope() as s:
        assert len(queue.list_jobs(s)) == 2  # the failed call queued nothing


def test_lora_target_choices_are_the_models_layers(tiny_model):
    with session_scope() as s:
        choices = training.lora_target_choices(s, "tiny")
    assert {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"} <= set(choices)
    assert "lm_head" not in choices


def test_save_upload_keeps_earlier_files_and_refuses_other_types(studio_env):
    first = training.save_upload("my data!.JSONL", b'{"dialogue": "a", "summary": "b"}\n')
    assert first == studio_env / "datasets" / "uploads" / "my-data.jsonl"
    assert training.save_upload("my data!.JSONL", first.read_bytes()) == first  # same bytes: same file
    second = training.save_upload("my data!.jsonl", b'{"dialogue": "c", "summary": "d"}\n')
    assert second.name == "my-data-2.jsonl" and first.read_text().startswith('{"dialogue": "a"')
    assert set(training.uploaded_datasets()) == {str(first), str(second)}
    with pytest.raises(StudioError, match="JSONL, CSV or Parquet"):
        training.save_upload("notes.txt", b"hello")
    with pytest.raises(StudioError, match="is empty"):
        training.save_upload("empty.csv", b"")


def test_model_lineage_of_adapter_merged_and_base(adapter, tiny_model):
    with session_scope(write=True) as s:
        training.merge_adapter(s, adapter, "tiny-merged")
    with session_scope() as s:
        lora = training.model_lineage(s, adapter)
        merged = training.model_lineage(s, "tiny-merged")
        base = training.model_lineage(s, "tiny")
        with pytest.raises(StudioError, match="Unknown model"):
            training.model_lineage(s, "nope")
    assert (lora["kind"], lora["base"], lora["method"], lora["trainable_params"]) == ("adapter", "tiny", "lora", 1024)
    assert lora["spec"] == {"kind": "sft"}  # from its job
    assert (merged["kind"], merged["merged_from"], merged["base"], merged["method"]) == ("full", adapter, "tiny",
                                                                                         "merged")
    assert merged["trainable_params"] == 1024  # the adapter's
    assert (base["kind"], base["base"], base["job_id"], base["spec"]) == ("base", None, None, None)
