"""Evaluation: queue evaluation jobs, then compare runs — scores and deltas, training curves, toxicity, examples."""

import pandas as pd
import streamlit as st

from app.components.eval_dashboards import compare_view, curves_view, examples_view, toxicity_view
from app.components.eval_form import eval_form
from backend.db.engine import session_scope
from backend.services import evaluation

VIEWS = ["Compare runs", "Training curves", "Toxicity", "Per example"]

st.title(":material/leaderboard: Evaluation")
st.caption("Generate on a dataset split and score against the references: ROUGE, BLEU, perplexity, toxicity, "
           "length. Compare the base model (zero-shot) with its fine-tuned versions on the same examples.")

with st.expander("New evaluation", expanded=False, icon=":material/add:"):
    eval_form()


def default_runs(runs: list[dict]) -> list[int]:
    """The newest run of each model on the newest run's dataset split (runs on other data do not compare)."""
    newest = runs[-1]
    same = [r for r in runs if (r["dataset"], r["split"], r["n"]) == (newest["dataset"], newest["split"], newest["n"])]
    return [r["run"] for r in evaluation.latest_per_model(same)]


@st.fragment(run_every=5)
def results() -> None:
    with session_scope() as s:
        runs = evaluation.eval_runs(s)
    if not runs:
        st.info("No evaluation yet: open “New evaluation” above, pick models and run one.")
        return
    labels = {r["run"]: f"#{r['run']} {r['model']} ({r['n']} × {r['dataset']} {r['split']})" for r in runs}
    # Follow the default (newest runs) until the user picks runs themselves; drop runs that no longer exist.
    state, default = st.session_state, default_runs(runs)
    if "ev-runs" not in state or state["ev-runs"] == state.get("ev-runs-default"):
        state["ev-runs"] = default
    elif any(i not in labels for i in state["ev-runs"]):
        state["ev-runs"] = [i for i in state["ev-runs"] if i in labels] or default
    state["ev-runs-default"] = default
    picked = st.multiselect("Runs to compare", list(labels), key="ev-runs", format_func=labels.get,
                            help="Scores compare only on the same examples: by default the newest run of each "
                            "model on the newest run's dataset split.")
    view = st.radio("View", VIEWS, key="ev-view", horizontal=True, label_visibility="collapsed")
    if not picked and view != "Training curves":
        st.info("Pick the runs to compare.")
    elif view == "Compare runs":
        compare_view(picked)
    elif view == "Training curves":
        curves_view()
    elif view == "Toxicity":
        toxicity_view(picked)
    else:
        examples_view(picked, labels)
    with st.expander("All runs"):
        st.dataframe(pd.DataFrame(runs), hide_index=True, width="stretch",
                     column_config={"model": st.column_config.TextColumn(width="medium")})


results()
