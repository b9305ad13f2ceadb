"""The next-token view: the top candidates' probabilities before and after each decoding control.

Two views of the same idea: the seeds' toy example (cake .20, donut .10, banana .02, apple .01 — pure
numbers, instant) and the chosen model's real distribution at a chosen step of the prompt's continuation.
Both follow the decoding controls on the left, so moving a slider shows what it does.
"""

from typing import Any

import plotly.graph_objects as go
import streamlit as st

from app.common import user_errors
from app.components.safe_text import show_chart
from backend.db.engine import session_scope
from backend.generation.decoding import DecodingConfig
from backend.generation.nexttoken import STAGE_LABELS, explain_controls
from services import compare

COLORS = ["#9aa5b1", "#f0a04b", "#4c78a8", "#54a24b", "#e45756", "#b279a2", "#72b7b2"]


def _visible(token: str) -> str:
    """Spaces and newlines made visible, so ' cake' and 'cake' are told apart."""
    return token.replace(" ", "␣").replace("\n", "↵") or "∅"


def distribution_chart(table: list[dict[str, Any]], stages: list[str], title: str, *, tokens: bool = True) -> go.Figure:
    """Grouped bars: one group per candidate token, one bar per stage (model, after temperature, …).

    Args:
        tokens: the labels are model tokens (show their spaces and newlines); False for the toy example's words.
    """
    labels, seen = [], {}
    for row in table:  # two ids can decode to the same text: keep the bars apart
        label = _visible(row["token"]) if tokens else row["token"]
        seen[label] = seen.get(label, 0) + 1
        labels.append(label if seen[label] == 1 else f"{label} ({row['token_id']})")
    fig = go.Figure()
    # a flat distribution (an untrained model, a high temperature) needs a decimal to tell its bars apart
    fine = max((row[stage] for row in table for stage in stages), default=1) < 0.1
    for i, stage in enumerate(stages):
        probs = [row[stage] for row in table]
        fig.add_bar(name=STAGE_LABELS[stage], x=labels, y=probs, marker_color=COLORS[i % len(COLORS)],
                    text=[(f"{p:.1%}" if fine else f"{p:.0%}") if p >= 0.0005 else "" for p in probs],
                    textposition="outside")
    fig.update_layout(barmode="group", title=title, yaxis_title="probability", yaxis_tickformat=".1%" if fine else ".0%",
                      height=360, margin={"t": 50, "b": 40, "l": 40, "r": 10}, legend={"orientation": "h", "y": -0.2})
    return fig


def _controls(cfg: DecodingConfig) -> dict[str, Any]:
    return {"temperature": cfg.temperature, "top_k": cfg.top_k, "top_p": cfg.top_p, "min_p": cfg.min_p,
            "typical_p": cfg.typical_p}


def toy_view(cfg: DecodingConfig) -> None:
    explained = explain_controls(top_n=6, **_controls(cfg))
    st.plotly_chart(distribution_chart(explained["table"], explained["stages"],
                                       "Seeds' example: 'I like to eat …'", tokens=False), key="pg-nt-toy-chart")
    kept = " · ".join(f"{STAGE_LABELS[n]}: {k} tokens" for n, k in explained["kept"].items())
    st.caption(f"Tokens left that could be drawn — {kept}.")


def model_view(key: str, input_text: str, variant: dict[str, Any]) -> None:
    c1, c2 = st.columns(2)
    st.session_state.setdefault(f"{key}-nt-top", 8)
    step = c1.number_input("Step", 0, 256, key=f"{key}-nt-step",
                           help="0 = the first generated token; step n continues the prompt greedily n tokens first.")
    top_n = c2.slider("Candidates", 3, 20, key=f"{key}-nt-top")
    with user_errors(), st.spinner("Running the model…"), session_scope() as s:
        view = compare.inspect_next_token(s, input_text, variant, int(step), top_n)
        stages = [stage["name"] for stage in view["stages"]]
        where = f"after '{_visible(view['context'][-40:])}'" if view["context"] else "as the first token"
        chart = distribution_chart(view["table"], stages, f"Next token {where} (step {view['step']})")
        show_chart(chart, f"{key}-nt-chart")  # tokens are model text: no live <a href> in the labels
        entropy = " · ".join(f"{STAGE_LABELS[n]}: {b:.2f} bits, {view['kept'][n]:,} tokens"
                             for n, b in view["entropy_bits"].items())
        st.caption(f"Greedy pick: **{_visible(view['greedy_token'])}**. Spread — {entropy}.")
        if not view["sampling"]:
            st.caption("Sampling is off: the decoder takes the greedy pick; the sampling bars show what "
                       "the controls would do.")


def next_token_view(key: str, input_text: str, variant: dict[str, Any] | None, cfg: DecodingConfig) -> None:
    """The toy example always; the model's distribution when asked (it runs the model on every change)."""
    toy_view(cfg)
    if st.toggle("Show the model's next-token distribution for this prompt", key=f"{key}-nt-on",
                 help="Runs the model once per change of a control, so the chart follows the sliders."):
        if variant is None:
            st.caption("Fix the decoding settings first.")
        else:
            model_view(key, input_text, variant)
