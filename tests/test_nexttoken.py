"""Next-token math on the course's cake/donut/banana example, and what each decoding control does to a real model."""

import numpy as np
import pytest

from backend.errors import StudioError
from backend.generation import nexttoken as nt
from backend.generation.decoding import PRESET_HELP, PRESETS, DecodingConfig, decoding_warnings

LABELS, PROBS = nt.toy_distribution()  # cake .20, donut .10, banana .02, apple .01, the rest ≤ .01 each


def kept(probs) -> list[str]:
    return [LABELS[i] for i in np.flatnonzero(probs)]


def test_toy_distribution_is_a_full_vocabulary():
    assert PROBS.sum() == pytest.approx(1.0)
    assert LABELS[:4] == ["cake", "donut", "banana", "apple"] and PROBS[4:].max() <= 0.01 + 1e-12


def test_top_k_three_keeps_cake_donut_banana_and_never_apple():
    out = nt.apply_top_k(PROBS, 3)
    assert kept(out) == ["cake", "donut", "banana"]
    assert out[:3] == pytest.approx(np.array([0.20, 0.10, 0.02]) / 0.32)  # renormalised, same ratios
    assert nt.apply_top_k(PROBS, 0) is not None and (nt.apply_top_k(PROBS, 0) == PROBS).all()


def test_top_p_hf_convention_smallest_set_reaching_p():
    assert kept(nt.apply_top_p(PROBS, 0.3)) == ["cake", "donut"]  # 0.2 + 0.1 reaches 0.3: banana not needed
    assert kept(nt.apply_top_p(PROBS, 0.31)) == ["cake", "donut", "banana"]
    assert kept(nt.apply_top_p(PROBS, 0.05)) == ["cake"]  # never empty
    assert nt.apply_top_p(PROBS, 0.3)[:2] == pytest.approx([2 / 3, 1 / 3])
    assert (nt.apply_top_p(PROBS, 1.0) == PROBS).all()


def test_temperature_peaks_flattens_and_one_is_unchanged():
    cold, hot = nt.apply_temperature(PROBS, 0.5), nt.apply_temperature(PROBS, 2.0)
    assert cold[0] > PROBS[0] > hot[0]
    assert nt.entropy_bits(cold) < nt.entropy_bits(PROBS) < nt.entropy_bits(hot)
    assert nt.apply_temperature(PROBS, 1.0) == pytest.approx(PROBS)
    assert kept(nt.apply_temperature(PROBS, 0)) == ["cake"]  # T=0 is greedy
    assert cold[0] / cold[1] == pytest.approx((0.2 / 0.1) ** 2)  # logits / T ⇒ ratios ** (1/T)


def test_min_p_and_typical_p():
    assert kept(nt.apply_min_p(PROBS, 0.1)) == ["cake", "donut", "banana"]  # ≥ 0.1 × 0.20 = 0.02
    assert kept(nt.apply_min_p(PROBS, 0.5)) == ["cake", "donut"]
    assert nt.apply_typical_p(PROBS, 0.5).sum() == pytest.approx(1.0)
    assert (nt.apply_typical_p(PROBS, 1.0) == PROBS).all()


def test_apply_controls_stages_in_transformers_order_and_explain_table():
    stages = nt.apply_controls(PROBS, temperature=0.7, top_k=3, top_p=0.9)
    assert [n for n, _ in stages] == ["temperature", "top_k", "top_p"]
    out = nt.explain_controls(top_k=3, top_n=5)
    assert out["stages"] == ["model", "top_k"] and out["kept"]["top_k"] == 3
    assert out["table"][0] == {"token": "cake", "token_id": 0, "model": 0.2, "top_k": 0.625}
    assert out["table"][3]["token"] == "apple" and out["table"][3]["top_k"] == 0


def test_warpers_match_transformers_on_random_logits():
    import torch
    from transformers import (
        MinPLogitsWarper,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
        TypicalLogitsWarper,
    )

    logits = torch.randn(1, 300, generator=torch.Generator().manual_seed(0)) * 3
    probs = nt.softmax(logits[0].numpy())
    cases = [(TopKLogitsWarper(7), nt.apply_top_k, 7), (TopPLogitsWarper(0.8), nt.apply_top_p, 0.8),
             (MinPLogitsWarper(0.05), nt.apply_min_p, 0.05), (TypicalLogitsWarper(0.7), nt.apply_typical_p, 0.7),
             (TemperatureLogitsWarper(0.6), nt.apply_temperature, 0.6)]
    for warper, ours, value in cases:
        expected = torch.softmax(warper(None, logits.clone()), -1)[0].double().numpy()
        assert ours(probs, value) == pytest.approx(expected, abs=1e-6), type(warper).__name__


def test_help_texts_carry_the_worked_examples():
    fields = DecodingConfig.model_fields
    assert "apple is never" in fields["top_k"].description and "cake (0.20) + donut (0.10)" in fields["top_p"].description
    assert set(PRESET_HELP) == set(PRESETS)
    assert any("ignore" in w for w in decoding_warnings(DecodingConfig(top_k=5)))
    assert decoding_warnings(DecodingConfig()) == []


# ----------------------------------------------------------------------------------------- on a model
@pytest.fixture
def loaded(tiny_model):
    from backend.models.loader import load_model

    return load_model(tiny_model, device="cpu")


PROMPT = "Summarize the following conversation."


def gen_ids(loaded, cfg: DecodingConfig, prompt: str = PROMPT) -> tuple[list[int], int]:
    """Generated ids through exactly the kwargs the engine passes to ``model.generate``."""
    import torch

    from backend.generation.engine import generate_kwargs

    enc = loaded.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        out = loaded.model.generate(**enc, **generate_kwargs(loaded, cfg, enc.input_ids.shape[1]))
    return out[0].tolist(), enc.input_ids.shape[1]


def test_next_token_candidates_greedy_token_follows_the_continuation(loaded):
    from backend.generation.engine import generate

    cfg = DecodingConfig(do_sample=True, temperature=0.7, top_k=5, top_p=0.9, max_new_tokens=8)
    greedy_ids, plen = gen_ids(loaded, DecodingConfig(max_new_tokens=3))
    view = nt.next_token_candidates(loaded, PROMPT, 2, cfg, top_n=6)
    assert view["table"][0]["token_id"] == greedy_ids[plen + 2]  # the greedy pick at step 2
    assert [s["name"] for s in view["stages"]] == ["model", "temperature", "top_k", "top_p"]
    assert view["kept"]["top_k"] == 5 and view["kept"]["top_p"] <= 5
    assert len(view["before"]) == 6 and sum(r["prob"] for r in view["after"]) == pytest.approx(1.0, abs=1e-4)
    assert view["context"] == loaded.tokenizer.decode(greedy_ids[plen:plen + 2])
    assert generate(loaded, [PROMPT], DecodingConfig(max_new_tokens=3))[0][0].text.startswith(view["context"])
    with pytest.raises(StudioError, match="step"):
        nt.next_token_candidates(loaded, PROMPT, -1, cfg)


def test_repetition_penalty_lowers_every_token_of_the_text(loaded):
    view = nt.next_token_candidates(loaded, PROMPT, 0, DecodingConfig(repetition_penalty=2.0), top_n=30)
    seen = set(loaded.tokenizer(PROMPT, add_special_tokens=False).input_ids)
    assert [s["name"] for s in view["stages"]] == ["model", "penalties"]
    for row in view["table"]:
        assert (row["penalties"] < row["model"]) == (row["token_id"] in seen)


def test_penalties_apply_before_sampling_filters(loaded):
    """Additive penalties act on the logits before top-k, as in the OpenAI API: top-k=1 = greedy *with* them."""
    from backend.generation.engine import generate

    pen = {"frequency_penalty": 2.0, "presence_penalty": 2.0, "max_new_tokens": 16}
    sampled = generate(loaded, [PROMPT], DecodingConfig(do_sample=True, top_k=1, seed=1, **pen))[0][0].text
    assert sampled == generate(loaded, [PROMPT], DecodingConfig(**pen))[0][0].text


def test_no_repeat_ngram_size_forbids_repeated_ngrams(loaded):
    base, _ = gen_ids(loaded, DecodingConfig(max_new_tokens=20))
    bigrams = [tuple(base[i:i + 2]) for i in range(len(base) - 1)]
    assert len(bigrams) > len(set(bigrams))  # the random model loops without the control
    ids, _ = gen_ids(loaded, DecodingConfig(max_new_tokens=20, no_repeat_ngram_size=2))
    grams = [tuple(ids[i:i + 2]) for i in range(len(ids) - 1)]
    assert len(grams) == len(set(grams))


def test_min_p_near_one_is_greedy(loaded):
    from backend.generation.engine import generate

    greedy = generate(loaded, [PROMPT], DecodingConfig(max_new_tokens=12))[0][0].text
    hot = DecodingConfig(do_sample=True, temperature=1.5, min_p=0.999, max_new_tokens=12, seed=3)
    assert generate(loaded, [PROMPT], hot)[0][0].text == greedy


def test_min_new_tokens_holds_back_end_of_sequence(tiny_model_dir):
    """A model that wants to stop at once (EOS logit boosted) must write min_new_tokens first."""
    from transformers import AutoModelForCausalLM

    from backend.generation.engine import generate
    from backend.models.loader import LoadedModel, load_tokenizer

    tok = load_tokenizer(str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    eos = tok.eos_token_id
    model.lm_head.register_forward_hook(lambda _m, _i, out: out.index_add(
        -1, out.new_tensor([eos]).long(), out.new_full((*out.shape[:-1], 1), 50.0)))
    loaded = LoadedModel("eos-happy", model, tok, "cpu", "float32", [eos])
    assert generate(loaded, [PROMPT], DecodingConfig(max_new_tokens=10))[0][0].completion_tokens == 1
    res = generate(loaded, [PROMPT], DecodingConfig(max_new_tokens=10, min_new_tokens=6))[0][0]
    assert res.completion_tokens == 7 and res.finish_reason == "stop"  # 6 forced tokens, then EOS
    view = nt.next_token_candidates(loaded, PROMPT, 0, DecodingConfig(min_new_tokens=3), top_n=3)
    assert view["table"][0]["model"] > 0.99 and view["table"][0]["penalties"] == 0  # EOS suppressed at step 0
    with pytest.raises(StudioError, match="ends"):
        nt.next_token_candidates(loaded, PROMPT, 3, DecodingConfig(), top_n=3)
