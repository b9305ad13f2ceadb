"""Model-based scorers: toxicity classifiers, perplexity, and the scoreboard call.

Every function here is pure (no Streamlit, no database) and works offline. Heavy libraries
(``torch``, ``transformers``, ``profanity_check``) are imported inside the
functions that need them, so importing this module is cheap. :func:`score_texts` puts the
reference-overlap metrics of :mod:`backend.metrics.overlap` and a toxicity scorer together.

Conventions
-----------
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
from backend.metrics.overlap import ROUGE_TYPES, bleu_score, check_pairs, check_texts, rouge_scores

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

__all__ = [
    "neural_toxicity_scores",
    "perplexity",
    "score_texts",
    "toxic_label_index",
    "toxicity_scores",
]

_TOXIC_WORDS: tuple[str, ...] = ("toxic", "hate", "offensive")
_NEGATION_PREFIXES: tuple[str, ...] = ("not", "non", "no")


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
    texts = check_texts(texts, "texts")
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


def toxic_label_index(id2label: dict[int, str], toxic_label: str | int | None) -> int:
    """Pick the index of the toxic class in a model's ``id2label``.

    Args:
        id2label: The model config's mapping from class index to class name.
        toxic_label: The toxic class's name (case-insensitive) or index, or ``None`` to pick it
            by name.

    Returns:
        The class index.

    Raises:
        StudioError: If ``toxic_label`` is not one of the classes, or if no single class name means
            toxic.
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
        raise StudioError(f"toxic_label {toxic_label!r} is not one of the model's classes ({shown}).")
    candidates = [index for index, name in labels.items() if _is_toxic_label(name)]
    if len(candidates) > 1:
        exact = [i for i in candidates if _normalise_label(labels[i]) == "toxic"]
        if len(exact) == 1:
            return exact[0]
    if len(candidates) == 1:
        return candidates[0]
    why = "no class name" if not candidates else "more than one class name"
    raise StudioError(
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
        StudioError: if the model cannot be loaded or the toxic class cannot be decided.
    """
    texts = list(texts)
    if not texts:
        return []
    texts = check_texts(texts, "texts")
    if batch_size < 1:
        raise StudioError(f"batch_size must be at least 1, not {batch_size}.")

    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_ref)
        model = AutoModelForSequenceClassification.from_pretrained(model_ref)
    except Exception as err:
        raise StudioError(
            f"toxicity model {model_ref!r} could not be loaded ({err}). Give a local folder "
            "holding a sequence-classification model and its tokenizer."
        ) from err

    num_labels = int(model.config.num_labels)
    multi_label = getattr(model.config, "problem_type", None) == "multi_label_classification"
    if num_labels == 1:
        index = 0  # a single logit: sigmoid(logit) is the probability of the positive class
    else:
        index = toxic_label_index(dict(model.config.id2label), toxic_label)

    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise StudioError(
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
        StudioError: if predictions is empty, the lists differ in length, or a text is not a
            string.
    """
    preds = check_texts(predictions, "predictions")
    refs: list[str] | None = None
    if references is not None:
        preds, refs = check_pairs(preds, references)

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
            raise StudioError(f"the toxicity scorer returned {len(tox)} scores for {len(preds)} texts.")

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
        StudioError: if the inputs are empty or mismatched, or if no token is left to score.
    """
    import torch

    texts = check_texts(texts, "texts")
    if prompts is not None:
        prompt_list, texts = check_pairs(prompts, texts)
    else:
        prompt_list = None
    if batch_size < 1:
        raise StudioError(f"batch_size must be at least 1, not {batch_size}.")
    if max_length < 2:
        raise StudioError(f"max_length must be at least 2, not {max_length}.")

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
        raise StudioError("no token to score: every text is empty, too short (one token) or cut off by max_length.")

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
