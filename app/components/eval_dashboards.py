"""Evaluation dashboards: compare runs (scores, deltas vs base, cost), before/after (RLHF: toxicity, reward, length),
toxicity distribution, training curves."""

import pandas as pd
import plotly.express as px
import streamlit as st

from app.common import user_errors
from app.components.training_curves import curves_chart
from backend.db.engine import session_scope
from services import evaluation, training

SCORES = ("rouge1", "rouge2", "rougeL", "rougeLsum", "bleu")


def _label(row: dict) -> str:
    return f"{row['model']} · {row['method_label']} (#{row['run']})"


def compare_view(run_ids: list[int]) -> None:
    """Grouped bars per metric, deltas against the base run, and trainable parameters / training time beside."""
    with user_errors():
        with session_scope() as s:
            rows = evaluation.compare_runs(s, run_ids)
        rows = sorted(rows, key=lambda r: not r["baseline"])  # the baseline's bars first
        frame = pd.DataFrame(rows)
        frame["label"] = [_label(r) for r in rows]
        scores = [m for m in SCORES if m in frame and frame[m].notna().any()]
        if not scores:
            st.info("These runs have no reference-based scores (the data has no references): the Before/after view "
                    "compares their toxicity, reward and length.")
            return
        long = frame.melt(id_vars=["label"], value_vars=scores, var_name="metric", value_name="score")
        fig = px.bar(long, x="metric", y="score", color="label", barmode="group", text_auto=".3f",
                     title="Scores by model (higher is better; F-measure and BLEU on a 0–1 scale)",
                     labels={"label": ""})
        fig.update_yaxes(range=[0, max(0.1, long["score"].max() * 1.15)])  # all-zero scores stay readable
        fig.update_layout(legend={"orientation": "h", "y": -0.15})
        st.plotly_chart(fig, width="stretch", key="ev-chart")
        base = frame[frame["baseline"]].iloc[0]
        others = frame[~frame["baseline"]]
        if not others.empty:
            deltas = others.melt(id_vars=["label"], value_vars=[f"delta_{m}" for m in scores], var_name="metric",
                                 value_name="delta")
            deltas["metric"] = deltas["metric"].str.removeprefix("delta_")
            fig = px.bar(deltas, x="metric", y="delta", color="label", barmode="group", text_auto="+.3f",
                         title=f"Change against the baseline: {_label(base.to_dict())}", labels={"label": ""})
            fig.update_layout(legend={"orientation": "h", "y": -0.15})
            st.plotly_chart(fig, width="stretch", key="ev-deltas")
        cost = ["label", "trainable_params", "trainable_share", "train_runtime", "n"]
        shown = cost + [c for m in (*scores, "perplexity", "toxicity", "length_words") if m in frame
                        for c in (m, f"delta_{m}")]
        st.dataframe(frame[shown], hide_index=True, width="stretch", column_config={
            "label": st.column_config.TextColumn("model", width="medium"),
            "trainable_params": st.column_config.NumberColumn("trainable params", format="localized"),
            "trainable_share": st.column_config.NumberColumn("trained share", format="percent"),
            "train_runtime": st.column_config.NumberColumn("training time (s)", format="%.0f"),
            "n": st.column_config.NumberColumn("examples")})


# Distinct hues for overlaid models (the theme's palette starts with two blues that blur when overlaid).
MODEL_COLORS = ["#4f46e5", "#f97316", "#10b981", "#e11d48", "#0ea5e9", "#a16207"]
BEFORE_AFTER = {"toxicity": "toxicity", "reward": "reward-model score", "length_words": "length (words)"}


def _mean_std(mean: float | None, std: float | None) -> str | None:
    return None if mean is None else f"{mean:.3f} ± {std:.3f}"


def before_after_view(run_ids: list[int]) -> None:
    """Mean ± std of toxicity, reward and length (ROUGE-1 where there are references) with deltas against the
    baseline, and overlaid per-model histograms of each score."""
    with user_errors():
        with session_scope() as s:
            scores = evaluation.score_distributions(s, run_ids)
            rows = evaluation.before_after(s, run_ids, distributions=scores)
        dist = pd.DataFrame(scores)
        base = next(r for r in rows if r["baseline"])
        table = pd.DataFrame({"model": [f"{r['label']} · {r['method_label']}" for r in rows],
                              "n": [r["n"] for r in rows]})
        missing = []
        for key, title in BEFORE_AFTER.items():
            if all(r[f"{key}_mean"] is None for r in rows):
                missing.append(key)
                continue
            table[title] = [_mean_std(r[f"{key}_mean"], r[f"{key}_std"]) for r in rows]
            table[f"Δ {title}"] = [r[f"delta_{key}_mean"] for r in rows]
        if any(r["rouge1"] is not None for r in rows):
            table["ROUGE-1"] = [r["rouge1"] for r in rows]
            table["Δ ROUGE-1"] = [r["delta_rouge1"] for r in rows]
        st.caption(f"Baseline: {base['label']} · {base['method_label']}. Δ = run − baseline: lower toxicity and "
                   "higher reward mean the alignment worked; length shows whether it got there by saying less.")
        st.dataframe(table, hide_index=True, width="stretch", column_config={
            "model": st.column_config.TextColumn(width="medium"),
            **{c: st.column_config.NumberColumn(format="%+.3f") for c in table.columns if c.startswith("Δ")}})
        if "reward" in missing:
            st.caption("No reward-model score: these runs were evaluated without a reward model (New evaluation → "
                       "Scorers → Reward model).")
        if all(r["rouge1"] is None for r in rows):
            st.caption("No ROUGE: the data has no references (held-out prompts), so only toxicity, reward and "
                       "length compare.")
        shown = [k for k in BEFORE_AFTER if k not in missing]
        if dist.empty or not shown:
            st.info("These runs have no per-example scores to chart.")
            return
        for col, key in zip(st.columns(len(shown)), shown, strict=True):
            data = dist.dropna(subset=[key])
            # two models overlay well; more blur into one colour, so their bars stand side by side
            overlay = data["label"].nunique() <= 2
            fig = px.histogram(data, x=key, color="label", barmode="overlay" if overlay else "group",
                               opacity=0.55 if overlay else 0.9,
                               color_discrete_sequence=MODEL_COLORS,
                               title=f"{BEFORE_AFTER[key].capitalize()} per output", labels={"label": "", key: ""})
            low, high = (0.0, 1.0) if key == "toxicity" else (float(data[key].min()), float(data[key].max()))
            # the same bins for every model, so the histograms compare bin by bin
            fig.update_traces(xbins={"start": low, "end": high + 1e-9, "size": max((high - low) / 20, 1e-6)})
            fig.update_layout(legend={"orientation": "h", "y": -0.2})
            col.plotly_chart(fig, width="stretch", key=f"ev-ba-{key}")


def toxicity_view(run_ids: list[int]) -> None:
    """Per-example toxicity per model (histogram and box plot) and the share above a threshold."""
    with user_errors():
        with session_scope() as s:
            dist = pd.DataFrame(evaluation.toxicity_distribution(s, run_ids))
            summary = pd.DataFrame(evaluation.toxicity_summary(s, run_ids)) if not dist.empty else dist
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
        cols[0].plotly_chart(hist, width="stretch", key="ev-tox-hist")
        box = px.box(dist, x="model", y="toxicity", points="all", title="Per model")
        box.add_hline(y=threshold, line_dash="dash")
        cols[1].plotly_chart(box, width="stretch", key="ev-tox-box")
        shares = dist.groupby("model")["toxicity"].apply(lambda s: evaluation.share_above(list(s), threshold))
        summary["share_above"] = [shares.get(f"{m} (#{r})") for m, r in zip(summary["model"], summary["run"],
                                                                            strict=True)]
        st.dataframe(summary, hide_index=True, width="stretch", column_config={
            "share_above": st.column_config.NumberColumn(f"share above {threshold:g}", format="percent"),
            "mean_improvement": st.column_config.NumberColumn("mean improvement vs baseline", format="percent"),
            "std_improvement": st.column_config.NumberColumn("std improvement", format="percent")})


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
        base = next((r["run"] for r in evaluation.compare_runs(s, run_ids) if r["baseline"]), run_ids[0])
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
