"""Exact overlap: an item's overlap slots are reserved when the item is served, not when it is ranked.

Without reservations, two annotators who open the last open slot of an item at the same moment both rank it and the
item ends with overlap + 1 judgements. Here serving an ordinary item reserves one of its ``overlap`` slots for the
annotator (an ``assignments`` row, unique per ``(item, slot)``, so the database itself refuses a second holder of a
slot), for ``RESERVATION`` (30 minutes); ranking it keeps the slot for good, skipping or undoing frees it, and a
reservation that expires unranked is taken back by the next annotator who needs a slot. Rankings made without a
reservation (imports, older data) occupy slots too.
"""

from datetime import timedelta

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.db.tables import Assignment, CampaignItem, Ranking, utcnow

RESERVATION = timedelta(minutes=30)


def held_item(session: Session, campaign_id: int, user_id: int) -> int | None:
    """The item this annotator holds an unexpired, unranked reservation on in this campaign (served again on a
    reload, so a reservation is never left behind for another item)."""
    return session.scalar(
        select(Assignment.item_id).join(CampaignItem, CampaignItem.id == Assignment.item_id)
        .where(CampaignItem.campaign_id == campaign_id, Assignment.user_id == user_id, Assignment.done.is_(False),
               Assignment.expires_at > utcnow(),
               ~select(Ranking.id).where(Ranking.item_id == Assignment.item_id,
                                         Ranking.user_id == user_id).exists())
        .order_by(Assignment.id).limit(1))


def reserve(session: Session, item_id: int, user_id: int, overlap: int) -> bool:
    """Hold one of the item's ``overlap`` slots for this annotator; False when every slot is held or used.

    A slot is used by a ranking (kept assignment, or a non-skipped ranking without one) or held by an unexpired
    reservation. The insert runs in a savepoint: when another annotator took the same slot a moment earlier the
    unique index refuses it, and the next free slot is tried.
    """
    now = utcnow()
    mine = session.scalar(select(Assignment).where(Assignment.item_id == item_id, Assignment.user_id == user_id))
    if mine is not None:
        if not mine.done:
            mine.expires_at = now + RESERVATION
        return True
    session.execute(delete(Assignment).where(Assignment.item_id == item_id, Assignment.done.is_(False),
                                             Assignment.expires_at <= now))  # expired: the slot is free again
    for _ in range(overlap):
        taken = set(session.scalars(select(Assignment.slot).where(Assignment.item_id == item_id)))
        holds = exists().where(Assignment.item_id == Ranking.item_id, Assignment.user_id == Ranking.user_id)
        unreserved = session.scalar(select(func.count(Ranking.id)).where(
            Ranking.item_id == item_id, Ranking.skipped.is_(False), ~holds))
        if len(taken) + unreserved >= overlap:
            return False
        slot = min(set(range(overlap + len(taken))) - taken)
        try:
            with session.begin_nested():
                session.add(Assignment(item_id=item_id, user_id=user_id, slot=slot, expires_at=now + RESERVATION))
                session.flush()
            return True
        except IntegrityError:  # taken at the same moment by someone else: look again
            continue
    return False


def complete(session: Session, item_id: int, user_id: int) -> None:
    """The annotator ranked the item: their slot is used for good."""
    session.execute(update(Assignment).where(Assignment.item_id == item_id, Assignment.user_id == user_id)
                    .values(done=True))


def release(session: Session, item_id: int, user_id: int) -> None:
    """The annotator skipped the item, or undid their ranking: the slot is free again."""
    session.execute(delete(Assignment).where(Assignment.item_id == item_id, Assignment.user_id == user_id))
