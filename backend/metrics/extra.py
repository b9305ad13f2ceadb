"""Extra evaluation metrics by name, from an allow-list that runs offline and loads no outside code.

An evaluation spec's ``extra_metrics`` used to go to Hugging Face ``evaluate.load``, which imports and runs the
Python of whatever metric it is given: a local folder, a script or a hub id. That ran at submit time inside the
CLI or web-server process. Now only the names below are accepted (``check_extra_metric``); each is computed here
with ``sacrebleu`` (installed with the studio) or plain Python, in the job process. Paths and hub ids are refused
with a message; ``evaluate`` is never called.

| name | result | library |
|---|---|---|
| ``exact_match`` | share of predictions equal to their reference (after trimming spaces), 0–1 | — |
| ``chrf`` | chrF, character n-gram F-score, 0–100 | sacrebleu |
| ``sacrebleu`` | corpus BLEU with sacrebleu's standard tokenization, 0–100 | sacrebleu |
| ``ter`` | translation edit rate, 0–100+ (lower is better) | sacrebleu |
| ``wer`` | word error rate: word edits / reference words, 0–1+ (lower is better) | — |
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from backend.errors import StudioError

MAX_EXTRA_METRICS = 8
_WER_MAX_WORDS = 2000  # a word-level edit distance is quadratic: longer texts are cut for WER


def _exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
    return sum(p.strip() == r.strip() for p, r in zip(predictions, references, strict=True)) / len(predictions)


def _sacrebleu(kind: str) -> Callable[[Sequence[str], Sequence[str]], float]:
    def score(predictions: Sequence[str], references: Sequence[str]) -> float:
        from sacrebleu.metrics import BLEU, CHRF, TER

        metric = {"chrf": CHRF, "sacrebleu": BLEU, "ter": TER}[kind]()
        return float(metric.corpus_score(list(predictions), [list(references)]).score)

    return score


def _edit_distance(a: list[str], b: list[str]) -> int:
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def _wer(predictions: Sequence[str], references: Sequence[str]) -> float:
    edits = words = 0
    for p, r in zip(predictions, references, strict=True):
        ref = r.split()[:_WER_MAX_WORDS]
        edits += _edit_distance(p.split()[:_WER_MAX_WORDS], ref)
        words += len(ref)
    return edits / max(words, 1)


EXTRA_METRICS: dict[str, Callable[[Sequence[str], Sequence[str]], float]] = {
    "exact_match": _exact_match,
    "chrf": _sacrebleu("chrf"),
    "sacrebleu": _sacrebleu("sacrebleu"),
    "ter": _sacrebleu("ter"),
    "wer": _wer,
}

_PATH_LIKE = re.compile(r"[/\\~:]|^\.|\.py$", re.IGNORECASE)


def check_extra_metric(name: object) -> str:
    """The allow-listed metric ``name`` (normalized), or a ``StudioError`` that says what to give instead.

    Never imports or runs anything: safe to call at submit time in the CLI or web process.
    """
    choices = ", ".join(EXTRA_METRICS)
    if not isinstance(name, str) or not name.strip():
        raise StudioError(f"extra_metrics: give metric names, one of: {choices}.")
    key = name.strip().lower().replace("-", "_")
    if key in EXTRA_METRICS:
        return key
    shown = name.strip()[:80]
    if _PATH_LIKE.search(name.strip()):
        raise StudioError(f"extra_metrics: '{shown}' looks like a path or hub id; metric code from files or the hub "
                          f"is not loaded (it would run inside the studio). Use a built-in metric: {choices}.")
    raise StudioError(f"extra_metrics: unknown metric '{shown}'; the metrics available offline are: {choices}.")


def compute_extra_metric(name: str, predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """``{name: score}`` for an allow-listed metric over paired predictions and references."""
    key = check_extra_metric(name)
    if len(predictions) != len(references):
        raise StudioError(f"extra metric {key}: {len(predictions)} predictions but {len(references)} references.")
    if not predictions:
        raise StudioError(f"extra metric {key}: nothing to score.")
    return {key: EXTRA_METRICS[key](predictions, references)}
