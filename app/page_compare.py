"""Compare: one input through 2–4 variants (model/adapter × decoding × template), side by side."""

import pandas as pd
import streamlit as st

from app.common import NO_SCORE, model_names, reward_choices, user_errors
from app.components.decoding_controls import decoding_controls, load_decoding
from app.components.playground_results import keep_widgets, restore_widgets, send_to_labeling, show_run
from backend.db.engine import session_scope
from backend.generation.decoding import PRESETS
from services import compare, prompt_building, reward_scoring, runs

st.title(":material/view_column: Compare")
st.caption("Run the same input through several variants at once and read latency, speed and length per column. "
           "The run is saved like any playground run.")

NO_TEMPLATE = "(none)"
DEFAULT_PRESETS = ["deterministic", "balanced", "creative", "beam-search"]  # variant i starts from preset i


def variant_form(i: int, names: list[str], template_names: list[str]) -> dict | None:
    """One column's settings; returns a variant dict, or None when its decoding settings are invalid."""
    key = f"cmp{i}"
    if f"{key}-method" not in st.session_state:
        st.session_state[f"{key}-preset"] = DEFAULT_PRESETS[i]
        load_decoding(key, PRESETS[DEFAULT_PRESETS[i]].model_copy(update={"max_new_tokens": 64, "seed": 1}))
    st.markdown(f"**Variant {i + 1}**")
    label = st.text_input("Column title (optional)", key=f"{key}-label", placeholder="model · template · decoding")
    model = st.selectbox("Model", names, key=f"{key}-model")
    template = st.selectbox("Template", [NO_TEMPLATE, *template_names], key=f"{key}-template")
    c1, c2 = st.columns(2)
    st.session_state.setdefault(f"{key}-chat", True)  # no widget defaults: values come back from restore_widgets
    shots = c1.number_input("Shots", 0, 8, key=f"{key}-shots", disabled=template == NO_TEMPLATE)
    chat = c2.toggle("Chat", key=f"{key}-chat", help="Apply the model's chat template.")
    precision = st.selectbox("Precision", ["auto", "float32", "bfloat16", "int8"], key=f"{key}-precision")
    cfg = decoding_controls(key, compact=True)
    if cfg is None:
        return None
    prompt = {"chat": chat, "template": None if template == NO_TEMPLATE else template, "shots": int(shots)}
    return {"label": label.strip() or None, "model": model, "precision": precision, "prompt": prompt,
            "decoding": cfg.model_dump()}


names = model_names()
if not names:
    st.warning("No model is available yet: run `studio models bootstrap` (make run does it), then reload.")
    st.stop()
with session_scope() as s:
    template_names = [t["name"] for t in prompt_building.list_templates(s)]

restore_widgets("cmp")  # the variants survive a visit to another page
input_text = st.text_area("Input", key="cmp-input", height=120,
                          placeholder="The prompt, or what fills each variant's template (e.g. a dialogue).")
st.session_state.setdefault("cmp-n", 3)
n = st.segmented_control("Variants", [2, 3, 4], key="cmp-n") or 3
columns = st.columns(n, border=True)
variants = []
for i, box in enumerate(columns):
    with box:
        variants.append(variant_form(i, names, template_names))

reward = st.selectbox("Score with", reward_choices("cmp-score"), key="cmp-score",
                      help="Score every completion and show each column's best and mean reward. "
                           f"{reward_scoring.TOXICITY}: 1 − p(toxic), no model needed; or a trained reward model.")
if st.button("Run all variants", type="primary", key="cmp-go", disabled=None in variants, icon=":material/play_arrow:"):
    made = None
    with user_errors(), st.spinner(f"Generating {n} variants…"), session_scope(write=True) as s:
        if reward != NO_SCORE:
            reward_scoring.resolve_source(s, reward)  # a missing reward model: say so before generating
        made = st.session_state["cmp-last-run"] = compare.run_comparison(s, input_text, variants)["id"]
    if made and reward != NO_SCORE:  # scored apart: if it fails, the run is kept (unscored) and shown
        with user_errors(), st.spinner(f"Scoring with {reward}…"), session_scope(write=True) as s:
            reward_scoring.score_run(s, made, reward)

if last := st.session_state.get("cmp-last-run"):
    with user_errors(), session_scope() as s:
        run = runs.get_run(s, last)
        st.subheader(f"Run #{run['id']}")
        summary = pd.DataFrame([{"variant": c["label"], "latency (s)": c["latency_s"], "tokens/s": c["tokens_per_second"],
                                 "tokens": c["completion_tokens"], "words": c["words"], "prompt tokens": c["prompt_tokens"],
                                 **({"reward (best)": c["reward"]["best"], "reward (mean)": c["reward"]["mean"]}
                                    if c.get("reward") else {})}
                                for c in run["columns"]])
        if run.get("reward"):
            st.caption(f"Rewards by {run['reward']['source']} (higher is better).")
        st.dataframe(summary, hide_index=True, width="stretch", key="cmp-summary")
        show_run(run)
        send_to_labeling(run, "cmp")
keep_widgets("cmp")
