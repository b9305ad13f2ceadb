"""Synthetic campaigns without a model: for tests, the labeling benchmark and demo charts.

Completions are placeholder texts labelled with a source; each source has a hidden quality (earlier sources
are better), annotators rank by quality plus noise, and annotators listed in ``reverse`` rank backwards
(an annotator who misread the instructions). Rows are bulk-inserted, so 100k rankings take seconds.
"""

import random
from collections.abc import Sequence

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from backend.db.tables import Campaign, CampaignItem, Completion, Ranking, User
from labeling.campaigns import create_campaign


def _users(session: Session, names: Sequence[str]) -> dict[str, int]:
    existing = dict(session.execute(select(User.name, User.id).where(User.name.in_(list(names)))).all())
    for name in names:
        if name not in existing:
            user = User(name=name, role="annotator")
            session.add(user)
            session.flush()
            existing[name] = user.id
    return existing


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
    items = session.execute(select(CampaignItem.id, CampaignItem.prompt_id)
                            .where(CampaignItem.campaign_id == campaign.id).order_by(CampaignItem.id)).all()
    session.execute(insert(Completion), [
        {"prompt_id": prompt_id, "item_id": item_id, "model_name": "synthetic", "prompt_text": f"prompt {item_id}",
         "text": f"Answer {j} to item {item_id} from {sources[j % len(sources)]}.",
         "source_label": sources[j % len(sources)], "decoding": {}, "finish_reason": "stop"}
        for item_id, prompt_id in items for j in range(k)])
    if not annotators:
        return campaign
    user_ids = _users(session, annotators)
    comp_ids: dict[int, list[int]] = {}
    for cid, item_id in session.execute(select(Completion.id, Completion.item_id).join(
            CampaignItem, CampaignItem.id == Completion.item_id).where(CampaignItem.campaign_id == campaign.id)
            .order_by(Completion.id)):
        comp_ids.setdefault(item_id, []).append(cid)
    per_item = min(per_item or len(annotators), len(annotators))
    quality = [-(j % len(sources)) - j / (10 * k) for j in range(k)]  # higher is better
    rows = []
    for n, (item_id, _) in enumerate(items):
        for a in range(per_item):
            annotator = annotators[(n + a) % len(annotators)]
            scores = [q + rng.gauss(0, noise) for q in quality]
            if annotator in reverse:
                scores = [-s for s in scores]
            order = sorted(range(k), key=lambda j: -scores[j])
            ranks = {str(comp_ids[item_id][j]): pos + 1 for pos, j in enumerate(order)}
            rows.append({"item_id": item_id, "user_id": user_ids[annotator], "ranks": ranks, "flags": [],
                         "skipped": False, "comment": "", "seconds_spent": round(rng.uniform(5, 60), 1)})
    for start in range(0, len(rows), 5000):
        session.execute(insert(Ranking), rows[start:start + 5000])
    return campaign
