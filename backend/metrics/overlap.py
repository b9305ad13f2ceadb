"""Reference-overlap metrics: ROUGE and BLEU of generated texts against references.

Pure text comparison (no model, no Streamlit, no database), offline. ``rouge_score`` and
``sacrebleu`` are imported inside the functions that need them. The input checks
(:func:`check_texts`, :func:`check_pairs`) are shared with :mod:`backend.metrics.scorers`.

Conventions
-----------
ROUGE
    Computed with Google's ``rouge_score`` package (the reference implementation) with
    ``use_stemmer=True``: text is lower-cased, split on non-alphanumeric characters and
    Porter-stemmed. ROUGE-N counts are *clipped* (an n-gram of the prediction matches at most
    as many times as it occurs in the reference). ROUGE-L is the true longest common
    subsequence (LCS) over the whole text, as ``rouge_score`` implements it; ROUGE-Lsum is the
    summary-level union-LCS over sentences, with sentences split here (on new lines and on
    ``.``, ``!``, ``?`` followed by white space) rather than through nltk, which would need a
    download. Corpus-level numbers are the mean of the per-example F-measures (the same
    aggregation as Hugging Face ``evaluate``'s ``rouge`` with ``use_aggregator=False`` then
    averaged), on a 0-1 scale.

    ``rouge_score``'s LCS table is quadratic in pure Python (one 3,000-word text took 17 s). ROUGE-L here
    computes the same LCS length bit-parallel (Hyyrö 2004: one big-integer step per token, milliseconds for
    thousands of words) on the whole text; ROUGE-Lsum, which needs the LCS tokens themselves, reads at most the
    first ``ROUGE_L_MAX_TOKENS`` (1,000) tokens of each text. Summaries are far shorter than the cap, so scores
    on real data are those of ``rouge_score``.
BLEU
    Standard corpus BLEU-4 (Papineni et al. 2002): uniform weights over the clipped 1- to
    4-gram precisions, geometric mean, times the brevity penalty
    ``exp(1 - ref_len / hyp_len)`` when the prediction is shorter. Computed with
    ``sacrebleu.metrics.BLEU(lowercase=True, tokenize="13a", smooth_method="none")`` and
    reported on a 0-1 scale (sacrebleu reports 0-100). ``13a`` splits punctuation off words
    and otherwise splits on white space, so on plain words it *is* white-space tokenisation;
    the course example (reference "I am very happy to say that I am drinking a warm cup of
    tea", prediction "I am very happy that I am drinking a cup of tea") gives 0.4953.
    Corpus BLEU is *not* the mean of sentence BLEUs: n-gram counts and lengths are summed over
    the corpus first. Per-example BLEU is sentence BLEU with sacrebleu's ``exp`` smoothing and
    effective order (sacrebleu's recommended sentence-level setting), so short examples do not
    collapse to 0 because they have no 4-gram match.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from backend.errors import StudioError

__all__ = [
    "ROUGE_TYPES",
    "bleu_score",
    "check_pairs",
    "check_texts",
    "lcs_length",
    "rouge_pair",
    "rouge_scores",
    "split_sentences",
]

ROUGE_TYPES: tuple[str, ...] = ("rouge1", "rouge2", "rougeL", "rougeLsum")
"""The ROUGE variants every function here reports, in this order."""

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
ROUGE_L_MAX_TOKENS = 1000
"""ROUGE-Lsum reads at most this many tokens of each text (its union-LCS is quadratic); the others read all."""
_TOKEN = re.compile(r"[a-z0-9]+", re.IGNORECASE)  # rouge_score's tokens: runs of ASCII letters and digits


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------


def check_texts(texts: Sequence[str], name: str = "predictions") -> list[str]:
    """Return ``texts`` as a list of strings, or raise if it is empty or not all strings."""
    if isinstance(texts, str):
        raise StudioError(f"{name} must be a list of strings, not a single string.")
    texts = list(texts)
    if not texts:
        raise StudioError(f"{name} is empty: give at least one text to score.")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise StudioError(f"{name}[{i}] is a {type(text).__name__}, not a string: every text must be a str.")
    return texts


def check_pairs(predictions: Sequence[str], references: Sequence[str]) -> tuple[list[str], list[str]]:
    """Check that predictions and references are non-empty string lists of equal length."""
    preds = check_texts(predictions, "predictions")
    refs = check_texts(references, "references")
    if len(preds) != len(refs):
        raise StudioError(
            f"predictions and references differ in length ({len(preds)} vs {len(refs)}): "
            "each prediction needs exactly one reference."
        )
    return preds, refs


# --------------------------------------------------------------------------------------------
# ROUGE
# --------------------------------------------------------------------------------------------


def split_sentences(text: str) -> list[str]:
    """Split a text into sentences for ROUGE-Lsum, without nltk.

    Splits on new lines first, then after ``.``, ``!`` or ``?`` followed by white space.

    Args:
        text: Any text.

    Returns:
        The non-empty, stripped sentences, in order (an empty list for blank text).
    """
    sentences: list[str] = []
    for line in text.splitlines():
        sentences.extend(part.strip() for part in _SENTENCE_END.split(line) if part.strip())
    return sentences


def _rouge_scorer() -> Any:
    from rouge_score import rouge_scorer

    return (rouge_scorer.RougeScorer(["rouge1", "rouge2"], use_stemmer=True),
            rouge_scorer.RougeScorer(["rougeLsum"], use_stemmer=True))


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token lists, bit-parallel (Hyyrö 2004).

    Equal to the last cell of the classic dynamic-programming table, in ``len(b)`` big-integer steps.

    Example:
        >>> lcs_length("the cat sat on the mat".split(), "the cat on a mat".split())
        4
    """
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return 0
    masks: dict[str, int] = {}
    for i, token in enumerate(b):
        masks[token] = masks.get(token, 0) | (1 << i)
    full = (1 << len(b)) - 1
    v = full
    for token in a:
        u = v & masks.get(token, 0)
        v = ((v + u) | (v - u)) & full
    return len(b) - v.bit_count()


def _rouge_l(tokenizer: Any, prediction: str, reference: str) -> Any:
    from rouge_score import scoring

    ref, pred = tokenizer.tokenize(reference), tokenizer.tokenize(prediction)
    if not ref or not pred:
        return scoring.Score(precision=0, recall=0, fmeasure=0)
    lcs = lcs_length(ref, pred)
    precision, recall = lcs / len(pred), lcs / len(ref)
    return scoring.Score(precision=precision, recall=recall, fmeasure=scoring.fmeasure(precision, recall))


def _lcs_window(text: str, max_tokens: int = ROUGE_L_MAX_TOKENS) -> str:
    """``text`` cut after its ``max_tokens``-th token (as rouge_score tokenizes), for the quadratic LCS."""
    for count, match in enumerate(_TOKEN.finditer(text), start=1):
        if count == max_tokens:
            return text[:match.end()]
    return text


def _rouge_one(scorer: Any, prediction: str, reference: str) -> dict[str, Any]:
    # rouge_score's signature is score(target, prediction): the reference comes first.
    # For rougeLsum it splits summaries on "\n", so put one sentence per line.
    ngrams, lsum_scorer = scorer
    scores = ngrams.score(reference, prediction)
    scores["rougeL"] = _rouge_l(ngrams._tokenizer, prediction, reference)
    reference, prediction = _lcs_window(reference), _lcs_window(prediction)
    lsum = lsum_scorer.score("\n".join(split_sentences(reference)), "\n".join(split_sentences(prediction)))
    scores["rougeLsum"] = lsum["rougeLsum"]
    return scores


def rouge_pair(prediction: str, reference: str) -> dict[str, dict[str, float]]:
    """ROUGE precision, recall and F-measure of one prediction against one reference.

    Args:
        prediction: The generated text.
        reference: The reference ("gold") text.

    Returns:
        ``{rouge_type: {"precision": p, "recall": r, "fmeasure": f}}`` for each of
        ``rouge1``, ``rouge2``, ``rougeL`` and ``rougeLsum`` (0-1 scale).

    Example:
        >>> s = rouge_pair("It is very cold outside", "It is cold outside")
        >>> round(s["rouge1"]["precision"], 3), s["rouge1"]["recall"]
        (0.8, 1.0)
    """
    scores = _rouge_one(_rouge_scorer(), prediction, reference)
    return {
        name: {
            "precision": float(scores[name].precision),
            "recall": float(scores[name].recall),
            "fmeasure": float(scores[name].fmeasure),
        }
        for name in ROUGE_TYPES
    }


def rouge_scores(predictions: Sequence[str], references: Sequence[str]) -> dict[str, Any]:
    """ROUGE-1, ROUGE-2, ROUGE-L and ROUGE-Lsum of predictions against references.

    Args:
        predictions: Generated texts.
        references: One reference per prediction, in the same order.

    Returns:
        ``{"rouge1": f, "rouge2": f, "rougeL": f, "rougeLsum": f, "per_example": [...]}`` where
        each corpus value is the mean F-measure over examples (0-1 scale) and each
        ``per_example`` entry has the four F-measures under the same keys plus
        ``"<type>_precision"`` and ``"<type>_recall"`` (e.g. ``"rouge1_precision"``).

    Raises:
        StudioError: if the lists are empty, hold non-strings or differ in length.
    """
    preds, refs = check_pairs(predictions, references)
    scorer = _rouge_scorer()
    per_example: list[dict[str, float]] = []
    for pred, ref in zip(preds, refs, strict=True):
        scores = _rouge_one(scorer, pred, ref)
        row: dict[str, float] = {name: float(scores[name].fmeasure) for name in ROUGE_TYPES}
        for name in ROUGE_TYPES:
            row[f"{name}_precision"] = float(scores[name].precision)
            row[f"{name}_recall"] = float(scores[name].recall)
        per_example.append(row)
    result: dict[str, Any] = {name: sum(row[name] for row in per_example) / len(per_example) for name in ROUGE_TYPES}
    result["per_example"] = per_example
    return result


# --------------------------------------------------------------------------------------------
# BLEU
# --------------------------------------------------------------------------------------------


def _unit(percent: float) -> float:
    """sacrebleu's 0-100 score on a 0-1 scale, clamped against float round-off (1.0000000004)."""
    return min(1.0, max(0.0, float(percent) / 100.0))


def bleu_score(
    predictions: Sequence[str],
    references: Sequence[str],
    *,
    lowercase: bool = True,
    tokenize: str = "13a",
) -> dict[str, Any]:
    """Corpus BLEU-4 plus smoothed sentence BLEU for each example.

    Corpus BLEU: uniform weights, geometric mean of the clipped 1- to 4-gram precisions
    (counts summed over the corpus) times the brevity penalty; no smoothing, so it is 0 when
    some n-gram order has no match at all. Computed by ``sacrebleu``.

    Args:
        predictions: Generated texts.
        references: One reference per prediction, in the same order.
        lowercase: Compare case-insensitively (the default, as in the course example).
        tokenize: A sacrebleu tokenizer name. ``"13a"`` (default, the WMT standard) splits
            punctuation off words and otherwise splits on white space; ``"none"`` is pure
            white-space splitting.

    Returns:
        ``{"bleu": float, "precisions": [p1, p2, p3, p4], "brevity_penalty": float,
        "per_example": [float, ...]}``, all on a 0-1 scale. ``per_example`` holds sentence BLEU
        with sacrebleu's ``exp`` smoothing and effective order.

    Raises:
        StudioError: if the lists are empty, hold non-strings or differ in length.

    Example:
        >>> ref = "I am very happy to say that I am drinking a warm cup of tea"
        >>> round(bleu_score(["I am very happy that I am drinking a cup of tea"], [ref])["bleu"], 3)
        0.495
    """
    from sacrebleu.metrics import BLEU

    preds, refs = check_pairs(predictions, references)
    corpus = BLEU(lowercase=lowercase, tokenize=tokenize, smooth_method="none")
    result = corpus.corpus_score(preds, [refs])
    sentence = BLEU(lowercase=lowercase, tokenize=tokenize, smooth_method="exp", effective_order=True)
    per_example = [_unit(sentence.sentence_score(pred, [ref]).score) for pred, ref in zip(preds, refs, strict=True)]
    return {
        "bleu": _unit(result.score),
        "precisions": [float(p) / 100.0 for p in result.precisions],
        "brevity_penalty": float(result.bp),
        "per_example": per_example,
    }
