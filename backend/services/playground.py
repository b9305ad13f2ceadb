"""Playground services: load a model, generate (batched or streamed) and keep every run."""

from collections.abc import Iterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.db.tables import Completion, Prompt
from backend.errors import StudioError
from backend.generation.decoding import DecodingConfig
from backend.generation.engine import GenerationResult, StreamChunk, format_prompt, generate, stream
from backend.models.loader import LoadedModel, load_model
from backend.models.store import ResolvedModel, resolve


def check_prompt(text: str) -> None:
    if not text or not text.strip():
        raise StudioError("The prompt is empty: type something for the model to continue.")


def open_model(session: Session, model_ref: str | None, precision: str = "auto") -> tuple[ResolvedModel, LoadedModel]:
    resolved = resolve(session, model_ref)
    return resolved, load_model(resolved, precision=precision)


def record_completion(session: Session, resolved: ResolvedModel, user_text: str, prompt_text: str,
                      result: GenerationResult, *, source: str = "playground", template: str | None = None,
                      item_id: int | None = None) -> Completion:
    """Save a completion with everything needed to reproduce it."""
    prompt = Prompt(text=user_text, source=source)
    session.add(prompt)
    session.flush()
    row = Completion(prompt_id=prompt.id, item_id=item_id, model_id=resolved.id, model_name=resolved.name,
                     prompt_text=prompt_text, text=result.text, decoding=result.settings,
                     seed=result.settings.get("seed"), template=template, prompt_tokens=result.prompt_tokens,
                     completion_tokens=result.completion_tokens, seconds=result.seconds,
                     finish_reason=result.finish_reason)
    session.add(row)
    session.flush()
    return row


def run_generation(session: Session, model_ref: str | None, text: str, cfg: DecodingConfig, *, chat: bool = True,
                   system: str | None = None, precision: str = "auto") -> dict[str, Any]:
    """Generate ``cfg.num_return_sequences`` completions for one prompt and save them."""
    check_prompt(text)
    resolved, loaded = open_model(session, model_ref, precision)
    prompt_text = format_prompt(loaded.tokenizer, text, chat, system)
    results = generate(loaded, [prompt_text], cfg)[0]
    for r in results:
        record_completion(session, resolved, text, prompt_text, r)
    return {"model": resolved.name, "prompt": prompt_text, "chat": chat,
            "completions": [r.to_dict() for r in results]}


def stream_generation(loaded: LoadedModel, text: str, cfg: DecodingConfig, *, chat: bool = True,
                      system: str | None = None) -> tuple[str, Iterator[StreamChunk]]:
    """The formatted prompt and a stream of its completion (save the final result with ``record_completion``)."""
    check_prompt(text)
    prompt_text = format_prompt(loaded.tokenizer, text, chat, system)
    return prompt_text, stream(loaded, prompt_text, cfg)


def recent_runs(session: Session, limit: int = 20) -> list[dict[str, Any]]:
    rows = session.execute(select(Completion, Prompt.text).outerjoin(Prompt, Prompt.id == Completion.prompt_id)
                           .where(Completion.item_id.is_(None)).order_by(Completion.id.desc()).limit(limit))
    # Show what the user typed, not the chat-templated text fed to the model.
    return [{"id": c.id, "model": c.model_name, "prompt": (typed or c.prompt_text)[:200], "completion": c.text,
             "tokens": c.completion_tokens, "tok/s": round(c.completion_tokens / c.seconds, 1) if c.seconds else None,
             "created": c.created_at.strftime("%H:%M:%S")} for c, typed in rows]


MAX_CAMPAIGN_K = 9  # labeling campaigns rank 2–9 completions per prompt


def parse_typed_examples(text: str) -> list[dict[str, str]] | None:
    """Worked examples typed in the page: one JSON object per line (``{"review": …, "sentiment": …}``).

    Returns None for an empty box (the caller then uses the dataset's or the template's own examples).
    """
    import json

    rows: list[dict[str, str]] = []
    for n, line in enumerate((text or "").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise StudioError(f"Typed examples, line {n}: not valid JSON ({exc.msg}). Write one object per line, "
                              'like {"review": "Great!", "sentiment": "Positive"}.') from None
        if not isinstance(row, dict):
            raise StudioError(f"Typed examples, line {n}: write an object with named fields, not {type(row).__name__}.")
        rows.append({str(k): "" if v is None else str(v) for k, v in row.items()})
    return rows or None


def send_run_to_campaign(session: Session, run_id: int, name: str, *, columns: list[str] | None = None,
                         criterion: str = "helpfulness", overlap: int = 1) -> dict[str, Any]:
    """Make a labeling campaign from a saved run: its prompt is one item, its chosen variants are the sources.

    The run's completions become the item's K completions (copied, so the run stays as it was and one run
    can feed several campaigns): annotators can rank them at once, nothing is generated again. Each chosen
    variant gives the same number of completions, so the campaign's round-robin of sources holds.

    Args:
        session: a write session.
        run_id: a playground or compare run.
        name: the new campaign's name.
        columns: the labels of the variants to send (None = all of them).
        criterion, overlap: as in ``labeling.campaigns.create_campaign``.

    Returns:
        The campaign summary (``labeling.campaigns.campaign_summary``).
    """
    from backend.db.tables import CampaignItem
    from backend.services.compare import get_run
    from labeling.campaigns import campaign_summary, create_campaign

    run = get_run(session, run_id)
    by_label = {c["label"]: (c, v) for c, v in zip(run["columns"], run["variants"], strict=False)}
    chosen = list(by_label) if columns is None else list(dict.fromkeys(columns))
    unknown = [c for c in chosen if c not in by_label]
    if unknown:
        raise StudioError(f"Run {run_id} has no variant '{unknown[0]}' (it has: {', '.join(by_label)}).")
    picked = [by_label[c] for c in chosen if by_label[c][0]["completions"]]
    if not picked:
        raise StudioError("Choose at least one variant of the run to send.")
    per_source = min(min(len(c["completions"]) for c, _ in picked), MAX_CAMPAIGN_K // len(picked))
    k = per_source * len(picked)
    if k < 2:
        raise StudioError("Annotators rank completions against each other: choose at least two variants, or one "
                          "that made several completions.")
    texts = {c.get("text") for c, _ in picked}
    prompt = texts.pop() if len(texts) == 1 and None not in texts else run["input"]
    sources = [{"model": c["model"], "decoding": c["decoding"], "label": c["label"],
                "chat": bool((v or {}).get("prompt", {}).get("chat", True))} for c, v in picked]
    campaign = create_campaign(session, name, [prompt], k=k, criterion=criterion, overlap=overlap,
                               source="playground", sources=sources)
    item = session.scalars(select(CampaignItem).where(CampaignItem.campaign_id == campaign.id)).one()
    for column, _ in picked:
        for done in column["completions"][:per_source]:
            c = session.get(Completion, done["id"])
            session.add(Completion(
                prompt_id=item.prompt_id, item_id=item.id, model_id=c.model_id, model_name=c.model_name,
                prompt_text=c.prompt_text, text=c.text, decoding=c.decoding, seed=c.seed, template=c.template,
                prompt_tokens=c.prompt_tokens, completion_tokens=c.completion_tokens, seconds=c.seconds,
                finish_reason=c.finish_reason, source_label=column["label"][:300]))
    session.flush()
    return {**campaign_summary(session, campaign.id), "run_id": run_id, "completions_per_source": per_source}
