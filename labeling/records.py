"""A campaign's rankings read into plain records for the pure code (pairs, agreement, export).

Three queries per campaign (items with prompts, completions, rankings), no per-row queries, so export and
quality reports stay quick with 100k rankings. Skipped rankings are left out: they judge nothing.
"""

import json
from dataclasses import dataclass, field

from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session

from backend.db.tables import CampaignItem, Completion, Prompt, Ranking, User


@dataclass
class ItemRecord:
    """One item: its prompt, its completions in id order, and each annotator's ranking of them."""

    item_id: int
    prompt: str
    completion_ids: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    judgements: dict[str, list[int | None]] = field(default_factory=dict)  # annotator → rank per completion
    seconds: dict[str, float] = field(default_factory=dict)


def ranks_by_position(completion_ids: list[int], ranks: dict, flags: list) -> list[int | None]:
    """A stored ranking (``{completion id: rank}``, flagged ids) as one rank per completion; None = flagged."""
    flagged = {int(f) for f in flags}
    return [None if cid in flagged else ranks.get(str(cid), ranks.get(cid)) for cid in completion_ids]


def load_items(session: Session, campaign_id: int, *, only_judged: bool = True) -> list[ItemRecord]:
    """The campaign's items with completions and (non-skipped) rankings, in item order."""
    items = {item_id: ItemRecord(item_id, text) for item_id, text in session.execute(
        select(CampaignItem.id, Prompt.text).join(Prompt, Prompt.id == CampaignItem.prompt_id)
        .where(CampaignItem.campaign_id == campaign_id).order_by(CampaignItem.id))}
    for cid, item_id, text, label in session.execute(
            select(Completion.id, Completion.item_id, Completion.text, Completion.source_label)
            .join(CampaignItem, CampaignItem.id == Completion.item_id)
            .where(CampaignItem.campaign_id == campaign_id).order_by(Completion.id)):
        record = items[item_id]
        record.completion_ids.append(cid)
        record.texts.append(text)
        record.sources.append(label or "unknown")
    # ranks/flags are read as text and parsed here: a third of the time of SQLAlchemy's JSON processing
    for item_id, name, ranks, flags, seconds in session.execute(
            select(Ranking.item_id, User.name, cast(Ranking.ranks, Text), cast(Ranking.flags, Text),
                   Ranking.seconds_spent)
            .join(User, User.id == Ranking.user_id).join(CampaignItem, CampaignItem.id == Ranking.item_id)
            .where(CampaignItem.campaign_id == campaign_id, Ranking.skipped.is_(False))):
        record = items[item_id]
        ranks = json.loads(ranks) if isinstance(ranks, str) else ranks
        flags = [] if flags in ("[]", None) else json.loads(flags) if isinstance(flags, str) else flags
        vector = ranks_by_position(record.completion_ids, ranks, flags)
        flagged = {int(f) for f in flags}
        if any(r is None and cid not in flagged for r, cid in zip(vector, record.completion_ids, strict=True)):
            continue  # a ranking that no longer covers the item's completions cannot be interpreted
        record.judgements[name] = vector
        record.seconds[name] = seconds
    return [r for r in items.values() if r.judgements or not only_judged]
