"""Prompt templates for the playground and the CLI (services; session first).

One call turns an input into the model's prompt: ``build_prompt(session, spec, input_text, …)``
picks the template (built-in library or saved in ``prompt_templates``), fills its ``{variables}``
(the input goes into the last slot the form or dataset row left empty),
adds k worked examples (typed by hand, from a dataset, or the template's own; first k, random, or
the most similar to the input), retrieves document chunks into ``{context}`` with citations, applies
the chat template, and measures the result against the model's context window — dropping examples
or truncating the input when the user chose to, or saying exactly what to do when not.
"""

import random
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.db.tables import PromptTemplate
from backend.errors import StudioError
from backend.limits import MAX_PROMPT_CHARS
from backend.prompts import fewshot
from backend.prompts.fewshot import FewShotTemplate
from backend.prompts.library import LIBRARY, RAG_TEMPLATE, format_context

MAX_POOL = 500  # dataset rows considered as examples (similarity search embeds them all once)
METER_WARN_FRACTION = 0.9


class PromptSpec(BaseModel):
    """How an input becomes a prompt; every field has a default, so ``PromptSpec()`` = the input as typed.

    Bounded like job specs: strings at most ``MAX_PROMPT_CHARS``, at most 64 typed examples, no Infinity/NaN."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, str_max_length=MAX_PROMPT_CHARS)

    template: str | None = Field(None, description="Library or saved template name; empty = send the input as is.")
    values: dict[str, Any] = Field(default_factory=dict, description="The template's other {variables}, from a "
                                   "form or a dataset row; the input fills the last slot left empty.")
    shots: int = Field(0, ge=0, le=32, description="Worked examples before the input: 0 = zero-shot, 1 = one-shot, "
                       "more = few-shot. Small models need examples more; past 5–6, fine-tune instead.")
    examples: list[dict[str, Any]] | None = Field(None, max_length=64, description="Examples typed by hand (each fills every slot, "
                                                  "answer included); empty = the dataset's or the template's own.")
    example_dataset: str | None = Field(None, description="Take examples from this dataset (demo:dialogsum or a file).")
    example_split: str = Field("train", description="Dataset split the examples come from.")
    selection: Literal["first", "random", "similar"] = Field("first", description="Which examples: the first k, k at "
                                                             "random, or the k most similar to the input (embeddings).")
    example_format: str | None = Field(None, description="Override the template's example format ({slots}, answer last).")
    instruction: str | None = Field(None, description="Override the instruction printed once before the examples.")
    cot: bool = Field(False, description="Chain-of-thought: add 'Let's think step by step.' after the answer cue.")
    rag_collection: str | None = Field(None, description="Retrieve chunks from this document collection into {context}.")
    rag_k: int = Field(3, ge=1, le=20, description="Chunks to retrieve (the course's RetrievalQA uses 3).")
    chat: bool = Field(True, description="Wrap the prompt in the model's chat template (off = raw completion).")
    system: str | None = Field(None, description="System prompt (chat mode).")
    on_overflow: Literal["error", "drop_examples", "truncate"] = Field("error", description="When the prompt does "
                                                                      "not fit: stop and say so, drop examples, or "
                                                                      "cut the end of the input.")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seed for random example selection.")


@dataclass
class BuiltPrompt:
    text: str  # the template applied: the user message
    prompt: str  # what the model reads (chat template applied in chat mode)
    template: str | None = None
    label: str = "raw input"
    examples: list[dict[str, Any]] = field(default_factory=list)
    dropped_examples: int = 0
    truncated: bool = False
    citations: list[dict[str, Any]] = field(default_factory=list)
    meter: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None  # set when the prompt does not fit (only seen with check_fit=False)
    choices: list[str] = field(default_factory=list)  # what would make it fit: "drop_examples", "truncate"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------------------------------ templates
def _from_row(row: PromptTemplate) -> FewShotTemplate:
    m = row.meta or {}
    return FewShotTemplate(name=row.name, text=row.text, task=row.task, answer_field=m.get("answer_field"),
                           instruction=m.get("instruction", ""), separator=m.get("separator", "\n\n"),
                           description=m.get("description", ""), examples=tuple(m.get("examples", ())),
                           defaults=m.get("defaults", {}), cot_trigger=m.get("cot_trigger"))


def get_template(session: Session, name: str) -> FewShotTemplate:
    """A library or saved template by name."""
    if name in LIBRARY:
        return LIBRARY[name]
    row = session.scalar(select(PromptTemplate).where(PromptTemplate.name == name))
    if row is None:
        raise StudioError(f"Unknown template '{name}': pick one from the library ({', '.join(LIBRARY)}) or a "
                          "saved template.")
    return _from_row(row)


def list_templates(session: Session, task: str | None = None) -> list[dict[str, Any]]:
    """Library templates, then saved ones: name, task, source, description, slots, number of built-in examples."""
    saved = [_from_row(r) for r in session.scalars(select(PromptTemplate).order_by(PromptTemplate.name))]
    rows = [(t, "library") for t in LIBRARY.values()] + [(t, "saved") for t in saved]
    return [{"name": t.name, "task": t.task, "source": src, "description": t.description,
             "input_fields": t.input_fields, "answer_field": t.answer_field, "supports_shots": t.supports_shots,
             "examples": len(t.examples)} for t, src in rows if task is None or t.task == task]


def template_details(session: Session, name: str) -> dict[str, Any]:
    """Everything a form needs: text, instruction, slots, defaults, built-in examples."""
    return {**get_template(session, name).to_dict(), "source": "library" if name in LIBRARY else "saved"}


def save_template(session: Session, name: str, text: str, *, task: str = "custom", answer_field: str | None = None,
                  instruction: str = "", separator: str = "\n\n", description: str = "",
                  examples: list[dict[str, str]] | None = None, defaults: dict[str, str] | None = None,
                  overwrite: bool = False) -> dict[str, Any]:
    """Save a user template (validated: slots, answer slot last, examples complete)."""
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise StudioError("Give the template a name (up to 200 characters).")
    if name in LIBRARY:
        raise StudioError(f"'{name}' is a built-in template: save yours under another name.")
    template = FewShotTemplate(name=name, text=text, task=task or "custom", answer_field=answer_field or None,
                               instruction=instruction, separator=separator, description=description,
                               examples=tuple(examples or ()), defaults=dict(defaults or {}))
    row = session.scalar(select(PromptTemplate).where(PromptTemplate.name == name))
    if row is not None and not overwrite:
        raise StudioError(f"A template named '{name}' exists: choose another name or overwrite it.")
    meta = {"answer_field": template.answer_field, "instruction": instruction, "separator": separator,
            "description": description, "examples": list(template.examples), "defaults": template.defaults}
    if row is None:
        row = PromptTemplate(name=name, task=template.task, text=text, meta=meta)
        session.add(row)
    else:
        row.task, row.text, row.meta = template.task, text, meta
    session.flush()
    return {**template.to_dict(), "id": row.id, "source": "saved"}


# ------------------------------------------------------------------------------------------ examples
def _example_pool(template: FewShotTemplate, spec: PromptSpec) -> list[dict[str, Any]]:
    if spec.examples:
        return [dict(e) for e in spec.examples]
    if spec.example_dataset:
        from backend.data.datasets_io import load_rows

        needed = [f for f in fewshot.template_slots(template.text) if f not in template.defaults]
        return load_rows(spec.example_dataset, spec.example_split, needed, limit=MAX_POOL)
    if not template.examples:
        raise StudioError(f"Template '{template.name}' has no built-in examples: type some or pick a dataset.")
    return [dict(e) for e in template.examples]


def select_examples(template: FewShotTemplate, spec: PromptSpec, values: dict[str, Any]) -> tuple[list[dict], list[str]]:
    """The examples for ``spec.shots``, ordered so the most relevant sits right before the input."""
    if spec.shots == 0:
        return [], []
    if not template.supports_shots:
        raise StudioError(f"Template '{template.name}' has no answer slot, so it cannot show worked examples: "
                          "use 0 shots or a template with an answer field.")
    pool = _example_pool(template, spec)
    for i, example in enumerate(pool):
        try:
            fewshot.check_example(template, example)
        except StudioError as exc:
            raise StudioError(f"Example {i + 1}: {exc}") from None
    key = [str(values.get(f, "")) for f in template.input_fields]
    pool = [e for e in pool if [str(e.get(f, "")) for f in template.input_fields] != key]  # never the input itself
    notes = [] if len(pool) >= spec.shots else [f"Only {len(pool)} example(s) available; using them all."]
    k = min(spec.shots, len(pool))
    if spec.selection == "random":
        chosen = random.Random(spec.seed).sample(pool, k)
    elif spec.selection == "similar":
        from backend.rag.examples import most_similar

        def inputs(row: dict[str, Any]) -> str:  # compare what varies, not the template's fixed wording
            return "\n".join(str(row.get(f, "")) for f in template.input_fields if f != "context")

        ranked = most_similar(inputs(values), [inputs(e) for e in pool], k)
        chosen = [pool[i] for i, _ in reversed(ranked)]  # most similar last, next to the input
    else:
        chosen = pool[:k]
    return chosen, notes


# ------------------------------------------------------------------------------------------ the meter
def context_meter(prompt_tokens: int, window: int, max_new_tokens: int) -> dict[str, Any]:
    """Prompt tokens against the window: what is used, what is left, and a warning when tight or over."""
    total = prompt_tokens + max_new_tokens
    warning = None
    if total > window:
        warning = (f"The prompt ({prompt_tokens} tokens) plus {max_new_tokens} new tokens exceeds the "
                   f"{window}-token context window by {total - window}.")
    elif total > METER_WARN_FRACTION * window:
        warning = f"The prompt and the answer use {total / window:.0%} of the context window."
    return {"prompt_tokens": prompt_tokens, "max_new_tokens": max_new_tokens, "window": window, "total": total,
            "free": window - total, "fraction": round(total / window, 4), "fits": total <= window, "warning": warning}


@lru_cache(maxsize=8)
def _tokenizer_and_window(path: str) -> tuple[Any, int]:
    from transformers import AutoConfig

    from backend.models.loader import load_tokenizer

    config = AutoConfig.from_pretrained(path)
    return load_tokenizer(path), int(getattr(config, "max_position_embeddings", 2048) or 2048)


def tokenizer_for(session: Session, model_ref: str | None) -> tuple[Any, int]:
    """A model's tokenizer and context window, without loading its weights (for previews)."""
    from backend.models.store import resolve

    resolved = resolve(session, model_ref)
    try:
        return _tokenizer_and_window(resolved.base_path or resolved.path)
    except (OSError, ValueError) as exc:
        raise StudioError(f"Could not read model '{resolved.name}': {exc}") from None


# ------------------------------------------------------------------------------------------ building
def _resolve_template(session: Session, spec: PromptSpec) -> FewShotTemplate | None:
    name = spec.template or (RAG_TEMPLATE if spec.rag_collection else None)
    if name is None:
        return None
    template = get_template(session, name)
    overrides = {k: v for k, v in (("text", spec.example_format), ("instruction", spec.instruction)) if v is not None}
    return fewshot.with_overrides(template, **overrides) if overrides else template


def _fill_values(template: FewShotTemplate, spec: PromptSpec, input_text: str) -> tuple[dict[str, Any], str | None]:
    """The slot values, with the input in the last empty input slot (the main input comes after parameters
    like languages); returns (values, that slot)."""
    values = {k: v for k, v in spec.values.items() if str(v).strip()}
    free = [f for f in template.input_fields if f not in values and f not in template.defaults
            and not (spec.rag_collection and f == "context")]
    slot = free[-1] if free else None
    if input_text.strip():
        if slot is None:
            raise StudioError(f"Template '{template.name}' has no empty slot for the input (its slots "
                              f"{', '.join(template.input_fields)} are filled): clear one or leave the input empty.")
        values[slot] = input_text
    if spec.rag_collection and "context" not in template.input_fields:
        raise StudioError(f"Template '{template.name}' has no {{context}} slot for retrieved passages: use "
                          f"'{RAG_TEMPLATE}' or add {{context}} to it.")
    return values, slot


def build_prompt(session: Session, spec: PromptSpec, input_text: str = "", *, tokenizer: Any = None,
                 window: int | None = None, max_new_tokens: int = 0, check_fit: bool = True) -> BuiltPrompt:
    """Turn an input into the model's prompt (see the module docstring).

    Args:
        session: a session (reads templates and collections).
        spec: the prompt settings.
        input_text: what the user typed; fills the template's last empty slot.
        tokenizer, window: the model's, to apply the chat template and measure; without them the
            prompt is returned as text only (the engine still checks the window when generating).
        max_new_tokens: reserved for the answer when measuring.
        check_fit: raise ``StudioError`` when the prompt does not fit (after ``spec.on_overflow``);
            False returns it with ``error`` and ``choices`` set, for the meter.
    """
    from backend.generation.engine import format_prompt

    template = _resolve_template(session, spec)
    raw = template is None
    if raw:  # the input as typed, through a one-slot template so the fitting below treats it alike
        if spec.shots or spec.cot:
            raise StudioError("Examples and chain-of-thought need a template: pick one (e.g. 'qa' or 'cot-few-shot').")
        template = fewshot.plain_template("raw input", "{input}")
    values, slot = _fill_values(template, spec, input_text)
    citations: list[dict[str, Any]] = []
    if spec.rag_collection:
        from backend.rag.collections import retrieve

        query = values.get(slot) or next((str(v) for k, v in values.items() if k != "context"), "")
        citations = retrieve(session, spec.rag_collection, query, spec.rag_k)
        values["context"] = format_context(citations)
    missing = fewshot.missing_inputs(template, values)
    if missing:
        raise StudioError("The prompt is empty: type something for the model to continue." if missing == [slot]
                          else f"Fill {', '.join('{' + m + '}' for m in missing)} for template '{template.name}'.")
    examples, notes = select_examples(template, spec, values)

    def text_for(exs: list[dict]) -> str:
        return fewshot.build_prompt(template, values, exs, cot=spec.cot)

    def model_prompt(text: str) -> str:
        return format_prompt(tokenizer, text, spec.chat, spec.system) if tokenizer is not None else text

    label = "raw input" if raw else " · ".join(
        [template.name] + ([fewshot.shot_name(len(examples))] if template.supports_shots else [])
        + (["CoT"] if spec.cot else []) + ([f"RAG {spec.rag_collection} (k={spec.rag_k})"] if spec.rag_collection else []))
    built = BuiltPrompt(text=text_for(examples), prompt="", template=None if raw else template.name, label=label,
                        examples=examples, citations=citations, notes=notes)
    advice = fewshot.shot_advice(spec.shots)
    if advice:
        built.notes.append(advice)
    if tokenizer is None or window is None:
        built.prompt = model_prompt(built.text)
        return built
    _fit(built, spec, template, values, slot, tokenizer, window, max_new_tokens, text_for, model_prompt)
    if built.error and check_fit:
        raise StudioError(built.error)
    return built


def _fit(built: BuiltPrompt, spec: PromptSpec, template, values, slot, tokenizer, window: int, max_new_tokens: int,
         text_for, model_prompt) -> None:
    """Measure the prompt; drop examples or truncate the input when the user chose to, else explain the choice."""
    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False).input_ids)

    budget = window - max_new_tokens
    built.prompt = model_prompt(built.text)
    tokens = count(built.prompt)
    cut_field = slot or max((f for f in template.input_fields if f != "context"),
                            key=lambda f: len(str(values.get(f, ""))), default=None)
    if tokens > budget and spec.on_overflow == "drop_examples" and built.examples:
        kept, _, tokens = fewshot.fit_examples(lambda exs: model_prompt(text_for(exs)), built.examples, count, budget)
        built.dropped_examples = len(built.examples) - len(kept)
        built.examples, built.text = kept, text_for(kept)
        built.prompt = model_prompt(built.text)
        built.notes.append(f"Dropped {built.dropped_examples} example(s) to fit the context window.")
    elif tokens > budget and spec.on_overflow == "truncate" and cut_field is not None:
        for _ in range(4):  # re-tokenising a cut text can shift by a token or two: converge in a few passes
            ids = tokenizer(str(values[cut_field]), add_special_tokens=False).input_ids
            keep = len(ids) - (tokens - budget) - 1
            if keep <= 0:
                break
            values[cut_field] = tokenizer.decode(ids[:keep], skip_special_tokens=True)
            built.text = text_for(built.examples)
            built.prompt = model_prompt(built.text)
            tokens, built.truncated = count(built.prompt), True
            if tokens <= budget:
                built.notes.append(f"Cut the end of {{{cut_field}}} to {keep} tokens to fit the context window.")
                break
    built.meter = context_meter(tokens, window, max_new_tokens)
    if tokens <= budget:
        return
    message = (f"The prompt needs {tokens} tokens but only {budget} fit in the context window ({window} tokens "
               f"minus {max_new_tokens} for the answer)")
    if spec.on_overflow == "error":
        options = []
        if built.examples:
            kept, _, kept_tokens = fewshot.fit_examples(lambda exs: model_prompt(text_for(exs)), built.examples,
                                                        count, budget)
            built.choices.append("drop_examples")
            options.append(f"drop examples (it fits with {len(kept)} of {len(built.examples)})" if kept_tokens <= budget
                           else "drop examples (not enough alone)")
        if cut_field is not None:
            built.choices.append("truncate")
            options.append("truncate the input")
        options += ["shorten the input", "lower max new tokens"]
        message += ": " + ", ".join(options[:-1]) + " or " + options[-1] + "."
    else:
        message += (" even after " + ("dropping every example" if spec.on_overflow == "drop_examples"
                                      else "cutting the input") + ": shorten the input or lower max new tokens.")
    built.error = message


def preview_prompt(session: Session, spec: PromptSpec, input_text: str = "", *, model: str | None = None,
                   max_new_tokens: int = 128) -> dict[str, Any]:
    """The prompt as the model will read it, with the context-window meter (loads the tokenizer only).

    An over-long prompt comes back rather than raising: ``meter["fits"]`` is false, ``error`` says
    by how much, and ``choices`` lists what would fix it ("drop_examples", "truncate") for the page.
    """
    tokenizer, window = tokenizer_for(session, model)
    built = build_prompt(session, spec, input_text, tokenizer=tokenizer, window=window, max_new_tokens=max_new_tokens,
                         check_fit=False)
    return built.to_dict()


def dataset_rows(session: Session, template: str, dataset: str, split: str = "test", limit: int = 50) -> list[dict]:
    """Rows of a dataset that can fill a template's input slots (to pick one as the input, or as examples)."""
    from backend.data.datasets_io import load_rows

    t = get_template(session, template)
    needed = [f for f in t.input_fields if f not in t.defaults and f != "context"]
    return load_rows(dataset, split, needed, limit=limit)
