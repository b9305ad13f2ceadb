"""Score completions with a reward, and best-of-n: generate n, keep the one the reward likes best.

Two kinds of reward source:

- ``TOXICITY`` ("toxicity (packaged)"): 1 − p(toxic) from the offline profanity classifier that ships with the
  studio. Needs no model, so a fresh studio can rerank at once.
- a registered reward model (kind ``reward``, trained by a reward job): a one-output sequence classifier. It is
  read through ``jobs.rl.rewards.RewardModelReward``, the same class PPO uses, so it sees the prompt and the
  completion in the chat format it was trained on (``reward_format.json`` in its folder). It has its own
  tokenizer: any generation model's completions can be scored.

Loaded reward models are cached per process like generation models (``backend.models.loader``), at most
``MAX_CACHED`` of them (least recently used goes first), and read-only. Scores of a saved run live in its
``PlaygroundRun.meta["reward"]``: ``{"source", "best_of_n", "scores": {completion id: score}}``;
``services.runs.get_run`` puts them back on the completions.
"""

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from backend.db.tables import PlaygroundRun
from backend.errors import StudioError
from services import runs

TOXICITY = "toxicity (packaged)"
MAX_CACHED = 2  # reward models kept loaded; each is a full model's weights


@dataclass(frozen=True)
class RewardSource:
    """What scores the completions: the packaged toxicity score (``path`` None) or a reward model's folder."""

    name: str
    path: str | None = None

    @property
    def description(self) -> str:
        if self.path is None:
            return "1 − p(toxic) from the packaged profanity classifier (0 = toxic, 1 = clean)"
        return f"reward model {self.name} (higher is better)"


def resolve_source(session: Session, name: str) -> RewardSource:
    """Turn a choice from the page (``TOXICITY`` or a reward model's name) into a source; cheap, loads nothing."""
    if name == TOXICITY:
        return RewardSource(TOXICITY)
    from backend.models.store import resolve

    model = resolve(session, name)
    if model.kind != "reward":
        raise StudioError(f"'{model.name}' is not a reward model (it is a {model.kind} model): pick one trained by "
                          f"a reward job, or '{TOXICITY}'.")
    if not Path(model.path).is_dir():
        raise StudioError(f"The folder of reward model '{model.name}' is missing ({model.path}): it was moved or "
                          "deleted. Train it again with a reward job, or pick another reward.")
    return RewardSource(model.name, model.path)


# NOTE: one lock for loads (a second caller waits, then reuses), and one per model for scoring, because a fast
# tokenizer shared between threads can fail with "Already borrowed" when two of them encode at once.
_cache: "OrderedDict[tuple[str, str], tuple[Any, threading.Lock]]" = OrderedDict()
_lock = threading.Lock()


def load_reward_model(source: RewardSource, device: str | None = None) -> tuple[Any, threading.Lock]:
    """Load (or reuse) a reward model: a ``RewardModelReward`` and the lock to hold while it scores."""
    from backend.models.loader import resolve_device

    if source.path is None:
        raise StudioError(f"'{source.name}' needs no model.")
    device = resolve_device(device)
    key = (source.path, device)
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
        scorer = load_uncached(source, device)
        _cache[key] = (scorer, threading.Lock())
        while len(_cache) > MAX_CACHED:
            _cache.popitem(last=False)
        return _cache[key]


def load_uncached(source: RewardSource, device: str):
    """Load a reward model from its folder, every call (``load_reward_model`` keeps what this returns)."""
    from jobs.rl.rewards import RewardModelReward

    try:
        return RewardModelReward(source.path, device)
    except StudioError:
        raise
    except Exception as exc:  # noqa: BLE001 - a broken config, weights or reward_format.json: the fix is the same
        raise StudioError(f"Could not load reward model '{source.name}' from {source.path} "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}). Check "
                          "that the folder holds what a reward job saved, or train it again.") from None


def clear_cache() -> None:
    with _lock:
        _cache.clear()


def score_with(source: RewardSource, prompts: list[str], completions: list[str]) -> list[float]:
    """One score per (prompt, completion) pair, higher is better. Loads the reward model on first use."""
    if len(prompts) != len(completions):
        raise StudioError(f"{len(prompts)} prompts for {len(completions)} completions: give one prompt per completion.")
    if not completions:
        return []
    if source.path is None:
        from backend.metrics.scorers import toxicity_scores

        return [1.0 - p for p in toxicity_scores(completions)]
    scorer, busy = load_reward_model(source)
    try:
        with busy:
            return [float(s) for s in scorer(prompts, completions)]
    except RuntimeError as exc:
        raise StudioError(f"Reward model '{source.name}' failed while scoring "
                          f"({str(exc).splitlines()[0][:200]}).") from None


def score_run(session: Session, run_id: int, name: str, *, best_of_n: bool = False) -> dict[str, Any]:
    """Score every completion of a saved run and keep the scores with it.

    Args:
        session: a write session (the transaction is ended while the reward model loads and scores).
        run_id: a playground or compare run.
        name: ``TOXICITY`` or a reward model's name.
        best_of_n: order each column's completions best first and mark the best (the run remembers it).

    Returns:
        ``runs.get_run``'s dict; each completion has ``score`` (and ``n``: its place in generation order),
        each column ``reward``: ``{source, best_of_n, best, mean}``.
    """
    run = runs.get_run(session, run_id)
    source = resolve_source(session, name)
    session.commit()  # NOTE: no transaction (so no SQLite lock) while a reward model loads and scores
    pairs = [(col.get("text") or run["input"], c["text"], c["id"]) for col in run["columns"] for c in col["completions"]]
    scores = score_with(source, [p for p, _, _ in pairs], [t for _, t, _ in pairs])
    row = session.get(PlaygroundRun, run_id)
    row.meta = {**row.meta, "reward": {"source": source.name, "description": source.description,
                                       "best_of_n": best_of_n,
                                       "scores": {str(i): s for (_, _, i), s in zip(pairs, scores, strict=True)}}}
    session.flush()
    return runs.get_run(session, run_id)


