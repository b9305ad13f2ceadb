"""Evaluation: score the base model and trained adapters on the demo test split; compare ROUGE."""

import pandas as pd
import plotly.express as px
import streamlit as st

from app.common import model_names, user_errors
from backend.db.engine import session_scope
from backend.services import evaluation

st.title(":material/leaderboard: Evaluation")
st.caption("Dialogue summarization on the demo test split: ROUGE against the reference summaries (greedy decoding).")

with st.form("eval-new"):
    models = st.multiselect("Models and adapters", model_names(), key="ev-models",
                            placeholder="Choose the base model and the adapters to compare")
    n = st.number_input("Test examples", 5, 150, 40, step=5, key="ev-n",
                        help="More examples = steadier scores, longer run (~1 s per example on CPU).")
    if st.form_submit_button("Run evaluation", type="primary"):
        with user_errors():
            if not models:
                st.error("Pick at least one model to evaluate.")
            else:
                with session_scope(write=True) as s:
                    ids = evaluation.submit_evaluations(s, models, int(n))
                st.success(f"Queued evaluation job(s) {', '.join(map(str, ids))}; results appear below when "
                           "they finish (progress on the Jobs page).")


@st.fragment(run_every=5)
def results() -> None:
    with session_scope() as s:
        runs = evaluation.eval_runs(s)
    if not runs:
        st.info("No evaluation yet: pick models above and run one.")
        return
    latest = pd.DataFrame(evaluation.latest_per_model(runs))
    long = latest.melt(id_vars=["model"], value_vars=["rouge1", "rouge2", "rougeL"], var_name="metric")
    fig = px.bar(long, x="metric", y="value", color="model", barmode="group", text_auto=".3f",
                 title="ROUGE (F1) by model — latest run of each")
    fig.update_yaxes(range=[0, max(0.1, long["value"].max() * 1.15)], title="F1")  # all-zero scores stay readable
    st.plotly_chart(fig, width="stretch", key="ev-chart")
    st.subheader("Runs")
    st.dataframe(pd.DataFrame(runs), hide_index=True, width="stretch",
                 column_config={"model": st.column_config.TextColumn(width="medium")})
    run_ids = [r["run"] for r in runs]
    labels = {r["run"]: f"#{r['run']} {r['model']} ({r['n']} examples)" for r in runs}
    run_id = st.selectbox("Examples of run", run_ids[::-1], key="ev-run", format_func=labels.get)
    with session_scope() as s:
        rows = pd.DataFrame(evaluation.examples(s, run_id))
    st.dataframe(rows, hide_index=True, width="stretch",
                 column_config={"reference": st.column_config.TextColumn(width="large"),
                                "prediction": st.column_config.TextColumn(width="large")})


results()
