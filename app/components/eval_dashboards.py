"""Evaluation dashboards: toxicity distribution (with its interval and paired change), training curves and the
per-example side by side. Compare runs and Before/after live in ``eval_compare``."""

import pandas as pd
import plotly.express as px
import streamlit as st

from app.common import user_errors
from app.components.safe_text import show_chart
from app.components.training_curves import curves_chart
from app.components.uncertainty import caption, cell, delta_interval
from backend.db.engine import session_scope
from services import evaluation, training


def toxicity_view(run_ids: list[int]) -> None:
    """Per-example toxicity per model (histogram and box plot) and the share above a threshold."""
    with user_errors():
        with session_scope() as s:
            dist = pd.DataFrame(evaluation.toxicity_distribution(s, run_ids))
            summary = evaluation.toxicity_summary(s, run_ids) if not dist.empty else []
        if dist.empty:
            st.info("These runs have no per-example toxicity scores.")
            return
        dist["model"] = dist["model"] + " (#" + dist["run"].astype(str) + ")"
        threshold = st.slider("Toxic above", 0.0, 1.0, 0.5, 0.05, key="ev-tox-threshold",
                              help="Share of outputs whose toxicity score (probability of the toxic class) is above "
                              "this value.")
        cols = st.columns(2)
        hist = px.histogram(dist, x="toxicity", color="model", barmode="overlay", opacity=0.6, range_x=[0, 1],
                            title="Toxicity of the outputs")
        hist.update_traces(xbins={"start": 0, "end": 1, "size": 0.05})  # fixed bins: models compare bin by bin
        hist.add_vline(x=threshold, line_dash="dash")
        show_chart(hist, "ev-tox-hist", cols[0])
        box = px.box(dist, x="model", y="toxicity", points="all", title="Per model")
        box.add_hline(y=threshold, line_dash="dash")
        show_chart(box, "ev-tox-box", cols[1])
        shares = dist.groupby("model")["toxicity"].apply(lambda s: evaluation.share_above(list(s), threshold))
        table = pd.DataFrame({"model": [f"{r['model']} (#{r['run']})" for r in summary],
                              "prompts": [r["n"] for r in summary], "completions": [r["n_obs"] for r in summary],
                              "toxicity": [cell(r, metric="toxicity") for r in summary],
                              "Δ toxicity": [r["delta"] for r in summary],
                              "Δ toxicity 95 % CI": [delta_interval(r["vs_baseline"], "toxicity", r["baseline"])
                                                     for r in summary]})
        table["share_above"] = [shares.get(m) for m in table["model"]]
        table["mean_improvement"] = [r["mean_improvement"] for r in summary]
        table["std_improvement"] = [r["std_improvement"] for r in summary]
        st.dataframe(table, hide_index=True, width="stretch", column_config={
            "Δ toxicity": st.column_config.NumberColumn(format="%+.3f"),
            "share_above": st.column_config.NumberColumn(f"share above {threshold:g}", format="percent"),
            "mean_improvement": st.column_config.NumberColumn("mean improvement vs baseline", format="percent"),
            "std_improvement": st.column_config.NumberColumn("std improvement", format="percent")})
        st.caption(caption([{"n_prompts": r["n"], "n": r["n_obs"]} for r in summary],
                           any(r["p_adjusted"] is not None for r in summary)))


def curves_view() -> None:
    """Training curves of the SFT jobs behind the models (any jobs can be picked)."""
    with session_scope() as s:
        jobs = training.training_summaries(s)
    if not jobs:
        st.info("No training jobs yet: launch one on the Jobs page.")
        return
    labels = {j["job"]: f"#{j['job']} {j['name']} ({j['method']}, {j['status']})" for j in jobs}
    default = [j["job"] for j in jobs if j["status"] == "succeeded"][:4] or [jobs[0]["job"]]
    picked = st.multiselect("Training jobs", list(labels), default, key="ev-curve-jobs", format_func=labels.get)
    with session_scope() as s:
        rows = training.training_curves(s, picked)
    if not curves_chart(rows, key="ev-curves"):
        st.info("These jobs have no logged curves yet.")
    st.dataframe(pd.DataFrame([j for j in jobs if j["job"] in picked]).drop(columns=["output_model_id"]),
                 hide_index=True, width="stretch", column_config={
                     "trainable_share": st.column_config.NumberColumn(format="percent"),
                     "train_runtime": st.column_config.NumberColumn("training time (s)", format="%.0f")})


def examples_view(run_ids: list[int], labels: dict[int, str]) -> None:
    """Reference and every run's prediction side by side, sorted by the score difference of two runs."""
    if len(run_ids) < 2:
        st.info("Pick at least two runs above to compare their predictions example by example.")
        return
    base = run_ids[0]
    with user_errors(), session_scope() as s:  # default A: the baseline (base model, zero-shot); B: another run
        base = evaluation.baseline_run(s, run_ids)
    others = [i for i in run_ids if i != base]
    cols = st.columns(4)
    run_a = cols[0].selectbox("Before (A)", run_ids, run_ids.index(base), key="ev-a", format_func=labels.get)
    run_b = cols[1].selectbox("After (B)", run_ids, run_ids.index(others[0]) if others else 0, key="ev-b",
                              format_func=labels.get)
    metric = cols[2].selectbox("Score", ["rouge1", "rouge2", "rougeL", "bleu", "toxicity", "length_words"],
                               key="ev-metric")
    order = cols[3].radio("Order", ["B improved most first", "B regressed most first"], key="ev-order")
    with user_errors():
        with session_scope() as s:
            rows = evaluation.side_by_side(s, run_ids, metric, run_a, run_b, descending=order.startswith("B impr"))
        frame = pd.DataFrame(rows)
        better = int((frame["diff"] > 0).sum()) if not frame.empty else 0
        worse = int((frame["diff"] < 0).sum()) if not frame.empty else 0
        st.caption(f"{len(frame)} examples: B scores higher on {better}, lower on {worse} ({metric}).")
        wide = {c: st.column_config.TextColumn(width="medium") for c in frame.columns
                if c in ("input", "reference") or (c not in ("idx", "diff") and not c.startswith(metric + " "))}
        st.dataframe(frame, hide_index=True, width="stretch", height=520, column_config={
            **wide, "diff": st.column_config.NumberColumn(f"{metric} B − A", format="%+.3f")})
