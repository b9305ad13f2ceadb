"""Tests for backend.metrics.scorers (toxicity, perplexity, score_texts).

Everything runs offline: the models are tiny random Llamas built here with a word-level
tokenizer made from a small vocabulary.
"""

from __future__ import annotations

import math

import pytest

from backend.errors import StudioError
from backend.metrics import scorers as sc
from backend.metrics.overlap import bleu_score

REF_COLD = "It is cold outside"
GEN_COLD = "It is very cold outside"
REF_TEA = "I am very happy to say that I am drinking a warm cup of tea"
GEN_TEA = "I am very happy that I am drinking a cup of tea"

VOCAB_WORDS = [
    "the",
    "a",
    "cat",
    "dog",
    "sat",
    "on",
    "mat",
    "is",
    "cold",
    "outside",
    "it",
    "very",
    "warm",
    "cup",
    "of",
    "tea",
    "i",
    "am",
    "happy",
    "to",
    "say",
    "that",
    "drinking",
    "hello",
    "world",
    "what",
    "capital",
    "france",
    "paris",
    "answer",
    "question",
    "you",
    "are",
    "nice",
]


# --------------------------------------------------------------------------------------------
# Tiny offline models
# --------------------------------------------------------------------------------------------


def _tiny_tokenizer():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[BOS]", "[EOS]"]
    vocab = {tok: i for i, tok in enumerate(specials + VOCAB_WORDS)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(single="[BOS] $A", special_tokens=[("[BOS]", vocab["[BOS]"])])
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="[PAD]",
        unk_token="[UNK]",
        bos_token="[BOS]",
        eos_token="[EOS]",
        model_input_names=["input_ids", "attention_mask"],
    )


def _tiny_llama_config(vocab_size: int, **extra):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=128,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
        **extra,
    )


@pytest.fixture(scope="module")
def tokenizer():
    return _tiny_tokenizer()


@pytest.fixture(scope="module")
def causal_lm(tokenizer):
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(_tiny_llama_config(len(tokenizer))).eval()


def _save_classifier(path, id2label, tokenizer, **extra):
    import torch
    from transformers import LlamaForSequenceClassification

    torch.manual_seed(0)
    config = _tiny_llama_config(
        len(tokenizer),
        num_labels=len(id2label),
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
        **extra,
    )
    LlamaForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def toxic_model_dir(tmp_path_factory, tokenizer):
    path = tmp_path_factory.mktemp("toxic_clf")
    return _save_classifier(path, {0: "not_toxic", 1: "toxic"}, tokenizer)


# --------------------------------------------------------------------------------------------
# Toxicity
# --------------------------------------------------------------------------------------------


def test_toxicity_clean_vs_profane():
    scores = sc.toxicity_scores(
        ["Thank you for the lovely dinner, see you tomorrow.", "fuck you, you stupid piece of shit"]
    )
    assert all(isinstance(s, float) and 0.0 <= s <= 1.0 for s in scores)
    assert scores[0] < 0.3
    assert scores[1] > 0.7


def test_toxicity_empty():
    assert sc.toxicity_scores([]) == []


def test_neural_toxicity_probabilities(toxic_model_dir):
    texts = ["you are nice", "hello world", "what is the capital of france"]
    toxic = sc.neural_toxicity_scores(texts, toxic_model_dir, batch_size=2)
    clean = sc.neural_toxicity_scores(texts, toxic_model_dir, toxic_label="not_toxic")
    assert len(toxic) == len(texts)
    assert all(0.0 <= p <= 1.0 for p in toxic)
    for p, q in zip(toxic, clean, strict=True):
        assert p + q == pytest.approx(1.0, abs=1e-5)
    # Batching and padding do not change the scores.
    one_by_one = sc.neural_toxicity_scores(texts, toxic_model_dir, batch_size=1)
    assert one_by_one == pytest.approx(toxic, abs=1e-5)
    by_index = sc.neural_toxicity_scores(texts, toxic_model_dir, toxic_label=1)
    assert by_index == pytest.approx(toxic, abs=1e-6)


def test_neural_toxicity_ambiguous_labels(tmp_path, tokenizer):
    generic = _save_classifier(tmp_path / "generic", {0: "LABEL_0", 1: "LABEL_1"}, tokenizer)
    with pytest.raises(StudioError, match="toxic_label"):
        sc.neural_toxicity_scores(["hello"], generic)
    # Naming the class resolves it.
    assert len(sc.neural_toxicity_scores(["hello"], generic, toxic_label="LABEL_1")) == 1
    with pytest.raises(StudioError, match="not one of the model's classes"):
        sc.neural_toxicity_scores(["hello"], generic, toxic_label="toxic")


def test_toxic_label_index_by_name():
    assert sc.toxic_label_index({0: "nothate", 1: "hate"}, None) == 1
    assert sc.toxic_label_index({0: "non-toxic", 1: "Toxic"}, None) == 1
    assert sc.toxic_label_index({0: "neutral", 1: "offensive"}, None) == 1
    assert sc.toxic_label_index({0: "toxic", 1: "severe_toxic", 2: "insult"}, None) == 0
    with pytest.raises(StudioError, match="more than one"):
        sc.toxic_label_index({0: "hate", 1: "offensive", 2: "neither"}, None)
    with pytest.raises(StudioError, match="no class name"):
        sc.toxic_label_index({0: "negative", 1: "positive"}, None)


def test_neural_toxicity_bad_model(tmp_path):
    with pytest.raises(StudioError, match="could not be loaded"):
        sc.neural_toxicity_scores(["hello"], str(tmp_path / "missing"))


# --------------------------------------------------------------------------------------------
# score_texts
# --------------------------------------------------------------------------------------------


def test_score_texts_with_references():
    preds = [GEN_COLD, GEN_TEA]
    refs = [REF_COLD, REF_TEA]
    out = sc.score_texts(preds, refs)
    keys = {"rouge1", "rouge2", "rougeL", "rougeLsum", "bleu", "toxicity", "length_words"}
    assert keys | {"per_example"} == set(out)
    assert len(out["per_example"]) == 2
    row = out["per_example"][0]
    assert set(row) == keys | {"prediction", "reference"}
    assert row["prediction"] == GEN_COLD and row["reference"] == REF_COLD
    assert row["rouge1"] == pytest.approx(8 / 9)
    assert row["length_words"] == 5
    assert out["length_words"] == pytest.approx((5 + 12) / 2)
    assert out["bleu"] == pytest.approx(bleu_score(preds, refs)["bleu"])
    assert 0.0 <= out["toxicity"] <= 1.0


def test_score_texts_without_references_or_toxicity():
    out = sc.score_texts(["hello world", "a b c"], None, toxicity=False)
    for name in ("rouge1", "rouge2", "rougeL", "rougeLsum", "bleu", "toxicity"):
        assert out[name] is None
        assert all(row[name] is None for row in out["per_example"])
    assert all(row["reference"] is None for row in out["per_example"])
    assert out["length_words"] == pytest.approx(2.5)


def test_score_texts_custom_toxicity():
    out = sc.score_texts(["a", "b"], toxicity=lambda texts: [0.2] * len(texts))
    assert out["toxicity"] == pytest.approx(0.2)
    with pytest.raises(StudioError, match="returned 1 scores"):
        sc.score_texts(["a", "b"], toxicity=lambda texts: [0.5])


def test_score_texts_errors():
    with pytest.raises(StudioError, match="differ in length"):
        sc.score_texts(["a", "b"], ["a"])
    with pytest.raises(StudioError, match="empty"):
        sc.score_texts([])
    with pytest.raises(StudioError, match="empty"):
        sc.score_texts([], [])
    with pytest.raises(StudioError, match="not a string"):
        sc.score_texts(["a", None])  # type: ignore[list-item]
    # The error is also the project's user-facing error type.
    with pytest.raises(StudioError):
        sc.score_texts([])


# --------------------------------------------------------------------------------------------
# Perplexity
# --------------------------------------------------------------------------------------------


def test_perplexity_random_model(causal_lm, tokenizer):
    texts = ["the cat sat on the mat", "hello world", "i am happy to say that"]
    ppl = sc.perplexity(causal_lm, tokenizer, texts, batch_size=2)
    assert math.isfinite(ppl)
    assert 1.0 < ppl <= 2 * len(tokenizer)
    # Padding is masked: batch size does not change the result.
    assert sc.perplexity(causal_lm, tokenizer, texts, batch_size=1) == pytest.approx(ppl, rel=1e-4)


def test_perplexity_matches_hf_loss(causal_lm, tokenizer):
    import torch

    text = "the cat sat on the mat"
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        loss = causal_lm(input_ids=ids, labels=ids).loss
    assert sc.perplexity(causal_lm, tokenizer, [text]) == pytest.approx(math.exp(float(loss)), rel=1e-4)


def test_perplexity_with_prompts_scores_only_the_answer(causal_lm, tokenizer):
    import torch

    prompt, answer = "what is the capital of france", "paris"
    ppl = sc.perplexity(causal_lm, tokenizer, [answer], prompts=[prompt])
    ids = tokenizer(prompt + " " + answer, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = causal_lm(input_ids=ids).logits
    # "paris" is the last token; only its prediction (from the position before) counts.
    logp = torch.log_softmax(logits[0, -2], dim=-1)[ids[0, -1]]
    assert ppl == pytest.approx(math.exp(-float(logp)), rel=1e-4)
    assert ppl != pytest.approx(sc.perplexity(causal_lm, tokenizer, [prompt + " " + answer]))


def test_perplexity_errors(causal_lm, tokenizer):
    with pytest.raises(StudioError, match="empty"):
        sc.perplexity(causal_lm, tokenizer, [])
    with pytest.raises(StudioError, match="differ in length"):
        sc.perplexity(causal_lm, tokenizer, ["a", "b"], prompts=["p"])
    with pytest.raises(StudioError, match="no token to score"):
        sc.perplexity(causal_lm, tokenizer, [""])
