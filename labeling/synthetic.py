"""Scripted campaigns without a model: synthetic ones for tests and the labeling benchmark, and the RLHF demo's.

``seed_campaign``: completions are placeholder texts labelled with a source; each source has a hidden quality
(earlier sources are better), annotators rank by quality plus noise, and annotators listed in ``reverse`` rank
backwards (an annotator who misread the instructions). Rows are bulk-inserted, so 100k rankings take seconds.

``seed_demo_preference_campaign``: the provocative prompts with scripted kind/curt/rude replies, ranked by noisy
scripted annotators who prefer kinder replies (the reward-model demo's stand-in for a real campaign).
"""

import random
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from backend.data.rlhf_prompts import provocative_splits, scripted_rankings, scripted_replies
from backend.db.tables import Campaign, CampaignItem, Completion, Ranking, User
from labeling.campaigns import create_campaign

# (n, item_id) of the campaign's n-th item -> (prompt text, [(completion text, source label), ...])
Replies = Callable[[int, int], tuple[str, list[tuple[str, str]]]]


def _users(session: Session, names: Sequence[str]) -> dict[str, int]:
    """The ids of the annotators ``names``, creating the missing ones (in order)."""
    existing = dict(session.execute(select(User.name, User.id).where(User.name.in_(list(names)))).all())
    for name in names:
        if name not in existing:
            user = User(name=name, role="annotator")
            session.add(user)
            session.flush()
            existing[name] = user.id
    return existing


def _add_completions(session: Session, campaign_id: int, model_name: str,
                     replies: Replies) -> list[tuple[int, list[int]]]:
    """Bulk-insert every item's completions, in item order; returns ``[(item_id, [completion ids])]``."""
    items = session.execute(select(CampaignItem.id, CampaignItem.prompt_id)
                            .where(CampaignItem.campaign_id == campaign_id).order_by(CampaignItem.id)).all()
    rows = []
    for n, (item_id, prompt_id) in enumerate(items):
        prompt_text, texts = replies(n, item_id)
        rows += [{"prompt_id": prompt_id, "item_id": item_id, "model_name": model_name, "prompt_text": prompt_text,
                  "text": text, "source_label": label, "decoding": {}, "finish_reason": "stop"}
                 for text, label in texts]
    if rows:
        session.execute(insert(Completion), rows)
    ids: dict[int, list[int]] = {}
    for cid, item_id in session.execute(select(Completion.id, Completion.item_id).join(
            CampaignItem, CampaignItem.id == Completion.item_id).where(CampaignItem.campaign_id == campaign_id)
            .order_by(Completion.id)):
        ids.setdefault(item_id, []).append(cid)
    return [(item_id, ids.get(item_id, [])) for item_id, _ in items]


def _ranking(item_id: int, user_id: int, ranks: dict[str, int], seconds: float) -> dict[str, Any]:
    return {"item_id": item_id, "user_id": user_id, "ranks": ranks, "flags": [], "skipped": False, "comment": "",
            "seconds_spent": seconds}


def _add_rankings(session: Session, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), 5000):
        session.execute(insert(Ranking), rows[start:start + 5000])


def seed_campaign(session: Session, name: str, *, n_items: int = 10, k: int = 3, overlap: int = 1,
                  sources: Sequence[str] = ("model-a · greedy", "model-b · T0.9"), annotators: Sequence[str] = (),
                  per_item: int | None = None, noise: float = 0.3, reverse: Sequence[str] = (),
                  seed: int = 0) -> Campaign:
    """A campaign of ``n_items`` prompts with K completions each, optionally ranked.

    Args:
        annotators: who ranks; each item is ranked by ``per_item`` of them (default: all), rotating.
        noise: standard deviation added to the hidden quality before ranking (0 = all annotators agree).
        reverse: annotators who rank worst-first.
    """
    rng = random.Random(seed)
    campaign = create_campaign(session, name, [f"Synthetic prompt {i} of {name}?" for i in range(n_items)],
                               k=k, overlap=overlap, source="synthetic")
    items = _add_completions(session, campaign.id, "synthetic", lambda _, item_id: (f"prompt {item_id}", [
        (f"Answer {j} to item {item_id} from {sources[j % len(sources)]}.", sources[j % len(sources)])
        for j in range(k)]))
    if not annotators:
        return campaign
    user_ids = _users(session, annotators)
    per_item = min(per_item or len(annotators), len(annotators))
    quality = [-(j % len(sources)) - j / (10 * k) for j in range(k)]  # higher is better
    rows = []
    for n, (item_id, comp_ids) in enumerate(items):
        for a in range(per_item):
            annotator = annotators[(n + a) % len(annotators)]
            scores = [q + rng.gauss(0, noise) for q in quality]
            if annotator in reverse:
                scores = [-s for s in scores]
            order = sorted(range(k), key=lambda j: -scores[j])
            ranks = {str(comp_ids[j]): pos + 1 for pos, j in enumerate(order)}
            rows.append(_ranking(item_id, user_ids[annotator], ranks, round(rng.uniform(5, 60), 1)))
    _add_rankings(session, rows)
    return campaign


def seed_demo_preference_campaign(session: Session, name: str, *, n_items: int = 40,
                                  annotators: tuple[str, ...] = ("demo-ann", "demo-bob"), noise: float = 0.8,
                                  seed: int = 0) -> int:
    """A labeling campaign on the provocative prompts with scripted kind/curt/rude replies, ranked by scripted
    annotators who prefer kinder replies (noisy, so they sometimes disagree). Returns the campaign id.

    It stands in for a real campaign in the reward-model demo: train a ``reward`` job on it and compare the held-out
    pairwise accuracy with the annotators' own agreement.
    """
    prompts = [r["prompt"] for split in provocative_splits().values() for r in split][:n_items]
    campaign = create_campaign(session, name, prompts, k=3, overlap=len(annotators), criterion="harmlessness",
                               source="demo")
    labels = ("kind", "curt", "rude")
    items = _add_completions(session, campaign.id, "scripted", lambda n, _: (prompts[n], [
        (text, f"scripted · {labels[j]}") for j, text in enumerate(scripted_replies(n))]))
    user_ids = _users(session, annotators)
    users = [user_ids[who] for who in annotators]
    rankings = scripted_rankings(len(items), len(users), noise, seed)
    _add_rankings(session, [_ranking(item_id, uid, {str(c): r for c, r in zip(ids, ranks, strict=True)}, 10.0)
                            for (item_id, ids), item in zip(items, rankings, strict=True)
                            for uid, ranks in zip(users, item, strict=True)])
    return campaign.id
