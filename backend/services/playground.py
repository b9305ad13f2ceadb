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
