"""The new-campaign form: prompt set, criterion, guidelines, K, overlap and the completion sources."""

from typing import Any

import streamlit as st

from app.common import model_names, user_errors
from app.components.decoding_controls import decoding_controls, load_decoding
from app.components.safe_text import safe_markdown
from app.components.submit_once import form_submission
from backend.db.engine import session_scope
from backend.generation.decoding import PRESETS
from labeling.campaigns import CRITERIA, default_guidelines, load_prompt_set
from services import completion_jobs

PROMPT_SETS = ("Demo prompts", "Upload a file", "Dataset split", "Playground runs")
DEMO_SETS = {"labeling": "everyday requests (60)", "provocative": "provocative requests, for harmlessness (80)"}
CUSTOM = "custom…"


def _prompt_set() -> dict[str, Any] | None:
    """The chosen prompt set as ``create_campaign_from`` arguments (None until a file is uploaded)."""
    kind = st.radio("Prompts from", PROMPT_SETS, horizontal=True, key="lc-prompts")
    if kind == "Demo prompts":
        c1, c2 = st.columns([2, 1])
        split = c1.selectbox("Demo prompt set", list(DEMO_SETS), format_func=lambda k: f"{k}: {DEMO_SETS[k]}",
                             key="lc-demo")
        limit = c2.number_input("How many prompts (0 = all)", 0, 1000, 20, key="lc-demo-limit")
        return {"dataset": {"ref": "demo:prompts", "split": split, "column": "prompt", "limit": limit}}
    if kind == "Upload a file":
        upload = st.file_uploader("Prompt file", type=["jsonl", "csv", "txt"], key="lc-upload",
                                  help='JSONL with a "prompt" field per line, CSV with a prompt column, or text '
                                       "with one prompt per line.")
        return {"upload": (upload.name, upload.getvalue())} if upload else None
    if kind == "Dataset split":
        c1, c2, c3, c4 = st.columns([3, 1, 1, 1])
        return {"dataset": {
            "ref": c1.text_input("Dataset", "demo:dialogsum", key="lc-ds", help="demo:dialogsum, demo:prompts, or a "
                                 "JSONL/CSV/Parquet file or folder of split files."),
            "split": c2.text_input("Split", "test", key="lc-ds-split"),
            "column": c3.text_input("Prompt column", "dialogue", key="lc-ds-col"),
            "limit": c4.number_input("Limit (0 = all)", 0, 100_000, 20, key="lc-ds-limit")}}
    from services.runs import list_runs

    with session_scope() as s:
        runs = {r["id"]: r["input"] for r in list_runs(s, limit=200)}
    picked = st.multiselect("Playground runs (none picked = the latest 200)", list(runs), key="lc-runs",
                            format_func=lambda i: f"#{i} {runs[i][:80]}")
    return {"playground_runs": picked}


def _sources(k: int) -> list[dict[str, Any]] | None:
    """One tab per source: model or adapter, decoding settings and a label (None while one is invalid)."""
    n = st.number_input("Completion sources", 1, k, min(2, k), key="lc-n-sources",
                        help=f"Each source is a model × decoding settings. The K={k} completions of an item are "
                             "shared round-robin: completion j comes from source j mod (number of sources).")
    st.caption(f"The campaign decides how many of the K={k} completions each source makes (its *Completions* "
               "setting is not used); a source making more than one needs sampling.")
    models = model_names()
    out = []
    for i, tab in enumerate(st.tabs([f"Source {i + 1}" for i in range(n)])):
        with tab:
            c1, c2 = st.columns(2)
            model = c1.selectbox("Model or adapter", models, key=f"lc-src{i}-model")
            label = c2.text_input("Label (optional)", key=f"lc-src{i}-label",
                                  help="Shown to admins in the agreement charts (never to annotators). Default: "
                                       "model · decoding.")
            key = f"lc-src{i}"
            if f"{key}-method" not in st.session_state:  # K completions need sampling: start on a sampling preset
                st.session_state[f"{key}-preset"] = ("balanced", "creative")[i % 2]
                load_decoding(key, PRESETS[st.session_state[f"{key}-preset"]])
            cfg = decoding_controls(key, compact=True)
            out.append(None if cfg is None else {"model": model, "decoding": cfg.model_dump(), "label": label})
    return None if None in out else out


def new_campaign_form(admin_id: int) -> int | None:
    """Draw the form; returns the new campaign's id once created (its completion job is queued)."""
    name = st.text_input("Campaign name", key="lc-name", placeholder="e.g. helpfulness-round-1")
    prompt_set = _prompt_set()
    c1, c2, c3 = st.columns(3)
    choice = c1.selectbox("Criterion", [*CRITERIA, CUSTOM], key="lc-criterion")
    criterion = c1.text_input("Custom criterion", key="lc-criterion-custom", placeholder="e.g. conciseness") \
        if choice == CUSTOM else choice
    k = c2.slider("Completions per prompt (K)", 2, 9, 3, key="lc-k", help="Each annotator ranks K completions.")
    overlap = c3.number_input("Annotators per item (overlap)", 1, 100, 2, key="lc-overlap",
                              help="How many different annotators must rank each item; 2–3 lets you measure "
                                   "agreement.")
    guidelines = st.text_area("Annotator guidelines (markdown)", default_guidelines(criterion or "helpfulness"),
                              height=220, key=f"lc-guidelines-{criterion}")
    with st.expander("Preview guidelines"):
        st.markdown(safe_markdown(guidelines))  # as annotators will see it: no images, no live links
    sources = _sources(k)
    batch = st.number_input("Items per generation batch", 1, 256, 8, key="lc-batch",
                            help="The background job writes each batch at once; annotators can start on it.")
    if not st.button("Create campaign and generate completions", type="primary", key="lc-create",
                     disabled=sources is None):
        return None
    if prompt_set is None:
        st.error("Upload a prompt file first.")
        return None
    created = None
    with user_errors(), st.spinner("Creating the campaign…"):
        with session_scope() as s:  # reading a dataset takes a while: not under the write lock
            prompts, source = load_prompt_set(s, **prompt_set)
        form = {"name": name, "prompts": prompts, "source": source, "k": k, "criterion": criterion,
                "overlap": overlap, "guidelines": guidelines, "sources": sources, "batch": batch}
        with form_submission("lc-create", form) as token, session_scope(write=True) as s:  # a double click: once
            created = completion_jobs.launch_campaign(s, admin_id, name, prompts=prompts, source=source, k=k,
                                                      criterion=criterion, overlap=overlap, guidelines=guidelines,
                                                      sources=sources, batch_size=batch, submission_token=token)
    if created:
        st.session_state["lc-flash"] = (f"Campaign '{created['name']}' created with {created['items']} items; "
                                        f"job #{created['job_id']} is generating its completions.")
        return created["id"]
    return None
