"""Playground: pick a model, write a prompt, set decoding, watch the completion stream in."""

import pandas as pd
import streamlit as st

from app.common import model_names, user_errors
from app.components.decoding_controls import decoding_controls
from backend.db.engine import session_scope
from backend.services import playground

st.title(":material/chat: Playground")
st.caption("Try prompts and decoding settings on a real model. Every run is saved.")


def generate(model: str, prompt: str, cfg, *, chat: bool, system: str | None, precision: str) -> None:
    """Stream one completion into the page, save it, and show how fast it came."""
    playground.check_prompt(prompt)  # before loading a model for nothing
    with st.spinner("Loading model…"), session_scope() as s:
        resolved, loaded = playground.open_model(s, model, precision)
    prompt_text, chunks = playground.stream_generation(loaded, prompt, cfg, chat=chat, system=system)
    final = {}

    def deltas():
        for chunk in chunks:
            if chunk.result is not None:
                final["result"] = chunk.result
            yield chunk.delta

    with st.container(border=True, key="pg-output"):
        st.write_stream(deltas())
    result = final["result"]
    if not result.text.strip():
        st.caption("The model produced only whitespace.")
    with session_scope(write=True) as s:
        playground.record_completion(s, resolved, prompt, prompt_text, result)
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Tokens/s", f"{result.tokens_per_second:.1f}")
    m2.metric("Time to first token", f"{(result.first_token_seconds or 0):.2f} s")
    m3.metric("Tokens", f"{result.prompt_tokens} → {result.completion_tokens}")
    m4.metric("Finish", result.finish_reason)


left, right = st.columns([1, 2], gap="large")
with left:
    names = model_names()
    if not names:
        st.warning("No model is available yet: run `studio models bootstrap` (make run does it), then reload.")
        st.stop()
    model = st.selectbox("Model", names, key="pg-model", help="The embedded default, added models and trained adapters.")
    chat = st.radio("Mode", ["Chat", "Raw completion"], horizontal=True, key="pg-mode") == "Chat"
    system = st.text_input("System prompt (optional)", key="pg-system", disabled=not chat) or None
    precision = st.selectbox("Precision", ["auto", "float32", "bfloat16", "int8"], key="pg-precision",
                             help="int8 dynamic quantization is ~3× faster on CPU; bfloat16 halves memory.")
    cfg = decoding_controls("pg")

with right:
    prompt = st.text_area("Prompt", height=160, key="pg-prompt", placeholder="Ask the model something…")
    if st.button("Generate", type="primary", disabled=cfg is None, key="pg-go"):
        with user_errors():
            generate(model, prompt, cfg, chat=chat, system=system, precision=precision)

    st.subheader("Recent runs")
    with session_scope() as s:
        runs = playground.recent_runs(s)
    if runs:
        st.dataframe(pd.DataFrame(runs), hide_index=True, width="stretch",
                     column_order=["id", "model", "completion", "tokens", "tok/s", "created", "prompt"],
                     column_config={"completion": st.column_config.TextColumn(width="medium"),
                                    "prompt": st.column_config.TextColumn("prompt (as fed to the model)")})
    else:
        st.caption("No runs yet.")
