"""Chain-of-thought helpers: step-by-step cues and pulling the final answer out of the reasoning (pure).

Zero-shot CoT appends a cue after the answer indicator; few-shot CoT shows worked reasoning that
ends in a fixed phrase ("The answer is 28."), which ``extract_final_answer`` then looks for.
"""

import re

_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")
_MARKERS = [
    re.compile(r"\\boxed\{([^{}]+)\}"),
    re.compile(r"^\s*#{4}\s*(.+)$", re.MULTILINE),
    # the rest of the line after a marker, found by lookahead so a second marker on the same line wins
    re.compile(r"\b(?:the\s+)?(?:final\s+)?answer(?:\s+is\b\s*[:=]?|\s*[:=])\s*(?=(.+))", re.IGNORECASE),
]


def _clean(answer: str) -> str:
    answer = answer.strip().splitlines()[0] if answer.strip() else ""
    # End at the first sentence end that is not a decimal point ("5.5 pizzas. Enjoy" → "5.5 pizzas").
    answer = re.split(r"(?<!\d)\.(?!\d)|\.(?=\s|$)", answer, maxsplit=1)[0]
    return answer.strip().strip("*_`\"'").strip()


def extract_final_answer(text: str, numeric: bool = False) -> str | None:
    """The final answer stated in a chain-of-thought completion, or None when there is none.

    Looks, in order, for ``\\boxed{…}``, a ``#### …`` line, and the last "the answer is …" /
    "final answer: …" / "answer: …"; without a marker, falls back to the last number in the text.

    Args:
        text: the completion.
        numeric: return only the first number of the answer ("5 pizzas" → "5"), without thousands commas.
    """
    answer = None
    for pattern in _MARKERS:
        found = [m.group(1) for m in pattern.finditer(text or "")]
        found = [c for c in (_clean(f) for f in found) if c]
        if found:
            answer = found[-1]
            break
    if answer is None or (numeric and not _NUMBER.search(answer)):
        numbers = _NUMBER.findall(text or "")
        if not numbers:
            return answer if not numeric else None
        answer = numbers[-1]
    if numeric:
        number = _NUMBER.search(answer)
        return number.group(0).replace(",", "").replace("$", "") if number else None
    return answer
