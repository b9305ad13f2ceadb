"""Quality checks on annotators: gold items with a known best completion, and judgements made too fast.

- **Gold items.** An admin marks an item as gold with its known best completion (``mark_gold``). When the
  campaign's ``gold_rate`` is above 0, gold items leave the ordinary queue and are mixed into each annotator's
  queue at that rate (``gold_due``: the n-th item served is gold whenever fewer than ⌊n · rate⌋ of the annotator's
  judgements were gold), regardless of the overlap, and never shown as gold: the workbench serves them like any
  item. An annotator is right on a gold item when the known best completion is their single rank 1 (a tie at the
  top, or flagging it, counts as wrong). Gold judgements stay ordinary judgements for pairs and agreement.
- **Too fast.** A judgement that took less than ``too_fast_seconds`` per completion of its item (default 2 s) is
  flagged "too fast": nobody reads K answers that quickly.
- ``annotator_checks``: per annotator, gold accuracy with its 95 % interval (bootstrap over gold items) and the
  number behind it, flagged below ``threshold``; too-fast count and share.
"""

import math
from collections import defaultdict
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.db.lookup import get_or_raise
from backend.db.tables import Campaign, CampaignItem, Completion, Prompt, Ranking, User
from backend.errors import StudioError
from backend.metrics import stats
from labeling.campaigns import find_campaign

GOLD_THRESHOLD = 0.7  # gold accuracy under which an annotator is flagged
MIN_GOLD = 3  # gold judgements needed before an annotator is flagged
MAX_GOLD_RATE = 0.5
MAX_TOO_FAST = 60.0


def mark_gold(session: Session, item_id: int, best_completion_id: int | None) -> dict[str, Any]:
    """Make an item gold with ``best_completion_id`` (one of its own completions) as its known best, or ordinary
    again with None. Returns ``{"item_id", "gold_completion_id"}``.

    Raises:
        StudioError: unknown item, an item without completions, or a completion of another item.
    """
    item = get_or_raise(session, CampaignItem, item_id, message=f"There is no item {item_id}.")
    if best_completion_id is None:
        item.gold_completion_id = None
        return {"item_id": item.id, "gold_completion_id": None}
    ids = list(session.scalars(select(Completion.id).where(Completion.item_id == item.id)))
    if not ids:
        raise StudioError(f"Item {item.id} has no completions yet: generate them, then pick its known best one.")
    if best_completion_id not in ids:
        raise StudioError(f"Completion {best_completion_id} is not one of item {item.id}'s completions "
                          f"({', '.join(map(str, ids))}): a gold item needs its own known best completion.")
    item.gold_completion_id = best_completion_id
    return {"item_id": item.id, "gold_completion_id": best_completion_id}


def set_checks(session: Session, campaign_id: int, *, gold_rate: float | None = None,
               too_fast_seconds: float | None = None) -> dict[str, float]:
    """Change a campaign's gold rate (0 … 0.5: the share of each annotator's items that are gold) and its "too fast"
    time per completion (0 … 60 s; 0 turns the check off)."""
    campaign = get_or_raise(session, Campaign, campaign_id, "campaign")
    if gold_rate is not None:
        if not isinstance(gold_rate, int | float) or not math.isfinite(gold_rate) or not 0 <= gold_rate <= MAX_GOLD_RATE:
            raise StudioError(f"The gold rate is a share between 0 and {MAX_GOLD_RATE} (e.g. 0.1 = 1 item in 10).")
        campaign.gold_rate = float(gold_rate)
    if too_fast_seconds is not None:
        if not isinstance(too_fast_seconds, int | float) or not math.isfinite(too_fast_seconds) or \
                not 0 <= too_fast_seconds <= MAX_TOO_FAST:
            raise StudioError(f"The 'too fast' time is between 0 and {MAX_TOO_FAST:g} seconds per completion.")
        campaign.too_fast_seconds = float(too_fast_seconds)
    return {"gold_rate": campaign.gold_rate, "too_fast_seconds": campaign.too_fast_seconds}


def gold_items(session: Session, campaign_id: int) -> list[dict[str, Any]]:
    """The campaign's gold items: item id, known best completion id, and how many judged it."""
    judged = (select(Ranking.item_id, func.count(Ranking.id).label("n")).where(Ranking.skipped.is_(False))
              .group_by(Ranking.item_id).subquery())
    rows = session.execute(select(CampaignItem.id, CampaignItem.gold_completion_id, judged.c.n)
                           .outerjoin(judged, judged.c.item_id == CampaignItem.id)
                           .where(CampaignItem.campaign_id == campaign_id,
                                  CampaignItem.gold_completion_id.is_not(None)).order_by(CampaignItem.id))
    return [{"item_id": i, "gold_completion_id": g, "judgements": n or 0} for i, g, n in rows]


def item_choices(session: Session, campaign_id: int, limit: int = 500) -> list[dict[str, Any]]:
    """Items that have completions, with their prompt and completions (id, text, source), for picking gold."""
    items = session.execute(select(CampaignItem.id, CampaignItem.gold_completion_id, Prompt.text)
                            .join(Prompt, Prompt.id == CampaignItem.prompt_id)
                            .where(CampaignItem.campaign_id == campaign_id).order_by(CampaignItem.id).limit(limit)).all()
    completions: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for cid, item_id, text, label in session.execute(
            select(Completion.id, Completion.item_id, Completion.text, Completion.source_label)
            .where(Completion.item_id.in_([i for i, _, _ in items])).order_by(Completion.id)):
        completions[item_id].append({"id": cid, "text": text, "source": label})
    return [{"item_id": i, "gold_completion_id": g, "prompt": p, "completions": completions[i]}
            for i, g, p in items if completions[i]]


def gold_due(session: Session, campaign: Campaign, user_id: int) -> bool:
    """Whether the next item this annotator gets should be a gold one (see the module docstring)."""
    if not campaign.gold_rate:
        return False
    done = session.execute(
        select(func.count(Ranking.id), func.count(CampaignItem.gold_completion_id))
        .join(CampaignItem, CampaignItem.id == Ranking.item_id)
        .where(CampaignItem.campaign_id == campaign.id, Ranking.user_id == user_id)).one()
    return done[1] < math.floor((done[0] + 1) * campaign.gold_rate)


def is_correct(ranks: dict[str, Any], flags: list, best: int) -> bool:
    """The known best completion is the judgement's single rank 1 (not flagged, not tied at the top)."""
    if best in {int(f) for f in flags or []}:
        return False
    top = [int(c) for c, r in (ranks or {}).items() if r == 1]
    return top == [best]


def annotator_checks(session: Session, campaign_ref: int | str, *, threshold: float = GOLD_THRESHOLD) -> list[dict]:
    """Per annotator: gold judged, accuracy with its 95 % interval, flagged below ``threshold`` (with at least
    ``MIN_GOLD`` gold judgements); judgements, too-fast count and share. Judgement and too-fast counts come from
    ``quality.quality_report`` (cached per campaign), and only gold judgements are read here, so it stays quick at
    100,000 rankings."""
    from labeling.quality import quality_report

    campaign = find_campaign(session, campaign_ref)
    report = quality_report(session, campaign.id)
    gold: dict[str, list[float]] = defaultdict(list)
    gold_item: dict[str, list[int]] = defaultdict(list)
    for name, item_id, ranks, flags, best in session.execute(
            select(User.name, Ranking.item_id, Ranking.ranks, Ranking.flags, CampaignItem.gold_completion_id)
            .join(User, User.id == Ranking.user_id).join(CampaignItem, CampaignItem.id == Ranking.item_id)
            .where(CampaignItem.campaign_id == campaign.id, Ranking.skipped.is_(False),
                   CampaignItem.gold_completion_id.is_not(None))):
        gold[name].append(1.0 if is_correct(ranks, flags, best) else 0.0)
        gold_item[name].append(item_id)
    out = []
    for row in report["annotators"]:
        name, judged = row["annotator"], row["items"]
        fast = report["too_fast"].get(name, 0)
        interval = stats.mean_interval(gold[name], gold_item[name]) if gold[name] else None
        out.append({"annotator": name, "judgements": judged, "gold_judged": len(gold[name]),
                    "gold_accuracy": interval.mean if interval else None,
                    "gold_low": interval.low if interval else None, "gold_high": interval.high if interval else None,
                    "below_threshold": bool(interval and len(gold[name]) >= MIN_GOLD and interval.mean < threshold),
                    "too_fast": fast, "too_fast_share": fast / judged if judged else 0.0})
    return out
