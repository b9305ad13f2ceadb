"""Evaluation: queue evaluation jobs, then compare runs — scores and deltas, before/after (RLHF), training curves,
toxicity, examples — and send a model's completions to a new labeling campaign."""

import pandas as pd
import streamlit as st

from app.auth import current_user, leave_unless_admin
from app.common import user_errors
from app.components.eval_compare import before_after_view, compare_view
from app.components.eval_dashboards import curves_view, examples_view, toxicity_view
from app.components.eval_form import eval_form
from app.components.submit_once import form_submission
from backend.db.engine import session_scope
from labeling.campaigns import CRITERIA
from services import campaigns_from_runs, evaluation

VIEWS = ["Compare runs", "Before/after", "Training curves", "Toxicity", "Per example"]

st.title(":material/leaderboard: Evaluation")
st.caption("Generate on a dataset split and score the outputs: ROUGE, BLEU and perplexity against references, "
           "toxicity, a reward model's score, length. Compare the base model with its fine-tuned and RLHF versions "
           "(SFT, PPO, DPO, GRPO) on the same examples, then send a model's completions back to labeling.")

with st.expander("New evaluation", expanded=False, icon=":material/add:"):
    eval_form()


def default_runs(runs: list[dict]) -> list[int]:
    """The newest run of each model on the newest run's dataset split (runs on other data do not compare)."""
    newest = runs[-1]
    same = [r for r in runs if (r["dataset"], r["split"], r["n"]) == (newest["dataset"], newest["split"], newest["n"])]
    return [r["run"] for r in evaluation.latest_per_model(same)]


def send_to_labeling(picked: list[int], labels: dict[int, str], models: dict[int, str]) -> None:
    """Close the loop: a picked run's prompts become a new labeling campaign with that model's completions."""
    with st.expander("Send to a new labeling campaign", icon=":material/low_priority:"):
        user = current_user()
        if not user or user["role"] != "admin":
            st.caption("Sign in as an admin to create labeling campaigns.")
            return
        cols = st.columns([3, 3, 1])
        run = cols[0].selectbox("Model (its evaluation run)", picked, len(picked) - 1, key="ev-lc-run",
                                format_func=labels.get, help="The run's prompts become the campaign's items.")
        versus = cols[1].selectbox("Completions from", [None, *[i for i in picked if i != run]], key="ev-lc-versus",
                                   format_func=lambda i: "this model only" if i is None else f"this model vs {labels[i]}",
                                   help="Against another evaluated model (e.g. the base), the K completions of "
                                   "each prompt alternate between the two models.")
        k = cols[2].number_input("K", 2, 9, 2, key="ev-lc-k", help="Completions per prompt that annotators rank.")
        cols = st.columns([3, 1])
        name = cols[0].text_input("Campaign name", f"{models[run]} round 2", key=f"ev-lc-name-{run}")
        criterion = cols[1].selectbox("Criterion", list(CRITERIA), list(CRITERIA).index("harmlessness"),
                                      key="ev-lc-criterion")
        if st.button("Create campaign and generate completions", key="ev-lc-create"):
            st.session_state.pop("ev-lc-flash", None)
            created = None
            form = {"run": run, "versus": versus, "k": int(k), "name": name, "criterion": criterion}
            with user_errors(), form_submission("ev-lc-create", form) as token, \
                    session_scope(write=True) as s:  # an error rolls back: no campaign, no job; a double click: once
                created = campaigns_from_runs.campaign_from_eval_run(s, user["id"], run, name, k=int(k),
                                                                     versus_run_id=versus, criterion=criterion,
                                                                     submission_token=token)
            if created:  # kept in the session so the message outlives the fragment's next refresh
                st.session_state["ev-lc-flash"] = (
                    f"Campaign '{created['name']}' created with {created['items']} prompts; job "
                    f"#{created['job_id']} is generating its completions (Label → Campaigns).")
        if flash := st.session_state.get("ev-lc-flash"):
            st.success(flash)


@st.fragment(run_every=5)
def results() -> None:
    leave_unless_admin()  # a fragment rerun skips the entry script's role check: demoted since → leave the page
    with session_scope() as s:
        runs = evaluation.eval_runs(s)
    if not runs:
        st.info("No evaluation yet: open “New evaluation” above, pick models and run one.")
        return
    labels = {r["run"]: evaluation.run_label(r) for r in runs}
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
    elif view == "Before/after":
        before_after_view(picked)
    elif view == "Training curves":
        curves_view()
    elif view == "Toxicity":
        toxicity_view(picked)
    else:
        examples_view(picked, labels)
    if picked:
        send_to_labeling(picked, labels, {r["run"]: r["model"] for r in runs})
    with st.expander("All runs"):
        st.dataframe(pd.DataFrame(runs), hide_index=True, width="stretch",
                     column_config={"model": st.column_config.TextColumn(width="medium")})


results()
