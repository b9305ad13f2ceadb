"""Playground runs: one input through 1–4 variants (model/adapter × decoding × template), side by side.

Every run is saved: a ``playground_runs`` row (the input, each variant's full settings, per-column
timings) and one ``completions`` row per completion with ``run_id`` (model, template, decoding,
seed, exact prompt, output, timings). A saved run can be reopened, rerun, exported as JSON or CSV,
or handed to a labeling campaign (``services.campaigns_from_runs``).

NOTE: models are resolved, loaded and prompts built first, ending each short read transaction
before the slow parts (loading, generating: seconds to minutes on a CPU), so a write session never
holds SQLite's write lock while a model runs; the rows are written afterwards in one short
transaction.
"""

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.orm import Session

from backend.db.completions import completion_row
from backend.db.lookup import get_or_raise
from backend.db.tables import PlaygroundRun, Prompt
from backend.errors import StudioError
from backend.generation.decoding import DecodingConfig, decoding_warnings
from backend.generation.engine import GenerationResult, StreamChunk, generate, stream
from backend.models.loader import PRECISIONS, LoadedModel, load_model
from backend.models.store import ResolvedModel, resolve
from services import runs
from services.prompt_building import BuiltPrompt, PromptSpec, build_prompt

MAX_VARIANTS = 4


class Variant(BaseModel):
    """One column of a comparison: which model, how the prompt is built, how it is decoded."""

    model_config = ConfigDict(extra="forbid", str_max_length=2000)

    label: str | None = Field(None, description="Column title; default: model · template · decoding.")
    model: str | None = Field(None, description="Model or adapter name, folder or hub id (default: the embedded model).")
    precision: str = Field("auto", description="auto, float32, bfloat16 or int8 (int8: fastest on a CPU).")
    prompt: PromptSpec = Field(default_factory=PromptSpec, description="Template, examples, retrieval, chat mode.")
    decoding: DecodingConfig = Field(default_factory=DecodingConfig, description="Decoding settings.")


@dataclass
class PreparedVariant:
    variant: Variant
    resolved: ResolvedModel
    loaded: LoadedModel
    built: BuiltPrompt
    label: str


def parse_variants(variants: list[Variant | dict[str, Any]], *, allow_single: bool = True) -> list[Variant]:
    """Validate variants (dicts from a form or a saved run) into ``Variant`` objects."""
    low = 1 if allow_single else 2
    if not low <= len(variants) <= MAX_VARIANTS:
        raise StudioError(f"Compare {low} to {MAX_VARIANTS} variants (got {len(variants)}).")
    out = []
    for i, v in enumerate(variants, 1):
        try:
            out.append(v if isinstance(v, Variant) else Variant.model_validate(v))
        except ValidationError as exc:
            raise StudioError(f"Variant {i}: " + "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors())
            ) from None
        if out[-1].precision not in PRECISIONS:
            raise StudioError(f"Variant {i}: unknown precision '{out[-1].precision}' (choose {', '.join(PRECISIONS)}).")
    return out


def decoding_summary(cfg: DecodingConfig) -> str:
    """A short name for the decoding settings: "greedy", "beam 4", "sample T0.7 p0.9 k50"."""
    if cfg.num_beams > 1 and not cfg.sampling:
        return f"beam {cfg.num_beams}"
    if not cfg.sampling:
        return "greedy"
    parts = [f"T{cfg.temperature:g}"] + ([f"p{cfg.top_p:g}"] if cfg.top_p < 1 else []) + (
        [f"k{cfg.top_k}"] if cfg.top_k else []) + ([f"minp{cfg.min_p:g}"] if cfg.min_p else [])
    return "sample " + " ".join(parts)


def prepare_variant(session: Session, input_text: str, variant: Variant | dict[str, Any]) -> PreparedVariant:
    """Resolve and load the model and build the prompt (raises ``StudioError`` on any bad input).

    Use a read session: loading a model can take seconds and needs no write lock.
    """
    _check_input(input_text)
    variant = parse_variants([variant])[0]
    resolved = resolve(session, variant.model)
    return _build(session, input_text, variant, resolved, load_model(resolved, precision=variant.precision))


def _check_input(input_text: str) -> None:
    """An input over ``MAX_PROMPT_CHARS`` is refused before any model loads (an empty one is the template's call)."""
    from backend.limits import MAX_PROMPT_CHARS

    if len(input_text or "") > MAX_PROMPT_CHARS:
        raise StudioError(f"The input has {len(input_text):,} characters: the limit is {MAX_PROMPT_CHARS:,} "
                          "characters. Shorten it.")


def _build(session: Session, input_text: str, variant: Variant, resolved: ResolvedModel,
           loaded: LoadedModel) -> PreparedVariant:
    built = build_prompt(session, variant.prompt, input_text, tokenizer=loaded.tokenizer,
                         window=loaded.context_window, max_new_tokens=variant.decoding.max_new_tokens)
    label = variant.label or f"{resolved.name} · {built.label} · {decoding_summary(variant.decoding)}"
    return PreparedVariant(variant, resolved, loaded, built, label)


def _unique_labels(prepared: list[PreparedVariant]) -> None:
    seen: dict[str, int] = {}
    for p in prepared:
        seen[p.label] = seen.get(p.label, 0) + 1
        if seen[p.label] > 1:
            p.label = f"{p.label} ({seen[p.label]})"


def _column(p: PreparedVariant, results: list[GenerationResult], latency: float) -> dict[str, Any]:
    tokens = sum(r.completion_tokens for r in results)
    cfg = p.variant.decoding
    return {
        "label": p.label, "model": p.resolved.name, "model_id": p.resolved.id, "precision": p.variant.precision,
        "template": p.built.template, "prompt_label": p.built.label, "prompt": p.built.prompt,
        "text": p.built.text,  # the user message after the template (what annotators see if sent to labeling)
        "cot": p.variant.prompt.cot or (p.built.template or "").startswith("cot"),
        "citations": [{**{k: h[k] for k in ("rank", "score", "doc", "chunk", "citation")}, "snippet": h["text"][:500]}
                      for h in p.built.citations],
        "examples": len(p.built.examples), "notes": p.built.notes + decoding_warnings(cfg),
        "decoding": cfg.model_dump(), "latency_s": round(latency, 4),
        "tokens_per_second": round(tokens / latency, 2) if latency > 0 else 0.0,
        "completion_tokens": round(tokens / max(len(results), 1), 1),
        "words": round(sum(len(r.text.split()) for r in results) / max(len(results), 1), 1),
        "chars": round(sum(len(r.text) for r in results) / max(len(results), 1), 1),
        "prompt_tokens": results[0].prompt_tokens if results else 0,
        "first_token_s": results[0].first_token_seconds if results else None,
    }


def _save(session: Session, input_text: str, prepared: list[PreparedVariant],
          outputs: list[tuple[list[GenerationResult], float]], kind: str, meta: dict | None = None) -> dict[str, Any]:
    columns = [_column(p, results, latency) for p, (results, latency) in zip(prepared, outputs, strict=True)]
    run = PlaygroundRun(input=input_text, variants=[p.variant.model_dump() for p in prepared],
                        meta={"kind": kind, "columns": columns, **(meta or {})})
    prompt = Prompt(text=input_text, source="playground")
    session.add_all([run, prompt])
    session.flush()
    session.add_all(completion_row(r, p.resolved, p.built.prompt, prompt_id=prompt.id, run_id=run.id,
                                   template=p.built.label, source_label=p.label)
                    for p, (results, _) in zip(prepared, outputs, strict=True) for r in results)
    session.flush()
    return runs.get_run(session, run.id)


def run_comparison(session: Session, input_text: str, variants: list[Variant | dict[str, Any]],
                   *, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run one input through each variant, save the run, and return it side by side.

    Args:
        session: a write session.
        input_text: the user's input (fills each variant's template).
        variants: 1–4 variants (``Variant`` or dicts); one variant is a plain saved run.

    Returns:
        ``get_run``'s dict: ``{"id", "input", "created_at", "kind", "columns": [{label, model, template,
        prompt, latency_s, tokens_per_second, completion_tokens, words, chars, citations, notes, decoding,
        completions: [{id, text, completion_tokens, finish_reason, seconds, answer}]}]}``.
    """
    _check_input(input_text)
    parsed = parse_variants(variants)
    resolved = [resolve(session, v.model) for v in parsed]
    session.commit()  # NOTE: no transaction (so no SQLite lock) while models load and generate
    loaded = [load_model(r, precision=v.precision) for v, r in zip(parsed, resolved, strict=True)]
    prepared = [_build(session, input_text, v, r, m) for v, r, m in zip(parsed, resolved, loaded, strict=True)]
    _unique_labels(prepared)
    session.commit()  # NOTE: prompts are built (short reads); end that transaction before generating
    outputs = []
    for p in prepared:
        began = time.perf_counter()
        results = generate(p.loaded, [p.built.prompt], p.variant.decoding)[0]
        outputs.append((results, time.perf_counter() - began))
    return _save(session, input_text, prepared, outputs, "compare" if len(prepared) > 1 else "single", meta)


def stream_variant(prepared: PreparedVariant) -> Iterator[StreamChunk]:
    """Stream one prepared variant's completion (the last chunk carries the result; save it with ``save_streamed_run``)."""
    return stream(prepared.loaded, prepared.built.prompt, prepared.variant.decoding)


def save_streamed_run(session: Session, input_text: str, prepared: PreparedVariant,
                      result: GenerationResult) -> dict[str, Any]:
    """Save a streamed completion as a one-column run (reopenable and rerunnable like a comparison)."""
    return _save(session, input_text, [prepared], [([result], result.seconds)], "single")


def rerun(session: Session, run_id: int, *, seed: int | None = None) -> dict[str, Any]:
    """Run a saved run again with its saved settings (same seeds reproduce it); ``seed`` overrides every variant's."""
    run = get_or_raise(session, PlaygroundRun, run_id, "playground run")
    variants = [dict(v) for v in run.variants]
    if seed is not None:
        for v in variants:
            v["decoding"] = {**v.get("decoding", {}), "seed": seed}
    return run_comparison(session, run.input, variants, meta={"rerun_of": run_id})


def inspect_next_token(session: Session, input_text: str, variant: Variant | dict[str, Any], step: int = 0,
                       top_n: int = 10) -> dict[str, Any]:
    """The next-token view for a variant: top candidates at ``step`` before/after each decoding control."""
    from backend.generation.nexttoken import next_token_candidates

    prepared = prepare_variant(session, input_text, variant)
    return {"label": prepared.label, "prompt": prepared.built.prompt,
            **next_token_candidates(prepared.loaded, prepared.built.prompt, step, prepared.variant.decoding, top_n)}
