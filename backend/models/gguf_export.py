"""Export a Llama-architecture model folder as one GGUF file, the format llama.cpp and Ollama load.

What llama.cpp's own ``convert_hf_to_gguf.py`` writes for a Llama model, with the ``gguf`` package's helpers:
``general.*`` and ``llama.*`` hyperparameters, the byte-level BPE vocabulary (``tokenizer.ggml.model = gpt2``:
tokens, token types, merges, special-token ids, add-BOS/EOS flags, the chat template — via ``gguf.SpecialVocab``),
and the weights under llama.cpp's tensor names (``gguf.get_tensor_name_map``). Q and K projection rows are
permuted as llama.cpp expects (transformers' GGUF loader undoes it). Tied embeddings write no ``output.weight``.

Supported: ``LlamaForCausalLM`` folders (config.json + safetensors + a fast tokenizer.json) with plain RoPE, no
biases, and a byte-level BPE tokenizer whose pre-tokenizer llama.cpp knows (GPT-2, SmolLM, Llama 3); weights as
``f32``, ``f16`` or ``q8_0`` (1-D tensors stay f32; a matrix whose rows do not split into 32-blocks stays f16).
Anything else raises ``StudioError`` saying what the file cannot express. torch, transformers and gguf are
imported inside the functions.
"""

import json
import re
from pathlib import Path
from typing import Any

from backend.errors import StudioError

DTYPES = ("f16", "q8_0", "f32")
_TOKEN_PRE = {  # tokenizer.json pre-tokenizer shape -> llama.cpp's tokenizer.ggml.pre
    ("ByteLevel+regex",): "gpt-2",
    ("Digits:individual", "ByteLevel+regex"): "smollm",
    ("Split:llama3", "ByteLevel"): "llama-bpe",
}
_LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def export_gguf(model_dir: str | Path, out_path: str | Path, *, dtype: str = "f16", name: str | None = None) -> Path:
    """Write the model in ``model_dir`` to ``out_path`` as GGUF and return that path.

    Args:
        model_dir: a merged Hugging Face folder (config.json, ``*.safetensors``, tokenizer.json).
        out_path: the ``.gguf`` file to write (its folder is created; written to a ``.partial`` file first).
        dtype: ``f16`` (half the fp32 size, lossless for bf16/f16 models), ``q8_0`` (8-bit blocks of 32,
            about a quarter of fp32) or ``f32``.
        name: ``general.name`` in the file (default: the folder's name).

    The converted tensors are held in memory until the file is written (about the output file's size).

    Raises:
        StudioError: not a model folder, an adapter, an architecture or tokenizer GGUF cannot be written for here.
    """
    import gguf

    folder, out = Path(model_dir), Path(out_path)
    if dtype not in DTYPES:
        raise StudioError(f"Unknown GGUF type '{dtype}': choose one of {', '.join(DTYPES)}.")
    config = _checked_config(folder)
    tokens, token_types, pre, add_bos, add_eos = _vocabulary(folder, config["vocab_size"])
    ggml_type, file_type = {
        "f32": (gguf.GGMLQuantizationType.F32, gguf.LlamaFileType.ALL_F32),
        "f16": (gguf.GGMLQuantizationType.F16, gguf.LlamaFileType.MOSTLY_F16),
        "q8_0": (gguf.GGMLQuantizationType.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0),
    }[dtype]
    arch = gguf.MODEL_ARCH.LLAMA
    heads, kv_heads = config["num_attention_heads"], config.get("num_key_value_heads") or config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    rope_theta, rope_type, rope_factor = _rope(config)

    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    writer = gguf.GGUFWriter(partial, gguf.MODEL_ARCH_NAMES[arch])
    try:
        writer.add_type(gguf.GGUFType.MODEL)
        writer.add_name(name or folder.name)
        writer.add_context_length(config["max_position_embeddings"])
        writer.add_embedding_length(config["hidden_size"])
        writer.add_block_count(config["num_hidden_layers"])
        writer.add_feed_forward_length(config["intermediate_size"])
        writer.add_head_count(heads)
        writer.add_head_count_kv(kv_heads)
        writer.add_rope_freq_base(rope_theta)
        writer.add_layer_norm_rms_eps(config.get("rms_norm_eps", 1e-6))
        writer.add_file_type(file_type)
        writer.add_vocab_size(len(tokens))
        writer.add_rope_dimension_count(head_dim)
        if head_dim != config["hidden_size"] // heads:
            writer.add_key_length(head_dim)
            writer.add_value_length(head_dim)
        if rope_type == "linear":
            writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
            writer.add_rope_scaling_factor(rope_factor)

        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre(pre)
        writer.add_token_list(tokens)
        writer.add_token_types(token_types)
        special = gguf.SpecialVocab(folder, load_merges=True, n_vocab=len(tokens))
        special.add_special_token.update(bos=add_bos, eos=add_eos)  # what the HF tokenizer really does
        special.add_to_gguf(writer, quiet=True)
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)

        names = gguf.get_tensor_name_map(arch, config["num_hidden_layers"])
        tied = config.get("tie_word_embeddings", False)
        for hf_name, array in _tensors(folder):
            if hf_name.endswith("rotary_emb.inv_freq") or (tied and hf_name == "lm_head.weight"):
                continue
            gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
            if gguf_name is None:
                raise StudioError(f"{folder} holds a tensor '{hf_name}' that has no place in a llama.cpp Llama "
                                  "model: it is not a plain Llama checkpoint.")
            if hf_name.endswith("q_proj.weight"):
                array = _permute(array, heads)
            elif hf_name.endswith("k_proj.weight"):
                array = _permute(array, kv_heads)
            _add_tensor(writer, gguf_name, array, ggml_type)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    except BaseException:
        writer.close()
        partial.unlink(missing_ok=True)
        raise
    writer.close()
    partial.replace(out)
    return out


def _checked_config(folder: Path) -> dict[str, Any]:
    """config.json, refusing what this exporter cannot write (with what to do instead)."""
    if (folder / "adapter_config.json").is_file():
        raise StudioError(f"{folder} is a PEFT adapter: merge it into its base first (exporting a registered "
                          "adapter does this for you).")
    if not (folder / "config.json").is_file():
        raise StudioError(f"{folder} has no config.json: point at a transformers model folder.")
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    model_type = config.get("model_type", "unknown")
    architectures = config.get("architectures") or ["LlamaForCausalLM"]
    if model_type != "llama" or architectures != ["LlamaForCausalLM"]:
        raise StudioError(
            f"GGUF export supports Llama-architecture language models (LlamaForCausalLM: SmolLM2, TinyLlama, "
            f"Llama 2/3…); this is a {'/'.join(architectures)} ({model_type}) model. Use llama.cpp's "
            "convert_hf_to_gguf.py for other architectures.")
    if config.get("quantization_config"):
        raise StudioError("This model is stored quantized; export from its full-precision folder instead.")
    if config.get("attention_bias") or config.get("mlp_bias"):
        raise StudioError("This Llama model has attention or MLP biases, which this GGUF exporter does not write. "
                          "Use llama.cpp's convert_hf_to_gguf.py.")
    _, rope_type, _ = _rope(config)
    if rope_type not in ("default", "linear"):
        raise StudioError(f"This model uses '{rope_type}' RoPE scaling, which this GGUF exporter does not write "
                          "(plain and linear RoPE only). Use llama.cpp's convert_hf_to_gguf.py.")
    if not list(folder.glob("*.safetensors")):
        raise StudioError(f"{folder} has no .safetensors weights: save the model with save_pretrained first.")
    return config


def _rope(config: dict[str, Any]) -> tuple[float, str, float]:
    """(base frequency, scaling type, scaling factor), from transformers 5's rope_parameters or older keys."""
    params = config.get("rope_parameters") or config.get("rope_scaling") or {}
    theta = params.get("rope_theta", config.get("rope_theta", 10000.0))
    return float(theta), params.get("rope_type") or params.get("type") or "default", float(params.get("factor", 1.0))


def _pre_tokenizer_shape(spec: dict[str, Any] | None) -> tuple[str, ...]:
    """A tokenizer.json pre-tokenizer as the steps that decide how text splits (keys of ``_TOKEN_PRE``)."""
    parts = [] if not spec else spec.get("pretokenizers", []) if spec.get("type") == "Sequence" else [spec]
    shape = []
    for part in parts:
        kind = part.get("type")
        if kind == "ByteLevel":
            shape.append("ByteLevel+regex" if part.get("use_regex", True) else "ByteLevel")
        elif kind == "Digits":
            shape.append("Digits:individual" if part.get("individual_digits") else "Digits")
        elif kind == "Split":
            pattern = part.get("pattern", {}).get("Regex")
            shape.append("Split:llama3" if pattern == _LLAMA3_SPLIT else f"Split:{pattern}")
        else:
            shape.append(str(kind))
    return tuple(shape)


def _vocabulary(folder: Path, vocab_size: int) -> tuple[list[str], list[int], str, bool, bool]:
    """(tokens, token types, tokenizer.ggml.pre, adds BOS, adds EOS), as llama.cpp's converter reads them."""
    import gguf
    from transformers import AutoTokenizer

    spec_file = folder / "tokenizer.json"
    if not spec_file.is_file():
        raise StudioError(f"{folder} has no tokenizer.json (a fast tokenizer): GGUF export needs one.")
    spec = json.loads(spec_file.read_text(encoding="utf-8"))
    model, decoder = spec.get("model") or {}, spec.get("decoder") or {}
    if model.get("type") != "BPE" or model.get("byte_fallback") or decoder.get("type") != "ByteLevel":
        kind = "sentencepiece-style BPE" if model.get("byte_fallback") else model.get("type", "unknown")
        raise StudioError(f"This model's tokenizer is {kind}; GGUF export here writes byte-level BPE tokenizers "
                          "(GPT-2 style, as SmolLM2 and Llama 3 use). Use llama.cpp's convert_hf_to_gguf.py.")
    shape = _pre_tokenizer_shape(spec.get("pre_tokenizer"))
    if shape not in _TOKEN_PRE or spec.get("normalizer"):
        raise StudioError(f"This tokenizer splits text with {' + '.join(shape) or 'no pre-tokenizer'}"
                          f"{' after a normalizer' if spec.get('normalizer') else ''}, which llama.cpp has no "
                          "name for here (known: GPT-2, SmolLM, Llama 3). Use llama.cpp's convert_hf_to_gguf.py.")

    tokenizer = AutoTokenizer.from_pretrained(folder)
    vocab = tokenizer.get_vocab()
    if max(vocab.values()) >= vocab_size:
        raise StudioError(f"The tokenizer has ids up to {max(vocab.values())} but the model's embedding has "
                          f"{vocab_size} rows: the folder's tokenizer does not belong to its weights.")
    by_id = {i: token for token, i in vocab.items()}
    added = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for i in range(vocab_size):
        token = by_id.get(i)
        if token is None:  # an embedding row no token uses (a padded vocabulary)
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in added:  # llama.cpp matches these whole, in raw (not byte-level) spelling
            if not added[i].normalized:
                token = tokenizer.decode(tokenizer.encode(token, add_special_tokens=False))
            special = added[i].special or bool(re.fullmatch(r"<\|.*\|>", token))
            tokens.append(token)
            types.append(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(token)
            types.append(gguf.TokenType.NORMAL)
    probe = tokenizer("a")["input_ids"]
    add_bos = tokenizer.bos_token_id is not None and probe[:1] == [tokenizer.bos_token_id]
    add_eos = tokenizer.eos_token_id is not None and probe[-1:] == [tokenizer.eos_token_id]
    return tokens, [int(t) for t in types], _TOKEN_PRE[shape], add_bos, add_eos


def _tensors(folder: Path):
    """(name, float32 numpy array) for every tensor of every safetensors shard, one at a time."""
    import torch
    from safetensors import safe_open

    for shard in sorted(folder.glob("*.safetensors")):
        with safe_open(str(shard), framework="pt") as fh:
            for name in fh.keys():  # noqa: SIM118 (safe_open is not a mapping)
                yield name, fh.get_tensor(name).to(torch.float32).numpy()


def _permute(weights, n_head: int):
    """llama.cpp's row order for Q/K (rotary pairs interleaved per head); transformers' GGUF loader reverses it."""
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def _add_tensor(writer, name: str, array, ggml_type) -> None:
    import gguf

    if array.ndim == 1 or ggml_type == gguf.GGMLQuantizationType.F32:
        writer.add_tensor(name, array.astype("float32"))
        return
    if ggml_type == gguf.GGMLQuantizationType.Q8_0 and array.shape[-1] % 32:
        ggml_type = gguf.GGMLQuantizationType.F16  # rows that do not split into Q8_0 blocks (llama.cpp does the same)
    data = gguf.quants.quantize(array, ggml_type)
    writer.add_tensor(name, data, raw_dtype=None if ggml_type == gguf.GGMLQuantizationType.F16 else ggml_type)
