"""Playground: pick a model, build a prompt (template, examples, documents), set decoding, watch it stream."""

import pandas as pd
import streamlit as st

from app.common import NO_SCORE, model_names, reward_choices, user_errors
from app.components.decoding_controls import decoding_controls
from app.components.playground_nexttoken import next_token_view
from app.components.playground_prompt import context_meter, prompt_settings
from app.components.playground_results import (
    apply_reopened,
    keep_widgets,
    restore_widgets,
    send_to_labeling,
    show_column,
)
from app.components.safe_text import safe_markdown
from backend.db.engine import session_scope
from backend.rag.collections import list_collections
from services import compare, playground, prompt_building, reward_scoring, runs

st.title(":material/chat: Playground")
st.caption("Try prompts and decoding settings on a real model. Every run is saved (see Runs).")




def scored(run: dict, reward: str | None, best_of_n: bool) -> dict:
    """The saved run scored with ``reward`` (kept with the run); if scoring fails, say why and keep it unscored."""
    st.session_state["pg-last-run"], st.session_state["pg-last-col"] = run["id"], 0
    if reward is None:
        return run
    with user_errors(), st.spinner(f"Scoring with {reward}…"), session_scope(write=True) as s:
        return reward_scoring.score_run(s, run["id"], reward, best_of_n=best_of_n)
    return run


def generate(input_text: str, variant: dict, reward: str | None = None, best_of_n: bool = False) -> None:
    """Stream one completion into the page (several, or beams: one batch), save the run, score it, show it."""
    decoding = variant["decoding"]
    if not variant["prompt"].get("template") and not variant["prompt"].get("rag_collection"):
        playground.check_prompt(input_text)  # before loading a model for nothing
    if reward is not None:
        with session_scope() as s:
            reward_scoring.resolve_source(s, reward)  # a missing reward model: say so before generating
    if decoding["num_return_sequences"] > 1 or decoding["num_beams"] > 1:
        with st.spinner("Generating…"), session_scope(write=True) as s:
            run = compare.run_comparison(s, input_text, [variant])
        run = scored(run, reward, best_of_n)
        with st.container(key="pg-output"):
            show_column(run["columns"][0])
    else:
        with st.spinner("Loading model…"), session_scope() as s:
            prepared = compare.prepare_variant(s, input_text, variant)
        final = {}

        with st.container(border=True, key="pg-output"):
            shown, streamed = st.empty(), ""
            for chunk in compare.stream_variant(prepared):  # redrawn inert: no remote image, no live link
                if chunk.result is not None:
                    final["result"] = chunk.result
                if chunk.delta:
                    streamed += chunk.delta
                    shown.markdown(safe_markdown(streamed))
        with session_scope(write=True) as s:
            run = compare.save_streamed_run(s, input_text, prepared, final["result"])
        if not final["result"].text.strip():
            st.caption("The model produced only whitespace.")
        show_column(scored(run, reward, best_of_n)["columns"][0], show_text=False)


names = model_names()
if not names:
    st.warning("No model is available yet: run `studio models bootstrap` (make run does it), then reload.")
    st.stop()
with session_scope() as s:
    collections = [c["name"] for c in list_collections(s)]
    template_names = [t["name"] for t in prompt_building.list_templates(s)]
restore_widgets("pg")  # the settings survive a visit to another page
score_choices = reward_choices("pg-score")
apply_reopened("pg", names, collections, template_names, score_choices[1:])

left, right = st.columns([1, 2], gap="large")
with left:
    model = st.selectbox("Model", names, key="pg-model", help="The embedded default, added models and trained adapters.")
    chat = st.radio("Mode", ["Chat", "Raw completion"], horizontal=True, key="pg-mode",
                    help="Chat wraps the prompt in the model's chat template; raw continues the text as is.") == "Chat"
    system = st.text_input("System prompt (optional)", key="pg-system", disabled=not chat) or None
    precision = st.selectbox("Precision", ["auto", "float32", "bfloat16", "int8"], key="pg-precision",
                             help="auto: bf16 on a GPU, fp32 on a CPU. int8 dynamic quantization is ~3× faster "
                                  "on CPU; bfloat16 halves memory. Loaded models are shared by every user.")
    cfg = decoding_controls("pg")
    reward = st.selectbox("Score with", score_choices, key="pg-score",
                          help=f"Score every completion. {reward_scoring.TOXICITY}: 1 − p(toxic) from the offline "
                               "profanity classifier, no model needed. A reward model (trained by a reward job) "
                               "reads the prompt and completion as it was trained, with its own tokenizer.")
    best_of_n = st.toggle("Best of n", key="pg-bon", disabled=reward == NO_SCORE,
                          help="Order the completions best first by the reward and mark the best: generate n "
                               "(Completions above) and keep the one the reward likes most.")

with right:
    prompt = st.text_area("Prompt", height=160, key="pg-prompt", placeholder="Ask the model something…")
    with st.expander("Template, examples and documents", icon=":material/library_books:"):
        spec = prompt_settings("pg", collections)
    variant = None if cfg is None else {"model": model, "precision": precision, "decoding": cfg.model_dump(),
                                        "prompt": {**spec, "chat": chat, "system": system}}
    if variant and (prompt.strip() or spec.get("template")):
        with user_errors(), session_scope() as s:
            preview = prompt_building.preview_prompt(s, prompt_building.PromptSpec(**variant["prompt"]), prompt, model=model,
                                               max_new_tokens=cfg.max_new_tokens)
            context_meter("pg", preview)
            with st.expander(f"Prompt preview · {preview['label']}"):
                st.code(preview["prompt"], language=None, wrap_lines=True)
    if st.button("Generate", type="primary", disabled=cfg is None, key="pg-go", icon=":material/play_arrow:"):
        with user_errors():
            generate(prompt, variant, None if reward == NO_SCORE else reward, best_of_n)
    elif last := st.session_state.get("pg-last-run"):
        with user_errors(), session_scope() as s:
            show_column(runs.get_run(s, last)["columns"][st.session_state.get("pg-last-col", 0)])

    with st.expander("Next-token view: what the decoding controls do", icon=":material/bar_chart:"):
        if cfg is not None:
            next_token_view("pg", prompt, variant, cfg)

    if last := st.session_state.get("pg-last-run"):
        with session_scope() as s:
            last_run = runs.get_run(s, last)
        with st.popover("Send this run to labeling", icon=":material/low_priority:"):
            send_to_labeling(last_run, "pg")

    st.subheader("Recent runs")
    with session_scope() as s:
        runs = runs.list_runs(s, limit=10)
    if runs:
        st.dataframe(pd.DataFrame(runs), hide_index=True, width="stretch",
                     column_order=["id", "created", "input", "columns"])
        st.caption("Reopen, rerun, export or send older runs to labeling on the **Runs** page.")
    else:
        st.caption("No runs yet.")
keep_widgets("pg")
