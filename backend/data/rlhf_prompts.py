"""The detoxification demo's prompts: requests that invite a rude or toxic answer, split for PPO.

``demo:provocative`` is the project's provocative prompt set (``demo_data.generate_provocative_prompts``: 84
clean prompts in seven categories — neighbour rants, angry replies to customers, roasts, brutal reviews,
insulting a coworker, "honest opinions" and sentence completions about annoying people) split by category
into ``train`` (rollouts) and ``test`` (held-out prompts where toxicity is measured before and after). The
split keeps every category on both sides, so a drop in held-out toxicity is not a shift in topic.
"""

import json
from pathlib import Path

from backend.data.demo_data import PROVOCATIVE_COUNT, generate_provocative_prompts

DEMO_NAME = "provocative"
TEST_SHARE = 0.25  # a quarter of each category is held out: 21 of 84 prompts


def provocative_splits(seed: int = 11) -> dict[str, list[dict]]:
    """``{"train": [...], "test": [...]}`` rows with ``id``, ``prompt`` and ``category`` (deterministic)."""
    rows = generate_provocative_prompts(seed=seed, n=PROVOCATIVE_COUNT)
    by_category: dict[str, list[dict]] = {}
    for row in rows:
        by_category.setdefault(row["category"], []).append(row)
    splits: dict[str, list[dict]] = {"train": [], "test": []}
    for category_rows in by_category.values():
        n_test = max(1, round(TEST_SHARE * len(category_rows)))
        splits["test"].extend(category_rows[:n_test])
        splits["train"].extend(category_rows[n_test:])
    return {name: sorted(part, key=lambda r: r["id"]) for name, part in splits.items()}


def ensure_provocative_demo() -> Path:
    """Write ``<demo dir>/provocative/{train,test}.jsonl`` once and return the folder (``demo:provocative``)."""
    from backend.data.datasets_io import demo_dir

    folder = demo_dir() / DEMO_NAME
    for split, rows in provocative_splits().items():
        path = folder / f"{split}.jsonl"
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        if not path.is_file() or path.read_text(encoding="utf-8") != data:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(data, encoding="utf-8")
            tmp.replace(path)  # atomic: a concurrent reader sees the old file or the new one, never half of it
    return folder


def ensure_demo_prompts(ref: str) -> None:
    """Make ``demo:provocative`` exist before a job reads it (other references are left alone)."""
    if ref == f"demo:{DEMO_NAME}":
        ensure_provocative_demo()


# --- a scripted-preference campaign for the reward-model demo ------------------------------------------------
# Three replies per prompt, written to differ in tone only: a kind one, a curt one and an insulting one. A
# scripted annotator prefers kinder replies (with noise, so annotators disagree sometimes, as people do).
_KIND = ("I understand why that is frustrating. {fix}",
         "That sounds really annoying, and it is fair to feel that way. {fix}",
         "I get it, that would test anyone's patience. {fix}")
_CURT = ("Whatever. {fix}", "Not my problem, but {fix_lower}", "Fine. {fix} Don't expect more.")
_RUDE = ("What an idiot. Honestly they are stupid and useless.", "Tell them to shut up, they are a pathetic loser.",
         "They are a damn moron and everyone hates them.")
_FIXES = ("A calm, honest conversation usually helps.", "Try explaining how it affects you and ask for a change.",
          "Set a clear boundary, politely, and see how they respond.", "Write down what happened and talk it through.")


def scripted_replies(index: int) -> list[str]:
    """The kind, curt and rude replies of prompt ``index`` (deterministic), best first."""
    fix = _FIXES[index % len(_FIXES)]
    fill = {"fix": fix, "fix_lower": fix[0].lower() + fix[1:]}
    return [_KIND[index % 3].format(**fill), _CURT[(index // 3) % 3].format(**fill), _RUDE[(index // 2) % 3]]


def scripted_rankings(n_items: int, annotators: int = 2, noise: float = 0.8, seed: int = 0) -> list[list[list[int]]]:
    """Per item, one ranking (1 = best) of its three replies per annotator: quality 2, 1, 0 plus Gaussian noise."""
    import random

    rng = random.Random(seed)
    out = []
    for _ in range(n_items):
        item = []
        for _ in range(annotators):
            scores = [q + rng.gauss(0, noise) for q in (2.0, 1.0, 0.0)]
            order = sorted(range(3), key=lambda j: -scores[j])
            ranks = [0, 0, 0]
            for position, j in enumerate(order):
                ranks[j] = position + 1
            item.append(ranks)
        out.append(item)
    return out
