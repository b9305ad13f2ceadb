"""Tests for backend.metrics.overlap (ROUGE, BLEU), on the course's worked examples."""

from __future__ import annotations

import math

import pytest

from backend.errors import StudioError
from backend.metrics import overlap as ov

REF_COLD = "It is cold outside"
GEN_COLD = "It is very cold outside"
REF_TEA = "I am very happy to say that I am drinking a warm cup of tea"
GEN_TEA = "I am very happy that I am drinking a cup of tea"


# --------------------------------------------------------------------------------------------
# ROUGE
# --------------------------------------------------------------------------------------------


def test_rouge1_worked_example():
    s = ov.rouge_pair(GEN_COLD, REF_COLD)["rouge1"]
    assert s["recall"] == pytest.approx(1.0)
    assert s["precision"] == pytest.approx(0.8)
    assert s["fmeasure"] == pytest.approx(8 / 9, abs=1e-3)  # 0.889


def test_rouge2_worked_example():
    s = ov.rouge_pair(GEN_COLD, REF_COLD)["rouge2"]
    assert s["recall"] == pytest.approx(2 / 3)
    assert s["precision"] == pytest.approx(0.5)
    assert s["fmeasure"] == pytest.approx(0.571, abs=1e-3)


def test_rougeL_is_true_lcs():
    s = ov.rouge_pair(GEN_COLD, REF_COLD)["rougeL"]
    assert s["recall"] == pytest.approx(1.0)
    assert s["precision"] == pytest.approx(0.8)
    # Word order matters for LCS but not for ROUGE-1.
    shuffled = ov.rouge_pair("outside cold it is", REF_COLD)
    assert shuffled["rougeL"]["fmeasure"] < 1.0


def test_rouge1_clips_repeated_words():
    s = ov.rouge_pair("cold cold cold cold", REF_COLD)["rouge1"]
    assert s["precision"] == pytest.approx(0.25)
    assert s["recall"] == pytest.approx(0.25)


def test_rouge1_ignores_word_order():
    s = ov.rouge_pair("outside cold it is", REF_COLD)["rouge1"]
    assert s["precision"] == pytest.approx(1.0)
    assert s["recall"] == pytest.approx(1.0)


def test_rouge_scores_corpus_mean_and_per_example():
    out = ov.rouge_scores([GEN_COLD, "cold cold cold cold"], [REF_COLD, REF_COLD])
    assert set(ov.ROUGE_TYPES) <= set(out)
    assert len(out["per_example"]) == 2
    first, second = out["per_example"]
    assert first["rouge1"] == pytest.approx(8 / 9)
    assert first["rouge1_precision"] == pytest.approx(0.8)
    assert first["rouge2_recall"] == pytest.approx(2 / 3)
    assert second["rouge1_precision"] == pytest.approx(0.25)
    assert out["rouge1"] == pytest.approx((first["rouge1"] + second["rouge1"]) / 2)
    for name in ov.ROUGE_TYPES:
        assert 0.0 <= out[name] <= 1.0


def test_rouge_lsum_uses_sentences():
    ref = "The cat sat on the mat.\nThe dog is warm."
    pred = "The dog is warm. The cat sat on the mat."
    out = ov.rouge_scores([pred], [ref])
    # Sentence-level union LCS recovers the swapped sentences; whole-text LCS cannot.
    assert out["rougeLsum"] == pytest.approx(1.0)
    assert out["rougeL"] < 1.0


def test_split_sentences():
    assert ov.split_sentences("One. Two!  Three?\nFour") == ["One.", "Two!", "Three?", "Four"]
    assert ov.split_sentences("  \n ") == []


def test_rouge_errors():
    with pytest.raises(StudioError, match="differ in length"):
        ov.rouge_scores(["a"], ["a", "b"])
    with pytest.raises(StudioError, match="empty"):
        ov.rouge_scores([], [])


# --------------------------------------------------------------------------------------------
# BLEU
# --------------------------------------------------------------------------------------------


def test_bleu_worked_example():
    out = ov.bleu_score([GEN_TEA], [REF_TEA])
    assert out["bleu"] == pytest.approx(0.495, abs=1e-3)
    assert out["precisions"] == pytest.approx([1.0, 9 / 11, 6 / 10, 3 / 9])
    assert out["brevity_penalty"] == pytest.approx(math.exp(1 - 15 / 12))
    # The textbook formula, by hand.
    geo = math.exp(sum(math.log(p) for p in out["precisions"]) / 4)
    assert out["bleu"] == pytest.approx(geo * out["brevity_penalty"])
    assert len(out["per_example"]) == 1


def test_bleu_whitespace_tokenisation_agrees():
    assert ov.bleu_score([GEN_TEA], [REF_TEA], tokenize="none")["bleu"] == pytest.approx(0.4953, abs=1e-4)


def test_bleu_identical_and_disjoint():
    same = ov.bleu_score(["the cat sat on the mat"], ["The cat sat on the mat"])
    assert same["bleu"] == pytest.approx(1.0)
    assert same["per_example"] == [pytest.approx(1.0)]
    disjoint = ov.bleu_score(["alpha beta gamma delta"], ["one two three four"])
    assert disjoint["bleu"] == 0.0
    assert disjoint["per_example"] == [0.0]


def test_bleu_corpus_is_not_mean_of_sentences():
    preds = [GEN_TEA, "the cat sat on the mat"]
    refs = [REF_TEA, "the cat sat on the mat"]
    out = ov.bleu_score(preds, refs)
    assert len(out["per_example"]) == 2
    assert 0.0 <= out["bleu"] <= 1.0
    assert out["bleu"] != pytest.approx(sum(out["per_example"]) / 2)


def test_bleu_sentence_is_smoothed():
    # No 4-gram match: unsmoothed BLEU would be 0, the smoothed sentence score is not.
    out = ov.bleu_score(["the cat sat a the mat"], ["the cat sat on the mat"])
    assert out["bleu"] == 0.0
    assert 0.0 < out["per_example"][0] < 1.0


def test_bleu_errors():
    with pytest.raises(StudioError, match="differ in length"):
        ov.bleu_score(["a", "b"], ["a"])
    with pytest.raises(StudioError, match="empty"):
        ov.bleu_score([], [])


def test_input_checks():
    assert ov.check_texts(("a", "b")) == ["a", "b"]
    with pytest.raises(StudioError, match="not a single string"):
        ov.check_texts("abc")
    with pytest.raises(StudioError, match=r"references\[1\] is a int"):
        ov.check_pairs(["a", "b"], ["a", 2])  # type: ignore[list-item]
