"""Labeling services for annotators: the next item, submit / skip / undo a ranking, one's own history.

Each function takes the session first and does one user action. Rankings are validated before they are
stored, written once (a unique constraint per item and annotator: a double click gets a StudioError, not a
second row) and never edited in place: what people did is the truth; pairs are derived from it
(``labeling.pairs``). Annotator-facing functions take the user id and only ever read that user's rankings.

Campaign administration lives in ``labeling.campaigns``.
"""

import math
import random
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import exists, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.db.lookup import get_or_raise
from backend.db.tables import Assignment, Campaign, CampaignItem, Completion, Prompt, Ranking, User, utcnow
from backend.errors import StudioError
from labeling import reservations
from labeling.accounts import get_user as _user
from labeling.campaigns import find_campaign, list_campaigns
from labeling.gold import gold_due
from labeling.item_size import IMPORTED, item_is_complete
from labeling.pairs import kept_ranks, validate_ranks

LETTERS = "ABCDEFGHI"
MAX_SERVE_TRIES = 50  # items tried when others reserve the last slots at the same moment
MAX_COMMENT = 5000


@dataclass
class Task:
    """One item as an annotator sees it: completions shuffled for this annotator, no model identity."""

    campaign_id: int
    item_id: int
    prompt: str
    criterion: str
    completions: list[dict[str, Any]] = field(default_factory=list)  # [{id, letter, text}]
    done_by_me: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def get_or_create_user(session: Session, name: str, role: str = "annotator") -> User:
    """A user by name, created without a password when new (imports and the name-only legacy page)."""
    name = (name or "").strip()
    if not name:
        raise StudioError("Enter your name to start labeling.")
    if len(name) > 80:
        raise StudioError("Names are at most 80 characters.")
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        user = User(name=name, role=role)
        session.add(user)
        session.flush()
    return user


def _open_campaign(session: Session, campaign_id: int) -> Campaign:
    campaign = get_or_raise(session, Campaign, campaign_id, "campaign")
    if campaign.status != "open":
        raise StudioError(f"Campaign '{campaign.name}' is {campaign.status}: it takes no more rankings.")
    return campaign


def next_item_statement(campaign_id: int, user_id: int, overlap: int, k: int, *, ready_only: bool = False,
                        gold: bool | None = None):
    """The SELECT behind ``next_item`` (exposed so tests and the benchmark can EXPLAIN it).

    Args:
        gold: None = every item under its overlap; False = ordinary items only; True = gold items, whatever their
            overlap (``labeling.gold``).
    """
    mine = exists().where(Ranking.item_id == CampaignItem.id, Ranking.user_id == user_id)
    stmt = select(CampaignItem).where(CampaignItem.campaign_id == campaign_id, ~mine)
    if gold:
        stmt = stmt.where(CampaignItem.gold_completion_id.is_not(None))
    else:  # slots used by rankings or held by others' unexpired reservations (``labeling.reservations``)
        holds = exists().where(Assignment.item_id == Ranking.item_id, Assignment.user_id == Ranking.user_id)
        unreserved = (select(func.count(Ranking.id))
                      .where(Ranking.item_id == CampaignItem.id, Ranking.skipped.is_(False), ~holds)
                      .correlate(CampaignItem).scalar_subquery())
        held = (select(func.count(Assignment.id))
                .where(Assignment.item_id == CampaignItem.id, Assignment.user_id != user_id,
                       or_(Assignment.done.is_(True), Assignment.expires_at > utcnow()))
                .correlate(CampaignItem).scalar_subquery())
        stmt = stmt.where(unreserved + held < overlap)
        if gold is False:
            stmt = stmt.where(CampaignItem.gold_completion_id.is_(None))
    if ready_only:
        stmt = stmt.where(item_is_complete(k))  # K completions, or the item's own imported ones
    return stmt.order_by(CampaignItem.id).limit(1)


def next_item(session: Session, campaign_id: int, user_id: int, *, ready_only: bool = False) -> CampaignItem | None:
    """The first item this annotator has not judged (or skipped) that still needs judgements.

    Items go out in id order, so each item reaches its overlap before later ones start; skips do not count
    towards the overlap. When the campaign's gold rate is above 0, gold items are mixed in at that rate
    (``labeling.gold.gold_due``) and served like any item. The query walks ``campaign_items`` by its campaign index and probes ``rankings``
    through its (item_id, user_id) unique index and item_id index: no scan of all rankings.

    Args:
        ready_only: serve only items whose completions all exist (the workbench; generated ones come from a job
            and number the campaign's K, imported ones number what the import brought: ``labeling.item_size``).
    """
    campaign = get_or_raise(session, Campaign, campaign_id, "campaign")
    if not campaign.gold_rate:  # gold items, if any, are ordinary items
        return session.scalar(next_item_statement(campaign.id, user_id, campaign.overlap, campaign.k,
                                                  ready_only=ready_only))
    ordinary = session.scalar(next_item_statement(campaign.id, user_id, campaign.overlap, campaign.k,
                                                  ready_only=ready_only, gold=False))
    if ordinary is None:  # the annotator's work is done: no gold item left over to check them on
        return None
    if gold_due(session, campaign, user_id):
        gold_item = session.scalar(next_item_statement(campaign.id, user_id, campaign.overlap, campaign.k,
                                                       ready_only=ready_only, gold=True))
        if gold_item is not None:
            return gold_item
    return ordinary


def item_prompt(session: Session, item: CampaignItem) -> str:
    return session.get(Prompt, item.prompt_id).text


def item_completions(session: Session, item_id: int) -> list[Completion]:
    return list(session.scalars(select(Completion).where(Completion.item_id == item_id).order_by(Completion.id)))


def _done_by(session: Session, campaign_id: int, user_id: int) -> int:
    return session.scalar(select(func.count(Ranking.id)).join(CampaignItem, CampaignItem.id == Ranking.item_id)
                          .where(Ranking.user_id == user_id, CampaignItem.campaign_id == campaign_id,
                                 Ranking.skipped.is_(False)))


def shown_order(user_id: int, item_id: int, completions: list) -> list:
    """The item's completions (in id order) as this annotator sees them: shuffled per annotator and item, so
    position and model cannot bias the ranking, and the same on every visit."""
    shown = list(completions)
    random.Random(f"{user_id}-{item_id}").shuffle(shown)
    return shown


def judgement_text(user_id: int, item_id: int, ranks: dict[int, int], flags: list[int]) -> str:
    """A ranking as its annotator saw it, by letter: ``"A 2 · B 1 · C F"``."""
    ids = shown_order(user_id, item_id, sorted({*ranks, *flags}))
    return " · ".join(f"{LETTERS[i]} {'F' if cid in flags else ranks.get(cid, '–')}" for i, cid in enumerate(ids))


def _serve(session: Session, campaign: Campaign, user_id: int) -> CampaignItem | None:
    """The item to serve: the one this annotator already holds a reservation on, else the next one in line whose
    overlap slot they manage to reserve (another annotator may take the last slot at the same moment: then the
    next item). Gold items need no slot."""
    if (held := reservations.held_item(session, campaign.id, user_id)) is not None:
        return session.get(CampaignItem, held)
    for _ in range(MAX_SERVE_TRIES):
        item = next_item(session, campaign.id, user_id, ready_only=True)
        if item is None or item.gold_completion_id is not None and campaign.gold_rate:
            return item
        if reservations.reserve(session, item.id, user_id, campaign.overlap):
            return item
    return None


def next_task(session: Session, campaign_id: int, user_id: int, item_id: int | None = None) -> Task | None:
    """What the annotator ranks next (None: nothing left for them, or completions are still being made).

    Args:
        item_id: serve this item again (after ``undo_last``) instead of the next one in line.
    """
    _user(session, user_id)
    campaign = _open_campaign(session, campaign_id)
    if item_id is not None:
        item = session.get(CampaignItem, item_id)
        if item is None or item.campaign_id != campaign.id:
            raise StudioError("That item is not part of this campaign.")
        if session.scalar(select(Ranking.id).where(Ranking.item_id == item.id, Ranking.user_id == user_id)):
            raise StudioError("You already judged this item.")
        needs_slot = item.gold_completion_id is None or not campaign.gold_rate
        if needs_slot and not reservations.reserve(session, item.id, user_id, campaign.overlap):
            raise StudioError("Other annotators took this item's last slot meanwhile: take the next item.")
    else:
        item = _serve(session, campaign, user_id)
        if item is None:
            return None
    made = item_completions(session, item.id)
    shown = [(c.id, c.text) for c in made]
    if len(shown) < campaign.k and not any(c.source_label == IMPORTED for c in made):
        raise StudioError("This item's completions are not ready yet: generate the campaign's completions first.")
    shown = shown_order(user_id, item.id, shown)
    return Task(campaign_id=campaign.id, item_id=item.id, prompt=item_prompt(session, item),
                criterion=campaign.criterion, done_by_me=_done_by(session, campaign.id, user_id),
                completions=[{"id": cid, "letter": LETTERS[i], "text": text} for i, (cid, text) in enumerate(shown)])


def validate_ranking(completion_ids: list[int], ranks: dict[int, int], flagged: set[int]) -> None:
    """Every unflagged completion has a rank in 1..K, ranks are consistent (``pairs.validate_ranks``),
    flagged completions have none. All completions may be flagged (the item then gives no pair)."""
    unknown = (set(ranks) | set(flagged)) - set(completion_ids)
    if unknown:
        raise StudioError("The ranking refers to completions that are not part of this item.")
    unranked = [c for c in completion_ids if c not in flagged and c not in ranks]
    if unranked:
        raise StudioError(f"Rank every completion or flag it: {len(unranked)} completion(s) have no rank.")
    if set(flagged) & set(ranks):
        raise StudioError("A flagged completion cannot also be ranked.")
    bad = [r for r in ranks.values() if isinstance(r, bool) or not isinstance(r, int) or not 1 <= r <= len(completion_ids)]
    if bad:
        raise StudioError(f"Ranks must be whole numbers from 1 (best) to {len(completion_ids)}.")
    validate_ranks([ranks.get(c) for c in completion_ids], [c in flagged for c in completion_ids])


def submit_ranking(session: Session, item_id: int, user_id: int, ranks: dict[int, int], *,
                   flagged: set[int] | None = None, comment: str = "", seconds_spent: float = 0.0,
                   skipped: bool = False) -> Ranking:
    """Validate and store one annotator's judgement of an item (once: a repeat is refused with StudioError).

    Args:
        ranks: completion id → rank (1 = best, equal = tie); ignored when ``skipped``.
        flagged: completion ids marked unusable (F); the others' ranks are stored re-densified (``pairs.kept_ranks``):
            ranks 1 and 3 around a flagged 2nd are stored as 1 and 2.
        seconds_spent: time on the item, measured by the page.
        skipped: the annotator passes on the item (stored, not served to them again, not counted to overlap).
    """
    flagged = set(flagged or ())
    _user(session, user_id)
    item = get_or_raise(session, CampaignItem, item_id, message="This item no longer exists.")
    _open_campaign(session, item.campaign_id)
    ids = [c.id for c in item_completions(session, item_id)]
    if not ids:
        raise StudioError("This item has no completions to rank yet.")
    if not skipped:
        validate_ranking(ids, ranks, flagged)
        by_position = kept_ranks([ranks.get(c) for c in ids], [c in flagged for c in ids])
        ranks = {c: r for c, r in zip(ids, by_position, strict=True) if r is not None}  # re-densified if flagged
    if not isinstance(seconds_spent, int | float) or not math.isfinite(seconds_spent) or seconds_spent < 0:
        raise StudioError("The time spent must be a non-negative number of seconds.")
    comment = (comment or "").strip()
    if len(comment) > MAX_COMMENT:
        raise StudioError(f"Keep the comment under {MAX_COMMENT} characters.")
    row = Ranking(item_id=item_id, user_id=user_id, ranks={} if skipped else {str(k): v for k, v in ranks.items()},
                  flags=[] if skipped else sorted(flagged), comment=comment, seconds_spent=float(seconds_spent),
                  skipped=skipped)
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        raise StudioError("You already submitted a judgement for this item.") from None
    if skipped:  # a skip does not count towards the overlap: the slot goes back
        reservations.release(session, item_id, user_id)
    else:
        reservations.complete(session, item_id, user_id)
    return row


def submit_and_next(session: Session, item_id: int, user_id: int, ranks: dict[int, int],
                    **options: Any) -> dict[str, Any]:
    """Submit (or skip, ``skipped=True``) and return the next task in the same transaction: the page shows it at
    once. Returns ``{"ranking_id", "next": Task | None}``."""
    row = submit_ranking(session, item_id, user_id, ranks, **options)
    item = session.get(CampaignItem, item_id)
    return {"ranking_id": row.id, "next": next_task(session, item.campaign_id, user_id)}


def undo_last(session: Session, user_id: int, campaign_id: int | None = None) -> dict[str, Any]:
    """Remove this user's most recent ranking (in ``campaign_id`` if given) and return what it said.

    The returned ``item_id`` can be served again with ``next_task(..., item_id=...)`` and the form pre-filled
    from ``ranks`` / ``flagged`` / ``comment``. Only the user's own rankings are touched; closed campaigns refuse.
    """
    _user(session, user_id)
    stmt = select(Ranking).where(Ranking.user_id == user_id)
    if campaign_id is not None:
        stmt = stmt.join(CampaignItem, CampaignItem.id == Ranking.item_id).where(CampaignItem.campaign_id == campaign_id)
    row = session.scalar(stmt.order_by(Ranking.created_at.desc(), Ranking.id.desc()).limit(1))
    if row is None:
        raise StudioError("There is nothing to undo.")
    item = session.get(CampaignItem, row.item_id)
    _open_campaign(session, item.campaign_id)
    undone = {"ranking_id": row.id, "campaign_id": item.campaign_id, "item_id": row.item_id,
              "ranks": {int(k): v for k, v in row.ranks.items()}, "flagged": list(row.flags),
              "comment": row.comment, "skipped": row.skipped, "seconds_spent": row.seconds_spent}
    session.delete(row)
    reservations.release(session, row.item_id, user_id)
    session.flush()
    return undone


def my_history(session: Session, user_id: int, campaign_id: int, limit: int = 20) -> list[dict[str, Any]]:
    """The user's own latest judgements in a campaign (never anyone else's)."""
    _user(session, user_id)
    rows = session.execute(
        select(Ranking, Prompt.text).join(CampaignItem, CampaignItem.id == Ranking.item_id)
        .join(Prompt, Prompt.id == CampaignItem.prompt_id)
        .where(Ranking.user_id == user_id, CampaignItem.campaign_id == campaign_id)
        .order_by(Ranking.created_at.desc(), Ranking.id.desc()).limit(limit))
    return [{"ranking_id": r.id, "item_id": r.item_id, "prompt": text[:200], "skipped": r.skipped,
             "flagged": len(r.flags), "ranks": {int(k): v for k, v in r.ranks.items()}, "comment": r.comment,
             "judgement": "skipped" if r.skipped else judgement_text(
                 user_id, r.item_id, {int(k): v for k, v in r.ranks.items()}, list(r.flags)),
             "seconds": round(r.seconds_spent, 1), "created_at": r.created_at.isoformat(timespec="seconds")}
            for r, text in rows]


def my_progress(session: Session, user_id: int, campaign_id: int) -> dict[str, Any]:
    """The user's own counts in a campaign, and whether anything is waiting for them."""
    _user(session, user_id)
    campaign = find_campaign(session, campaign_id)
    ranked, skipped = session.execute(
        select(func.count(Ranking.id).filter(Ranking.skipped.is_(False)),
               func.count(Ranking.id).filter(Ranking.skipped.is_(True)))
        .join(CampaignItem, CampaignItem.id == Ranking.item_id)
        .where(Ranking.user_id == user_id, CampaignItem.campaign_id == campaign.id)).one()
    waiting = campaign.status == "open" and next_item(session, campaign.id, user_id, ready_only=True) is not None
    pending = campaign.status == "open" and not waiting and \
        next_item(session, campaign.id, user_id) is not None  # items that still lack completions
    return {"campaign_id": campaign.id, "status": campaign.status, "ranked": ranked, "skipped": skipped,
            "has_next": waiting, "waiting_for_completions": pending}


def campaigns_for_annotator(session: Session, user_id: int) -> list[dict[str, Any]]:
    """Open campaigns with this user's own ranked count."""
    _user(session, user_id)
    mine = dict(session.execute(
        select(CampaignItem.campaign_id, func.count(Ranking.id)).join(Ranking, Ranking.item_id == CampaignItem.id)
        .where(Ranking.user_id == user_id, Ranking.skipped.is_(False)).group_by(CampaignItem.campaign_id)).all())
    return [{**c, "mine": mine.get(c["id"], 0)} for c in list_campaigns(session, status="open")]


def campaign_guidelines(session: Session, campaign_id: int) -> str:
    return find_campaign(session, campaign_id).guidelines

