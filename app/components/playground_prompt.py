"""The Playground's prompt settings: template, {variables}, in-context examples, chain-of-thought, retrieval,
and the context-window meter. Returns the fields of a ``PromptSpec``; the services build the prompt."""

import json
from typing import Any

import streamlit as st

from app.common import user_errors
from backend.db.engine import session_scope
from backend.errors import StudioError
from services import prompt_building as template_service
from services.playground import parse_typed_examples

NO_TEMPLATE = "(none: send the prompt as typed)"
NO_COLLECTION = "(none)"
SOURCES = {"Template's own examples": "own", "From a dataset": "dataset", "Typed by hand": "typed"}
SELECTIONS = {"First k": "first", "Random": "random", "Most similar to the input (embeddings + faiss)": "similar"}
OVERFLOW = {"Stop and tell me": "error", "Drop examples": "drop_examples", "Truncate the input": "truncate"}


def _main_slot(details: dict[str, Any], rag: bool) -> str | None:
    """The slot the Prompt box fills: the last input slot without a default (as the services decide)."""
    free = [f for f in details["input_fields"] if f not in details["defaults"] and not (rag and f == "context")]
    return free[-1] if free else None


def _fill_from_row(key: str, template: str, slot: str | None, fields: list[str]) -> None:
    """Button callback: put one dataset row's values into the variable boxes and the Prompt box."""
    state = st.session_state
    state.pop(f"{key}-fill-error", None)
    try:
        with session_scope() as s:
            rows = template_service.dataset_rows(s, template, state[f"{key}-ds"], state[f"{key}-ds-split"],
                                                 limit=int(state[f"{key}-ds-row"]))
    except StudioError as exc:
        state[f"{key}-fill-error"] = str(exc)
        return
    row = rows[min(int(state[f"{key}-ds-row"]), len(rows)) - 1]
    for f in fields:
        if f in row:
            state[f"{key}-var-{template}-{f}"] = str(row[f])
    if slot and slot in row:
        state[f"{key}-prompt"] = str(row[slot])


def _set_overflow(key: str, choice: str) -> None:
    st.session_state[f"{key}-overflow"] = next(label for label, v in OVERFLOW.items() if v == choice)


def prompt_settings(key: str, collections: list[str]) -> dict[str, Any]:
    """Render the template and retrieval controls; returns ``PromptSpec`` fields (without chat/system)."""
    if flash := st.session_state.pop(f"{key}-flash", None):
        st.success(flash)
    with session_scope() as s:
        names = [t["name"] for t in template_service.list_templates(s)]
    template = st.selectbox("Template", [NO_TEMPLATE, *names], key=f"{key}-template",
                            help="Built-in tasks (summaries in several phrasings, sentiment, NER, translation, QA, "
                                 "chain-of-thought) and your saved templates. {variables} come from the form below.")
    rag = st.selectbox("Retrieve from documents", [NO_COLLECTION, *collections], key=f"{key}-rag",
                       help="Put the most similar chunks of a collection (Documents page) into {context}; the "
                            "answer lists them as sources.")
    spec: dict[str, Any] = {"rag_collection": None if rag == NO_COLLECTION else rag}
    if spec["rag_collection"]:
        st.session_state.setdefault(f"{key}-rag-k", 3)
        spec["rag_k"] = st.number_input("Chunks to retrieve (k)", 1, 20, key=f"{key}-rag-k")
    if template == NO_TEMPLATE:
        return spec
    with session_scope() as s:
        details = template_service.template_details(s, template)
    spec["template"] = template
    st.caption(details["description"])
    slot = _main_slot(details, bool(spec["rag_collection"]))
    others = [f for f in details["input_fields"] if f != slot and not (spec["rag_collection"] and f == "context")]
    st.caption(f"The Prompt box fills **{{{slot}}}**." if slot else "Every slot is filled below.")
    values = {}
    for f in others:
        st.session_state.setdefault(f"{key}-var-{template}-{f}", details["defaults"].get(f, ""))  # a row may set it
        values[f] = st.text_input(f"{{{f}}}", key=f"{key}-var-{template}-{f}")
    spec["values"] = {k: v for k, v in values.items() if v.strip()}
    with st.popover("Fill from a dataset row", icon=":material/table_rows:"):
        st.session_state.setdefault(f"{key}-ds", "demo:dialogsum")
        st.text_input("Dataset", key=f"{key}-ds", help="demo:dialogsum or a JSONL/CSV file path.")
        c1, c2 = st.columns(2)
        c1.selectbox("Split", ["test", "validation", "train"], key=f"{key}-ds-split")
        c2.number_input("Row", 1, 500, key=f"{key}-ds-row")
        st.button("Fill", key=f"{key}-ds-fill", on_click=_fill_from_row, args=(key, template, slot, others))
    if err := st.session_state.get(f"{key}-fill-error"):
        st.error(err)
    _examples(key, template, details, spec)
    return spec


def _examples(key: str, template: str, details: dict[str, Any], spec: dict[str, Any]) -> None:
    """Shots, where the examples come from and how they are chosen, their format, chain-of-thought."""
    if not details["supports_shots"]:
        st.caption("This template has no answer slot: zero-shot only.")
        return
    c1, c2 = st.columns(2)
    spec["shots"] = c1.number_input("Examples (shots)", 0, 16, key=f"{key}-shots",
                                    help=template_service.PromptSpec.model_fields["shots"].description)
    spec["cot"] = c2.toggle("Chain-of-thought", key=f"{key}-cot",
                            help="Adds 'Let's think step by step.' after the answer cue; with worked reasoning "
                                 "examples (cot-few-shot) it is few-shot CoT. The final answer is pulled out.")
    if spec["shots"]:
        source = SOURCES[st.radio("Examples from", list(SOURCES), key=f"{key}-ex-src", horizontal=True)]
        spec["selection"] = SELECTIONS[st.radio("Which examples", list(SELECTIONS), key=f"{key}-ex-sel",
                                                horizontal=True)]
        if source == "dataset":
            d1, d2 = st.columns(2)
            st.session_state.setdefault(f"{key}-ex-ds", "demo:dialogsum")
            spec["example_dataset"] = d1.text_input("Example dataset", key=f"{key}-ex-ds")
            spec["example_split"] = d2.selectbox("Example split", ["train", "validation", "test"], key=f"{key}-ex-split")
        elif source == "typed":
            sample = {f: "…" for f in template_service.fewshot.template_slots(details["text"])}
            typed = st.text_area("Examples (one JSON object per line)", key=f"{key}-ex-typed", height=100,
                                 placeholder=json.dumps(sample, ensure_ascii=False))
            with user_errors():
                spec["examples"] = parse_typed_examples(typed)
        with st.expander("Example format and instruction"):
            st.session_state.setdefault(f"{key}-fmt-{template}", details["text"])
            st.session_state.setdefault(f"{key}-instr-{template}", details["instruction"])
            fmt = st.text_area("Example format ({slots}, answer last)", key=f"{key}-fmt-{template}")
            instruction = st.text_area("Instruction (once, before the examples)", key=f"{key}-instr-{template}")
        if fmt != details["text"]:
            spec["example_format"] = fmt
        if instruction != details["instruction"]:
            spec["instruction"] = instruction
    spec["on_overflow"] = OVERFLOW[st.radio("If the prompt does not fit the context window", list(OVERFLOW),
                                            key=f"{key}-overflow", horizontal=True)]
    with st.popover("Save as my template", icon=":material/save:"):
        name = st.text_input("Template name", key=f"{key}-save-name")
        if st.button("Save template", key=f"{key}-save"):
            with user_errors(), session_scope(write=True) as s:
                saved = template_service.save_template(
                    s, name, spec.get("example_format", details["text"]), task=details["task"],
                    answer_field=details["answer_field"], instruction=spec.get("instruction", details["instruction"]),
                    separator=details["separator"], description=f"Saved from the playground (from {template}).",
                    examples=spec.get("examples"), defaults=details["defaults"])
                st.session_state[f"{key}-flash"] = f"Saved template '{saved['name']}': pick it in the Template list."
        if f"{key}-flash" in st.session_state:  # committed: redraw so the list holds it (never inside session_scope)
            st.rerun()


def context_meter(key: str, preview: dict[str, Any]) -> None:
    """Prompt tokens against the model's window; when it would not fit, say so and offer the fixes."""
    meter = preview.get("meter")
    if not meter:
        return
    st.progress(min(meter["fraction"], 1.0), text=f"Context window: {meter['prompt_tokens']} prompt + "
                f"{meter['max_new_tokens']} new tokens = {meter['total']} of {meter['window']}")
    if preview.get("error"):
        st.warning(preview["error"], icon=":material/warning:")
        labels = {"drop_examples": "Drop examples", "truncate": "Truncate the input"}
        cols = st.columns(max(len(preview["choices"]), 1))
        for col, choice in zip(cols, preview["choices"], strict=False):
            col.button(labels[choice], key=f"{key}-fix-{choice}", on_click=_set_overflow, args=(key, choice))
    elif meter.get("warning"):
        st.caption(f":material/warning: {meter['warning']}")
    for note in preview.get("notes", []):
        st.caption(f":material/info: {note}")
