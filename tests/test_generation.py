"""Decoding semantics of the generation engine, on the tiny random model (fast, offline)."""

import pytest

from backend.errors import StudioError
from backend.generation.decoding import DecodingConfig
from backend.generation.engine import cut_at_stop, format_prompt, generate, stream
from backend.models.loader import load_model


@pytest.fixture
def loaded(tiny_model):
    return load_model(tiny_model, device="cpu")


PROMPT = "Summarize the following conversation."


def texts(loaded, cfg, prompts=(PROMPT,)):
    return [r.text for r in generate(loaded, list(prompts), cfg)[0]]


def test_top_k_one_equals_greedy(loaded):
    greedy = texts(loaded, DecodingConfig(max_new_tokens=12))
    top1 = texts(loaded, DecodingConfig(do_sample=True, top_k=1, max_new_tokens=12, seed=5))
    assert top1 == greedy


def test_fixed_seed_reproduces_and_other_seed_differs(loaded):
    cfg = DecodingConfig(do_sample=True, temperature=1.5, max_new_tokens=16, num_return_sequences=3, seed=7)
    first, again = texts(loaded, cfg), texts(loaded, cfg)
    other = texts(loaded, cfg.model_copy(update={"seed": 8}))
    assert first == again
    assert first != other


def test_temperature_zero_is_greedy(loaded):
    assert texts(loaded, DecodingConfig(do_sample=True, temperature=0.0, max_new_tokens=10)) == texts(
        loaded, DecodingConfig(max_new_tokens=10))


def test_stop_sequence_ends_completion_and_is_not_returned(loaded):
    full = texts(loaded, DecodingConfig(max_new_tokens=24))[0]
    assert len(full) > 6
    stop = full[3:6]
    cut = texts(loaded, DecodingConfig(max_new_tokens=24, stop=[stop]))[0]
    assert cut == full[: full.find(stop)]
    assert stop not in cut
    result = generate(loaded, [PROMPT], DecodingConfig(max_new_tokens=24, stop=[stop]))[0][0]
    assert result.finish_reason == "stop"


def test_stream_matches_batch_and_hides_stop(loaded):
    cfg = DecodingConfig(max_new_tokens=20)
    full = texts(loaded, cfg)[0]
    chunks = list(stream(loaded, PROMPT, cfg))
    assert "".join(c.delta for c in chunks) == full
    assert chunks[-1].result.text == full and chunks[-1].result.first_token_seconds is not None
    stop = full[4:7]
    chunks = list(stream(loaded, PROMPT, cfg.model_copy(update={"stop": [stop]})))
    assert "".join(c.delta for c in chunks) == full[: full.find(stop)]


def test_batched_equals_one_by_one_greedy(loaded):
    prompts = [PROMPT, "The capital of France is", "cake donut"]
    cfg = DecodingConfig(max_new_tokens=8)
    batched = [r[0].text for r in generate(loaded, prompts, cfg, batch_size=3)]
    single = [generate(loaded, [p], cfg)[0][0].text for p in prompts]
    assert batched == single


def test_penalties_change_distribution_as_defined(loaded):
    import torch

    from backend.generation.penalties import FrequencyPresencePenalty

    scores = torch.zeros(1, 5)
    ids = torch.tensor([[9, 9, 1, 1, 1, 2]])  # prompt = first 2 tokens; generated: 1,1,1,2
    out = FrequencyPresencePenalty(0.5, 0.25, prompt_len=2)(ids, scores.clone())
    assert out[0].tolist() == pytest.approx([0.0, -1.75, -0.75, 0.0, 0.0])
    base = texts(loaded, DecodingConfig(max_new_tokens=20))[0]
    penalized = texts(loaded, DecodingConfig(max_new_tokens=20, frequency_penalty=2.0, presence_penalty=2.0))[0]
    assert base != penalized


def test_num_return_sequences_and_beams(loaded):
    res = generate(loaded, [PROMPT], DecodingConfig(num_beams=4, num_return_sequences=2, max_new_tokens=6))[0]
    assert len(res) == 2


def test_contradictory_and_invalid_settings():
    with pytest.raises(ValueError, match="num_beams"):
        DecodingConfig(num_return_sequences=3, num_beams=2)
    with pytest.raises(ValueError, match="min_new_tokens"):
        DecodingConfig(min_new_tokens=10, max_new_tokens=5)
    with pytest.raises(ValueError):
        DecodingConfig(top_p=0)
    with pytest.raises(ValueError, match="empty"):
        DecodingConfig(stop=[""])


def test_prompt_past_context_window_and_empty_prompt(loaded):
    with pytest.raises(StudioError, match="context window"):
        generate(loaded, ["cake " * 2000], DecodingConfig(max_new_tokens=10))
    with pytest.raises(StudioError, match="empty"):
        generate(loaded, [""], DecodingConfig(max_new_tokens=10))


def test_chat_format_uses_template(loaded):
    text = format_prompt(loaded.tokenizer, "hi", chat=True, system="be brief")
    assert text.startswith("<|im_start|>system\nbe brief") and text.endswith("<|im_start|>assistant\n")
    assert format_prompt(loaded.tokenizer, "hi", chat=False) == "hi"


def test_cut_at_stop_earliest():
    assert cut_at_stop("abc STOP def END", ["END", "STOP"]) == ("abc ", True)
    assert cut_at_stop("abc", ["x"]) == ("abc", False)
