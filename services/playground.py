"""Playground services: load a model, generate (batched or streamed) and keep every run."""

from typing import Any

from sqlalchemy.orm import Session

from backend.db.completions import completion_row
from backend.db.tables import Completion, Prompt
from backend.errors import StudioError
from backend.generation.decoding import DecodingConfig
from backend.generation.engine import GenerationResult, format_prompt, generate
from backend.limits import MAX_PROMPT_CHARS
from backend.models.loader import LoadedModel, load_model
from backend.models.store import ResolvedModel, resolve


def check_prompt(text: str, what: str = "prompt") -> None:
    """Refuse an empty prompt, or one over ``MAX_PROMPT_CHARS`` (checked before any model loads)."""
    if not isinstance(text, str) or not text.strip():
        raise StudioError(f"The {what} is empty: type something for the model to continue.")
    if len(text) > MAX_PROMPT_CHARS:
        raise StudioError(f"The {what} has {len(text):,} characters: the limit is {MAX_PROMPT_CHARS:,} characters "
                          "(far more than any model's context window). Shorten it.")


def open_model(session: Session, model_ref: str | None, precision: str = "auto") -> tuple[ResolvedModel, LoadedModel]:
    resolved = resolve(session, model_ref)
    return resolved, load_model(resolved, precision=precision)


def record_completion(session: Session, resolved: ResolvedModel, user_text: str, prompt_text: str,
                      result: GenerationResult) -> Completion:
    """Save a completion with everything needed to reproduce it."""
    prompt = Prompt(text=user_text, source="playground")
    session.add(prompt)
    session.flush()
    row = completion_row(result, resolved, prompt_text, prompt_id=prompt.id)
    session.add(row)
    session.flush()
    return row


def run_generation(session: Session, model_ref: str | None, text: str, cfg: DecodingConfig, *, chat: bool = True,
                   system: str | None = None, precision: str = "auto") -> dict[str, Any]:
    """Generate ``cfg.num_return_sequences`` completions for one prompt and save them.

    The session's transaction is committed once the model is resolved: no SQLite write lock is held while the
    model loads and generates (seconds); the completions are saved in a short transaction afterwards.
    """
    check_prompt(text)
    if system is not None and len(system) > MAX_PROMPT_CHARS:
        check_prompt(system, "system prompt")
    resolved = resolve(session, model_ref)
    session.commit()  # NOTE: no transaction (so no SQLite lock) while the model loads and generates
    loaded = load_model(resolved, precision=precision)
    prompt_text = format_prompt(loaded.tokenizer, text, chat, system)
    results = generate(loaded, [prompt_text], cfg)[0]
    for r in results:
        record_completion(session, resolved, text, prompt_text, r)
    return {"model": resolved.name, "prompt": prompt_text, "chat": chat,
            "completions": [r.to_dict() for r in results]}


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
