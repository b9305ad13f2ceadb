"""Keyboard-first ranking: what each key does to the ranking being built (pure; the workbench page applies it).

Number keys assign ranks in click order: ``n`` gives rank n to the next response without a rank or flag, in the
order shown (A, B, C…), so typing ``2 1 3`` ranks A second, B first and C third. ``F`` flags that next response,
``Z`` takes back the last key (on an item with nothing picked: the last submission, as the Undo button), ``S`` skips
the item and ``Enter`` submits it. Keys typed into a text box (the comment) are not shortcuts.
"""

from dataclasses import dataclass, field

FLAG = "F"
LEGEND = ("Keys: **1–{k}** rank the next response in order (A, B, C…) · **F** flags it · **Z** takes back the "
          "last key · **S** skips the item · **Enter** submits and opens the next")


@dataclass
class KeyResult:
    picks: dict[int, str]  # completion id → "1".."9" or "F"
    history: list[int] = field(default_factory=list)  # completion ids in the order keys picked them
    action: str | None = None  # "submit", "skip", "undo_submission"
    message: str | None = None


def next_open(order: list[int], picks: dict[int, str]) -> int | None:
    """The first response in display order without a rank or flag."""
    return next((cid for cid in order if not picks.get(cid)), None)


def apply_key(key: str, order: list[int], picks: dict[int, str], history: list[int]) -> KeyResult:
    """The ranking after ``key`` (a digit, ``f``, ``s``, ``z`` or ``Enter``) on an item shown in ``order``."""
    picks, history = dict(picks), [h for h in history if picks.get(h)]
    key = "Enter" if key.lower() == "enter" else key.lower()
    if key == "Enter":
        return KeyResult(picks, history, action="submit")
    if key == "s":
        return KeyResult(picks, history, action="skip")
    if key == "z":
        if not history:
            return KeyResult(picks, history, action="undo_submission")
        picks.pop(history.pop(), None)
        return KeyResult(picks, history)
    target = next_open(order, picks)
    if key == "f" or (key.isdigit() and 1 <= int(key) <= len(order)):
        if target is None:
            return KeyResult(picks, history, message="Every response has a rank: press Enter to submit, Z to take "
                                                     "back the last key.")
        picks[target] = FLAG if key == "f" else key
        return KeyResult(picks, history + [target])
    return KeyResult(picks, history, message=f"'{key}' is not a key of this item: ranks go from 1 to {len(order)}.")
