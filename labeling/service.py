"""Labeling services: campaigns of prompts, K completions per item, and annotators' rankings.

Each function takes the session first and does one user action. Rankings are validated before
they are stored, written once (a unique constraint per item and annotator), and never edited in
place: what people did is the truth; pairs are derived from it (``labeling.pairs``).
"""

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.db.tables import Campaign, CampaignItem, Completion, Prompt, Ranking, User
from backend.errors import StudioError
from backend.generation.decoding import DecodingConfig

DEFAULT_GUIDELINES = """\
**Rank the completions from most to least preferred** for the criterion of this campaign.

- Give rank 1 to the best completion, 2 to the next, and so on.
- Two completions may share a rank when you truly cannot tell them apart — use ties sparingly.
- If a completion is nonsense, empty or unsafe to rank, **flag it (F)** instead of ranking it.
- Judge what is written, not what the model may have meant; check facts you can check.
"""

DEFAULT_SAMPLING = DecodingConfig(do_sample=True, temperature=0.9, top_p=0.95, max_new_tokens=96,
                                  repetition_penalty=1.1)


def get_or_create_user(session: Session, name: str, role: str = "annotator") -> User:
    name = name.strip()
    if not name:
        raise StudioError("Enter your name to start labeling.")
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        user = User(name=name, role=role)
        session.add(user)
        session.flush()
    return user


def create_campaign(session: Session, name: str, prompts: list[str], *, k: int = 3, criterion: str = "helpfulness",
                    guidelines: str = DEFAULT_GUIDELINES, overlap: int = 1, source: str = "user") -> Campaign:
    """A campaign with one item per (non-empty, distinct) prompt."""
    name = name.strip()
    prompts = list(dict.fromkeys(p.strip() for p in prompts if p and p.strip()))
    if not name:
        raise StudioError("Give the campaign a name.")
    if not prompts:
        raise StudioError("The prompt set is empty: add at least one prompt.")
    if not 2 <= k <= 9:
        raise StudioError(f"K must be between 2 and 9 completions per prompt, not {k}.")
    if overlap < 1:
        raise StudioError("Each item needs at least one annotator (overlap ≥ 1).")
    if session.scalar(select(Campaign.id).where(Campaign.name == name)):
        raise StudioError(f"A campaign named '{name}' already exists.")
    campaign = Campaign(name=name, criterion=criterion, guidelines=guidelines, k=k, overlap=overlap)
    session.add(campaign)
    session.flush()
    for text in prompts:
        prompt = Prompt(text=text, source=source)
        session.add(prompt)
        session.flush()
        session.add(CampaignItem(campaign_id=campaign.id, prompt_id=prompt.id))
    session.flush()
    return campaign


def list_campaigns(session: Session) -> list[dict[str, Any]]:
    items = func.count(func.distinct(CampaignItem.id))
    ranked = func.count(func.distinct(Ranking.id))
    rows = session.execute(
        select(Campaign, items, ranked).outerjoin(CampaignItem, CampaignItem.campaign_id == Campaign.id)
        .outerjoin(Ranking, Ranking.item_id == CampaignItem.id).group_by(Campaign.id).order_by(Campaign.id.desc()))
    return [{"id": c.id, "name": c.name, "criterion": c.criterion, "k": c.k, "overlap": c.overlap,
             "status": c.status, "items": n_items, "rankings": n_ranked,
             "needed": n_items * c.overlap} for c, n_items, n_ranked in rows]


def next_item(session: Session, campaign_id: int, user_id: int) -> CampaignItem | None:
    """The first item this annotator has not judged and that still needs judgements."""
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise StudioError(f"There is no campaign {campaign_id}.")
    mine = select(Ranking.item_id).where(Ranking.user_id == user_id)
    counts = (select(Ranking.item_id, func.count().label("n")).group_by(Ranking.item_id).subquery())
    stmt = (select(CampaignItem).outerjoin(counts, counts.c.item_id == CampaignItem.id)
            .where(CampaignItem.campaign_id == campaign_id, CampaignItem.id.not_in(mine),
                   func.coalesce(counts.c.n, 0) < campaign.overlap)
            .order_by(CampaignItem.id).limit(1))
    return session.scalar(stmt)


def item_prompt(session: Session, item: CampaignItem) -> str:
    return session.get(Prompt, item.prompt_id).text


def item_completions(session: Session, item_id: int) -> list[Completion]:
    return list(session.scalars(select(Completion).where(Completion.item_id == item_id).order_by(Completion.id)))


def ensure_completions(session: Session, item_id: int, model_ref: str | None = None,
                       cfg: DecodingConfig = DEFAULT_SAMPLING) -> list[Completion]:
    """Generate the item's K completions once (sampled, one batch) and store them with provenance."""
    from backend.generation.engine import format_prompt, generate
    from backend.models.loader import load_model
    from backend.models.store import resolve

    existing = item_completions(session, item_id)
    item = session.get(CampaignItem, item_id)
    campaign = session.get(Campaign, item.campaign_id)
    missing = campaign.k - len(existing)
    if missing <= 0:
        return existing
    resolved = resolve(session, model_ref)
    loaded = load_model(resolved)
    text = item_prompt(session, item)
    prompt_text = format_prompt(loaded.tokenizer, text, chat=True)
    cfg = cfg.model_copy(update={"num_return_sequences": missing, "seed": cfg.seed if cfg.seed is not None else item_id})
    for r in generate(loaded, [prompt_text], cfg)[0]:
        session.add(Completion(prompt_id=item.prompt_id, item_id=item_id, model_id=resolved.id,
                               model_name=resolved.name, prompt_text=prompt_text, text=r.text,
                               decoding=r.settings, seed=cfg.seed, prompt_tokens=r.prompt_tokens,
                               completion_tokens=r.completion_tokens, seconds=r.seconds,
                               finish_reason=r.finish_reason))
    session.flush()
    return item_completions(session, item_id)


def validate_ranking(completion_ids: list[int], ranks: dict[int, int], flagged: set[int]) -> None:
    """Every unflagged completion has a rank in 1..K; flagged ones have none; at least one is ranked."""
    unknown = (set(ranks) | flagged) - set(completion_ids)
    if unknown:
        raise StudioError("The ranking refers to completions that are not part of this item.")
    unranked = [c for c in completion_ids if c not in flagged and c not in ranks]
    if unranked:
        raise StudioError(f"Rank every completion or flag it: {len(unranked)} completion(s) have no rank.")
    if flagged & set(ranks):
        raise StudioError("A flagged completion cannot also be ranked.")
    bad = [r for r in ranks.values() if not isinstance(r, int) or not 1 <= r <= len(completion_ids)]
    if bad:
        raise StudioError(f"Ranks must be whole numbers from 1 (best) to {len(completion_ids)}.")


def submit_ranking(session: Session, item_id: int, user_id: int, ranks: dict[int, int], *,
                   flagged: set[int] | None = None, comment: str = "", seconds_spent: float = 0.0,
                   skipped: bool = False) -> Ranking:
    """Validate and store one annotator's judgement of an item (once: a repeat is refused)."""
    flagged = flagged or set()
    ids = [c.id for c in item_completions(session, item_id)]
    if not ids:
        raise StudioError("This item has no completions to rank yet.")
    if not skipped:
        validate_ranking(ids, ranks, flagged)
    row = Ranking(item_id=item_id, user_id=user_id, ranks={str(k): v for k, v in ranks.items()},
                  flags=sorted(flagged), comment=comment.strip(), seconds_spent=seconds_spent, skipped=skipped)
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        raise StudioError("You already submitted a judgement for this item.") from None
    return row


def campaign_guidelines(session: Session, campaign_id: int) -> str:
    return session.get(Campaign, campaign_id).guidelines


def create_demo_campaign(session: Session, n_prompts: int = 20) -> Campaign:
    """A helpfulness campaign over the project's demo prompt set (K = 3)."""
    from backend.data.demo_data import generate_labeling_prompts

    prompts = [p["prompt"] for p in generate_labeling_prompts()[:n_prompts]]
    return create_campaign(session, "demo-helpfulness", prompts, k=3, source="demo")
