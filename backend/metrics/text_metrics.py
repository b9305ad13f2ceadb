"""Text metrics: the evaluation math behind Loop Studio's scoreboards.

Every function here is pure (no Streamlit, no database) and works offline. Heavy libraries
(``torch``, ``transformers``, ``evaluate``, ``profanity_check``) are imported inside the
functions that need them, so importing this module is cheap.

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
Toxicity
    A score in [0, 1] that is the *probability of the toxic class*. The default scorer is the
    offline linear classifier shipped in ``alt-profanity-check`` (``profanity_check``); a
    neural scorer can load any ``transformers`` sequence-classification model from a local
    folder or a hub id.
Perplexity
    ``exp`` of the mean negative log-likelihood over *all* scored target tokens of the corpus
    (token-weighted, not a mean of per-text perplexities); padding and prompt tokens are
    masked out.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from backend.errors import StudioError

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

__all__ = [
    "ROUGE_TYPES",
    "MetricError",
    "bleu_score",
    "load_evaluate_metric",
    "neural_toxicity_scores",
    "perplexity",
    "rouge_pair",
    "rouge_scores",
    "score_texts",
    "split_sentences",
    "toxicity_scores",
]

ROUGE_TYPES: tuple[str, ...] = ("rouge1", "rouge2", "rougeL", "rougeLsum")
"""The ROUGE variants every function here reports, in this order."""

_TOXIC_WORDS: tuple[str, ...] = ("toxic", "hate", "offensive")
_NEGATION_PREFIXES: tuple[str, ...] = ("not", "non", "no")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


class MetricError(StudioError, ValueError):
    """Bad input to a metric (the user can fix it).

    It is both a :class:`~backend.errors.StudioError` (so pages show it as a user error) and a
    :class:`ValueError` (so callers that expect the standard exception catch it).
    """


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------


def _check_texts(texts: Sequence[str], name: str = "predictions") -> list[str]:
    """Return ``texts`` as a list of strings, or raise if it is empty or not all strings."""
    if isinstance(texts, str):
        raise MetricError(f"{name} must be a list of strings, not a single string.")
    texts = list(texts)
    if not texts:
        raise MetricError(f"{name} is empty: give at least one text to score.")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise MetricError(f"{name}[{i}] is a {type(text).__name__}, not a string: every text must be a str.")
    return texts


def _check_pairs(predictions: Sequence[str], references: Sequence[str]) -> tuple[list[str], list[str]]:
    """Check that predictions and references are non-empty string lists of equal length."""
    preds = _check_texts(predictions, "predictions")
    refs = _check_texts(references, "references")
    if len(preds) != len(refs):
        raise MetricError(
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

    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)


def _rouge_one(scorer: Any, prediction: str, reference: str) -> dict[str, Any]:
    # rouge_score's signature is score(target, prediction): the reference comes first.
    # For rougeLsum it splits summaries on "\n", so put one sentence per line.
    scores = scorer.score(reference, prediction)
    lsum = scorer.score("\n".join(split_sentences(reference)), "\n".join(split_sentences(prediction)))
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
        MetricError: (a ``ValueError``) if the lists are empty, hold non-strings or differ in
            length.
    """
    preds, refs = _check_pairs(predictions, references)
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
        MetricError: (a ``ValueError``) if the lists are empty, hold non-strings or differ in
            length.

    Example:
        >>> ref = "I am very happy to say that I am drinking a warm cup of tea"
        >>> round(bleu_score(["I am very happy that I am drinking a cup of tea"], [ref])["bleu"], 3)
        0.495
    """
    from sacrebleu.metrics import BLEU

    preds, refs = _check_pairs(predictions, references)
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


# --------------------------------------------------------------------------------------------
# Toxicity
# --------------------------------------------------------------------------------------------


def toxicity_scores(texts: Sequence[str]) -> list[float]:
    """Probability that each text is toxic, from the offline ``profanity_check`` classifier.

    The classifier (package ``alt-profanity-check``) is a linear SVM over word n-grams,
    calibrated to probabilities and trained on labelled toxic / clean comments. It is fast and
    needs no download, but it mostly detects profanity and insults, not subtle toxicity.

    Args:
        texts: Texts to score (may be empty).

    Returns:
        One probability in [0, 1] per text.
    """
    texts = list(texts)
    if not texts:
        return []
    texts = _check_texts(texts, "texts")
    from profanity_check import predict_prob

    return [min(1.0, max(0.0, float(p))) for p in predict_prob(texts)]


def _normalise_label(label: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(label).lower())


def _is_toxic_label(label: str) -> bool:
    """Whether a class name means "toxic" (and is not a negation such as ``not_toxic``)."""
    norm = _normalise_label(label)
    if not any(word in norm for word in _TOXIC_WORDS):
        return False
    for prefix in _NEGATION_PREFIXES:
        if norm.startswith(prefix) and any(w in norm[len(prefix) :] for w in _TOXIC_WORDS):
            # "not_toxic", "non-toxic", "nothate", "no_hate" ...
            return False
    return True


def _toxic_label_index(id2label: dict[int, str], toxic_label: str | int | None) -> int:
    """Pick the index of the toxic class in a model's ``id2label``.

    Args:
        id2label: The model config's mapping from class index to class name.
        toxic_label: The toxic class's name (case-insensitive) or index, or ``None`` to pick it
            by name.

    Returns:
        The class index.

    Raises:
        MetricError: If ``toxic_label`` is not one of the classes, or if no single class name
            means toxic.
    """
    labels = {int(k): str(v) for k, v in id2label.items()}
    shown = ", ".join(f"{k}={v!r}" for k, v in sorted(labels.items()))
    if toxic_label is not None:
        if isinstance(toxic_label, int) or str(toxic_label).isdigit():
            index = int(toxic_label)
            if index in labels:
                return index
        else:
            for index, name in labels.items():
                if name == toxic_label or name.lower() == str(toxic_label).lower():
                    return index
        raise MetricError(f"toxic_label {toxic_label!r} is not one of the model's classes ({shown}).")
    candidates = [index for index, name in labels.items() if _is_toxic_label(name)]
    if len(candidates) > 1:
        exact = [i for i in candidates if _normalise_label(labels[i]) == "toxic"]
        if len(exact) == 1:
            return exact[0]
    if len(candidates) == 1:
        return candidates[0]
    why = "no class name" if not candidates else "more than one class name"
    raise MetricError(
        f"cannot tell which class is the toxic one: {why} matches "
        f"{'/'.join(_TOXIC_WORDS)} among the model's classes ({shown}). "
        "Give toxic_label (the toxic class's name or index)."
    )


def neural_toxicity_scores(
    texts: Sequence[str],
    model_ref: str,
    toxic_label: str | int | None = None,
    batch_size: int = 16,
    *,
    max_length: int = 512,
    device: str | None = None,
) -> list[float]:
    """Probability of the toxic class from a ``transformers`` sequence classifier.

    Args:
        texts: Texts to score (may be empty).
        model_ref: A local folder or a hub id of a model that
            ``AutoModelForSequenceClassification`` and ``AutoTokenizer`` can load. Offline,
            only local folders (or models already in the hub cache) work.
        toxic_label: The toxic class's name or index in ``config.id2label``. ``None`` picks
            the one class whose name contains "toxic", "hate" or "offensive" (ignoring
            negations such as "not_toxic" / "nothate").
        batch_size: Texts per forward pass.
        max_length: Longer texts are truncated to this many tokens.
        device: A torch device; ``None`` uses CUDA when available, else the CPU.

    Returns:
        One probability in [0, 1] per text: a softmax over the classes for single-label models,
        a sigmoid of the toxic logit for multi-label models (``problem_type ==
        "multi_label_classification"``) and for single-logit models. A blank text (an empty
        completion) scores 0.0: there is nothing to classify, and a batch of no tokens cannot run.

    Raises:
        MetricError: (a ``ValueError``) if the model cannot be loaded or the toxic class cannot
            be decided.
    """
    texts = list(texts)
    if not texts:
        return []
    texts = _check_texts(texts, "texts")
    if batch_size < 1:
        raise MetricError(f"batch_size must be at least 1, not {batch_size}.")

    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_ref)
        model = AutoModelForSequenceClassification.from_pretrained(model_ref)
    except Exception as err:
        raise MetricError(
            f"toxicity model {model_ref!r} could not be loaded ({err}). Give a local folder "
            "holding a sequence-classification model and its tokenizer."
        ) from err

    num_labels = int(model.config.num_labels)
    multi_label = getattr(model.config, "problem_type", None) == "multi_label_classification"
    if num_labels == 1:
        index = 0  # a single logit: sigmoid(logit) is the probability of the positive class
    else:
        index = _toxic_label_index(dict(model.config.id2label), toxic_label)

    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise MetricError(
                f"the tokenizer of {model_ref!r} has neither a pad nor an eos token, so texts cannot be batched."
            )
        tokenizer.pad_token = tokenizer.eos_token
    if getattr(model.config, "pad_token_id", None) is None:
        # Decoder classifiers (Llama, GPT-2 ...) find the last real token through it.
        model.config.pad_token_id = tokenizer.pad_token_id

    torch_device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model.to(torch_device)
    model.eval()
    scores: list[float] = []
    scored = [i for i, text in enumerate(texts) if text.strip()]
    with torch.inference_mode():
        for start in range(0, len(scored), batch_size):
            batch = tokenizer(
                [texts[i] for i in scored[start : start + batch_size]],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            ).to(torch_device)
            logits = model(**batch).logits.float()
            if num_labels == 1 or multi_label:
                probs = torch.sigmoid(logits[:, index])
            else:
                probs = torch.softmax(logits, dim=-1)[:, index]
            scores.extend(float(p) for p in probs.cpu())
    by_index = dict(zip(scored, scores, strict=True))
    return [by_index.get(i, 0.0) for i in range(len(texts))]


# --------------------------------------------------------------------------------------------
# One call for the scoreboard
# --------------------------------------------------------------------------------------------


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values))


def score_texts(
    predictions: Sequence[str],
    references: Sequence[str] | None = None,
    toxicity: bool | Callable[[list[str]], list[float]] = True,
) -> dict[str, Any]:
    """Score generated texts with every built-in metric in one call.

    Args:
        predictions: Generated texts.
        references: One reference per prediction, or ``None`` (then ROUGE and BLEU are
            ``None``).
        toxicity: ``True`` for :func:`toxicity_scores`, ``False`` to skip toxicity (then it is
            ``None``), or any function mapping a list of texts to toxicity probabilities (for
            example a ``functools.partial`` of :func:`neural_toxicity_scores`).

    Returns:
        ``{"rouge1", "rouge2", "rougeL", "rougeLsum", "bleu", "toxicity", "length_words",
        "per_example"}``. Corpus values: mean ROUGE F-measures, corpus BLEU, mean toxicity and
        mean length in white-space words. ``per_example`` has one dict per prediction with
        ``prediction``, ``reference``, the four ROUGE F-measures, sentence BLEU (smoothed),
        ``toxicity`` and ``length_words``. Skipped metrics are ``None``.

    Raises:
        MetricError: (a ``ValueError``) if predictions is empty, the lists differ in length,
            or a text is not a string.
    """
    preds = _check_texts(predictions, "predictions")
    refs: list[str] | None = None
    if references is not None:
        preds, refs = _check_pairs(preds, references)

    lengths = [len(p.split()) for p in preds]
    rouge = rouge_scores(preds, refs) if refs is not None else None
    bleu = bleu_score(preds, refs) if refs is not None else None
    if toxicity is True:
        tox: list[float] | None = toxicity_scores(preds)
    elif toxicity is False or toxicity is None:
        tox = None
    else:
        tox = [float(x) for x in toxicity(list(preds))]
        if len(tox) != len(preds):
            raise MetricError(f"the toxicity scorer returned {len(tox)} scores for {len(preds)} texts.")

    per_example: list[dict[str, Any]] = []
    for i, pred in enumerate(preds):
        row: dict[str, Any] = {"prediction": pred, "reference": refs[i] if refs else None}
        for name in ROUGE_TYPES:
            row[name] = rouge["per_example"][i][name] if rouge else None
        row["bleu"] = bleu["per_example"][i] if bleu else None
        row["toxicity"] = tox[i] if tox is not None else None
        row["length_words"] = lengths[i]
        per_example.append(row)

    result: dict[str, Any] = {name: rouge[name] if rouge else None for name in ROUGE_TYPES}
    result["bleu"] = bleu["bleu"] if bleu else None
    result["toxicity"] = _mean(tox) if tox is not None else None
    result["length_words"] = _mean(lengths)
    result["per_example"] = per_example
    return result


# --------------------------------------------------------------------------------------------
# Perplexity
# --------------------------------------------------------------------------------------------


def _model_device(model: Any) -> torch.device:
    import torch

    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError):
        return torch.device("cpu")


def perplexity(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    batch_size: int = 8,
    max_length: int = 512,
    prompts: Sequence[str] | None = None,
) -> float:
    """Corpus perplexity of a causal language model on some texts.

    ``exp(total NLL / number of scored tokens)``: every target token of every text counts once
    (a token-weighted mean), padding is masked, and the first token of each sequence is never
    scored (nothing predicts it).

    With ``prompts``, each sequence is ``prompt ids + text ids`` (the prompt tokenised with the
    tokenizer's special tokens such as BOS, the text without), and only the text's tokens are
    scored, i.e. the perplexity of the reference answer given the prompt. Without prompts each
    text is tokenised with special tokens and all its tokens after the first are scored.

    Args:
        model: A loaded causal LM (``AutoModelForCausalLM`` or compatible: called with
            ``input_ids`` and ``attention_mask``, returns ``.logits``).
        tokenizer: Its tokenizer.
        texts: Texts to score (the references when ``prompts`` is given).
        batch_size: Sequences per forward pass.
        max_length: Sequences are cut to this many tokens (from the right); tokens cut off are
            not scored.
        prompts: Optional prompt for each text, same length as ``texts``.

    Returns:
        The perplexity (>= 1; ``inf`` if the model gives some target token zero probability).

    Raises:
        MetricError: (a ``ValueError``) if the inputs are empty or mismatched, or if no token
            is left to score.
    """
    import torch

    texts = _check_texts(texts, "texts")
    if prompts is not None:
        prompt_list, texts = _check_pairs(prompts, texts)
    else:
        prompt_list = None
    if batch_size < 1:
        raise MetricError(f"batch_size must be at least 1, not {batch_size}.")
    if max_length < 2:
        raise MetricError(f"max_length must be at least 2, not {max_length}.")

    # Token ids and the mask of scored positions, one sequence at a time.
    sequences: list[tuple[list[int], list[bool]]] = []
    for i, text in enumerate(texts):
        if prompt_list is None:
            ids = list(tokenizer(text, add_special_tokens=True)["input_ids"])
            scored = [True] * len(ids)
        else:
            head = list(tokenizer(prompt_list[i], add_special_tokens=True)["input_ids"])
            tail = list(tokenizer(text, add_special_tokens=False)["input_ids"])
            ids = head + tail
            scored = [False] * len(head) + [True] * len(tail)
        ids, scored = ids[:max_length], scored[:max_length]
        if len(ids) >= 2 and any(scored[1:]):
            sequences.append((ids, scored))
    if not sequences:
        raise MetricError("no token to score: every text is empty, too short (one token) or cut off by max_length.")

    pad_id = getattr(tokenizer, "pad_token_id", None)
    if pad_id is None:
        pad_id = getattr(tokenizer, "eos_token_id", None)
    if pad_id is None:
        pad_id = 0  # masked out anyway

    device = _model_device(model)
    was_training = bool(getattr(model, "training", False))
    model.eval()
    total_nll = 0.0
    total_tokens = 0
    try:
        with torch.inference_mode():
            for start in range(0, len(sequences), batch_size):
                batch = sequences[start : start + batch_size]
                width = max(len(ids) for ids, _ in batch)
                input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
                attention = torch.zeros((len(batch), width), dtype=torch.long)
                labels = torch.full((len(batch), width), -100, dtype=torch.long)
                for row, (ids, scored) in enumerate(batch):
                    n = len(ids)
                    input_ids[row, :n] = torch.tensor(ids, dtype=torch.long)
                    attention[row, :n] = 1
                    keep = torch.tensor(scored, dtype=torch.bool)
                    labels[row, :n] = torch.where(keep, input_ids[row, :n], -100)
                input_ids, attention, labels = (
                    input_ids.to(device),
                    attention.to(device),
                    labels.to(device),
                )
                logits = model(input_ids=input_ids, attention_mask=attention).logits
                # A prompt-tuned (peft) model prepends its virtual tokens: keep the positions of the real ones.
                logits = logits[:, -width:, :]
                shift_logits = logits[:, :-1, :].float()
                shift_labels = labels[:, 1:]
                nll = torch.nn.functional.cross_entropy(
                    shift_logits.reshape(-1, shift_logits.size(-1)),
                    shift_labels.reshape(-1),
                    ignore_index=-100,
                    reduction="sum",
                )
                total_nll += float(nll)
                total_tokens += int((shift_labels != -100).sum())
    finally:
        if was_training:
            model.train()
    mean_nll = total_nll / total_tokens
    try:
        return math.exp(mean_nll)
    except OverflowError:
        return math.inf


# --------------------------------------------------------------------------------------------
# User-named metrics from Hugging Face evaluate
# --------------------------------------------------------------------------------------------


def load_evaluate_metric(name_or_path: str) -> Any:
    """Load a user-named metric with Hugging Face ``evaluate``.

    The built-in metrics above never go through ``evaluate`` (its hub scripts need a network).
    This is for extra metrics a user names: a local folder (or ``.py`` file) holding an
    ``evaluate`` metric script always works; a hub name works only with network access or a
    warm cache.

    Args:
        name_or_path: A local folder / script path, or an ``evaluate`` hub name.

    Returns:
        The loaded ``evaluate.EvaluationModule``.

    Raises:
        MetricError: (a ``ValueError``) if ``evaluate`` is missing or the metric cannot be
            loaded.
    """
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise MetricError("give the name or local folder of an evaluate metric.")
    try:
        import evaluate
    except ImportError as err:
        raise MetricError(
            f"metric {name_or_path!r} could not be loaded: the 'evaluate' package is not installed."
        ) from err
    try:
        return evaluate.load(name_or_path)
    except Exception as err:
        raise MetricError(
            f"metric {name_or_path!r} could not be loaded offline: give a local folder "
            f"containing the metric script ({type(err).__name__}: {err})"
        ) from err
