"""Make a campaign's completions in batches, for a background job: K per item across the campaign's sources.

Slot j of an item's K completions comes from source j mod S (``campaigns.slot_counts``). Each completion
records its provenance: model (id and name), the decoding settings and seed of its call, the exact prompt
text fed to the model, the chat template flag, and ``source_label``.

Generation runs *outside* any database transaction; each batch of items is written in one short write
transaction, so an item gets all of its missing completions or none, annotators keep ranking meanwhile,
and a cancelled or crashed run resumes where it stopped (only items lacking completions are generated).
A prompt that a source cannot take (e.g. too long for its context window) fails that item only; it is
reported in ``failed``.
"""

from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.db.completions import completion_row
from backend.db.lookup import get_or_raise
from backend.db.tables import Campaign, CampaignItem, Completion, Prompt
from backend.errors import StudioError
from backend.generation.decoding import DecodingConfig
from labeling.campaigns import effective_sources
from labeling.item_size import any_imported

SessionFactory = Callable[..., AbstractContextManager[Session]]


def _as_factory(session_or_factory: Session | SessionFactory | None) -> SessionFactory:
    """Accept ``session_scope`` (or any callable taking ``write=``), or an open Session (the caller commits)."""
    if session_or_factory is None:
        from backend.db.engine import session_scope

        return session_scope
    if isinstance(session_or_factory, Session):
        session = session_or_factory

        @contextmanager
        def same_session(write: bool = False) -> Iterator[Session]:
            yield session
            session.flush()

        return same_session
    return session_or_factory


def items_missing_completions(session: Session, campaign: Campaign) -> list[tuple[int, int, str, int]]:
    """``(item_id, prompt_id, prompt text, completions so far)`` of items with fewer than K completions.

    Items whose completions were imported are complete as they are (``labeling.item_size``): never topped up.
    """
    made = (select(Completion.item_id, func.count(Completion.id).label("n"), any_imported().label("imported")).join(
        CampaignItem, CampaignItem.id == Completion.item_id).where(CampaignItem.campaign_id == campaign.id)
        .group_by(Completion.item_id).subquery())
    rows = session.execute(
        select(CampaignItem.id, Prompt.id, Prompt.text, func.coalesce(made.c.n, 0))
        .join(Prompt, Prompt.id == CampaignItem.prompt_id).outerjoin(made, made.c.item_id == CampaignItem.id)
        .where(CampaignItem.campaign_id == campaign.id, func.coalesce(made.c.n, 0) < campaign.k,
               func.coalesce(made.c.imported, 0) == 0)
        .order_by(CampaignItem.id))
    return [tuple(r) for r in rows]


def _seed(cfg: DecodingConfig, campaign_id: int, first_item: int, source_index: int) -> int:
    """The source's own seed, or one derived from the campaign, batch and source: runs are repeatable."""
    if cfg.seed is not None:
        return cfg.seed
    return (campaign_id * 1_000_003 + first_item * 97 + source_index) % 2**31


def _generate_batch(batch: list[tuple[int, int, str, int]], campaign_id: int, k: int, sources: list[dict],
                    models: list, device: str | None, precision: str) -> tuple[dict[int, list[Completion]], dict[int, str]]:
    """Completions (unsaved rows) per item of the batch, and the items that failed with why."""
    from backend.generation.engine import format_prompt, generate
    from backend.models.loader import load_model

    made: dict[int, list[Completion]] = defaultdict(list)
    failed: dict[int, str] = {}
    for s_idx, (source, resolved) in enumerate(zip(sources, models, strict=True)):
        loaded = load_model(resolved, device, precision)
        chat = bool(source.get("chat", True)) and bool(getattr(loaded.tokenizer, "chat_template", None))
        groups: dict[int, list[tuple[int, int, str]]] = defaultdict(list)  # slots needed → items
        for item_id, prompt_id, text, have in batch:
            need = sum(1 for j in range(have, k) if j % len(sources) == s_idx)
            if need and item_id not in failed:
                groups[need].append((item_id, prompt_id, format_prompt(loaded.tokenizer, text, chat)))
        for need, items in groups.items():
            cfg = DecodingConfig.model_validate({**source["decoding"], "num_return_sequences": need})
            cfg = cfg.model_copy(update={"seed": _seed(cfg, campaign_id, items[0][0], s_idx)})
            try:
                outputs = generate(loaded, [p for _, _, p in items], cfg, batch_size=len(items))
            except StudioError:  # one bad prompt must not sink the batch: retry the items one by one
                outputs = []
                for item_id, _, prompt_text in items:
                    try:
                        outputs.append(generate(loaded, [prompt_text], cfg)[0])
                    except StudioError as exc:
                        failed[item_id] = f"{source['label']}: {exc}"
                        outputs.append([])
            for (item_id, prompt_id, prompt_text), results in zip(items, outputs, strict=True):
                made[item_id].extend(completion_row(r, resolved, prompt_text, prompt_id=prompt_id, item_id=item_id,
                                                    template="chat" if chat else None, source_label=source["label"])
                                     for r in results)
    return {i: rows for i, rows in made.items() if i not in failed}, failed


def generate_campaign_completions(session_factory: Session | SessionFactory | None, campaign_id: int,
                                  progress_cb: Callable[[int, int], None] | None = None,
                                  should_cancel: Callable[[], bool] | None = None, *, batch_size: int = 8,
                                  device: str | None = None, precision: str = "auto",
                                  item_ids: list[int] | None = None) -> dict[str, Any]:
    """Generate the missing completions of every item of a campaign, ``batch_size`` items at a time.

    Args:
        session_factory: ``backend.db.engine.session_scope`` (default), any callable taking ``write=`` and
            returning a session context manager, or an open Session (then the caller commits).
        progress_cb: called as ``progress_cb(items_done, items_total)`` after each batch (and once at 0).
        should_cancel: checked before each batch; when it returns True the run stops cleanly.
        item_ids: only these items (the workbench's on-demand path for the item an annotator waits for).

    Returns:
        ``{"total", "done", "completions", "failed": [{item_id, reason}], "cancelled"}``.
    """
    from backend.models.store import resolve

    factory = _as_factory(session_factory)
    with factory(write=False) as s:
        campaign = get_or_raise(s, Campaign, campaign_id, "campaign")
        if campaign.status == "archived":
            raise StudioError(f"Campaign '{campaign.name}' is archived: unarchive it to generate completions.")
        sources = effective_sources(campaign)
        models = [resolve(s, src["model"]) for src in sources]
        todo = items_missing_completions(s, campaign)
        if item_ids is not None:
            todo = [row for row in todo if row[0] in set(item_ids)]
        k = campaign.k
    report: dict[str, Any] = {"total": len(todo), "done": 0, "completions": 0, "failed": [], "cancelled": False}
    if progress_cb:
        progress_cb(0, len(todo))
    for start in range(0, len(todo), max(1, batch_size)):
        if should_cancel and should_cancel():
            report["cancelled"] = True
            break
        batch = todo[start:start + batch_size]
        made, failed = _generate_batch(batch, campaign_id, k, sources, models, device, precision)
        with factory(write=True) as s:
            current = dict(s.execute(select(Completion.item_id, func.count(Completion.id))
                                     .where(Completion.item_id.in_(list(made))).group_by(Completion.item_id)).all())
            before = {item_id: have for item_id, _, _, have in batch}
            for item_id, rows in made.items():
                if current.get(item_id, 0) != before[item_id]:
                    continue  # another run filled this item meanwhile: keep theirs, never exceed K
                s.add_all(rows)
                report["completions"] += len(rows)
        report["failed"].extend({"item_id": i, "reason": why} for i, why in failed.items())
        report["done"] += len(batch)
        if progress_cb:
            progress_cb(report["done"], len(todo))
    return report
