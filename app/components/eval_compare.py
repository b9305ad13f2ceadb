"""Evaluation views that compare runs with their uncertainty: Compare runs (scores with 95 % intervals, paired
deltas against the baseline with error bars, cost) and Before/after (RLHF: toxicity, reward, length)."""

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from app.common import user_errors
from app.components.safe_text import show_chart
from app.components.uncertainty import caption, cell, delta_interval, error_y
from backend.db.engine import session_scope
from services import evaluation

SCORES = ("rouge1", "rouge2", "rougeL", "rougeLsum", "bleu")
HACKING = {"repetition": "repetition", "refusal": "refusal rate", "apology": "apology rate"}  # reward-hacking signs
OTHERS = ("perplexity", "toxicity", "reward", "length_words", *HACKING)  # in the table when scored
# Distinct hues for overlaid models (the theme's palette starts with two blues that blur when overlaid).
MODEL_COLORS = ["#4f46e5", "#f97316", "#10b981", "#e11d48", "#0ea5e9", "#a16207"]
BEFORE_AFTER = {"toxicity": "toxicity", "reward": "reward-model score", "length_words": "length (words)"}


def _label(row: dict) -> str:
    return f"{row['model']} · {row['method_label']} (#{row['run']})"


def _corrected(rows: list[dict]) -> bool:
    return any(d and d["correction"] for r in rows for d in r["vs_baseline"].values())


def _bars(rows: list[dict], metrics: list[str], value, interval, title: str, fmt: str,
          first_color: int = 0) -> go.Figure:
    """Grouped bars, one trace per run, with error bars from each bar's interval (a run keeps its colour from chart
    to chart: ``first_color`` skips the baseline's when it has no bar)."""
    fig = go.Figure()
    for i, row in enumerate(rows, start=first_color):
        ys = [value(row, m) for m in metrics]
        errors = error_y(ys, [interval(row, m) for m in metrics])
        fig.add_trace(go.Bar(name=_label(row), x=metrics, y=ys, error_y=errors,
                             text=[None if y is None else format(y, fmt) for y in ys],
                             marker_color=MODEL_COLORS[i % len(MODEL_COLORS)]))
    fig.update_layout(barmode="group", title=title, legend={"orientation": "h", "y": -0.15})
    return fig


def _delta_columns(table: pd.DataFrame, rows: list[dict], key: str, delta_key: str, columns: tuple[str, str]) -> None:
    """Δ (run − baseline, a number) and beside it its 95 % interval with the mark and p."""
    table[columns[0]] = [r[delta_key] for r in rows]
    table[columns[1]] = [delta_interval(r["vs_baseline"][key], key, r["baseline"])
                         or (None if r[delta_key] is None else "no per-example scores") for r in rows]


def _mean(row: dict, metric: str) -> float | None:
    """The per-example mean (what the interval is around), else the stored value."""
    return row["intervals"][metric]["mean"] if row["intervals"][metric] else row[metric]


def compare_view(run_ids: list[int]) -> None:
    """Grouped bars per metric with 95 % intervals, paired deltas against the base run with theirs, and trainable
    parameters / training time beside."""
    with user_errors():
        with session_scope() as s:
            rows = evaluation.compare_runs(s, run_ids)
        rows = sorted(rows, key=lambda r: not r["baseline"])  # the baseline's bars first
        scores = [m for m in SCORES if any(r.get(m) is not None for r in rows)]
        if not scores:
            st.info("These runs have no reference-based scores (the data has no references): the Before/after view "
                    "compares their toxicity, reward and length.")
            return
        fig = _bars(rows, scores, _mean, lambda r, m: r["intervals"][m],
                    "Scores by model with 95 % intervals (higher is better; F-measure and BLEU on a 0–1 scale)", ".3f")
        tops = [(r["intervals"][m] or {}).get("high") or _mean(r, m) or 0 for r in rows for m in scores]
        fig.update_yaxes(range=[0, max(0.1, max(tops) * 1.15)])  # all-zero scores stay readable
        show_chart(fig, "ev-chart")
        base, others = rows[0], rows[1:]
        if others:
            fig = _bars(others, scores, lambda r, m: r[f"delta_{m}"], lambda r, m: r["vs_baseline"][m],
                        f"Change against the baseline: {_label(base)} (paired, 95 % intervals)", "+.3f", 1)
            fig.add_hline(y=0, line_color="gray", line_width=1)
            show_chart(fig, "ev-deltas")
        shown = [*scores, *(m for m in OTHERS if any(r.get(m) is not None for r in rows))]
        table = pd.DataFrame({"label": [_label(r) for r in rows], "n_prompts": [r["n_prompts"] for r in rows],
                              "n": [r["n"] for r in rows]})
        for m in shown:
            table[m] = [cell(r["intervals"][m], r[m], m) for r in rows]
            _delta_columns(table, rows, m, f"delta_{m}", (f"delta_{m}", f"ci_{m}"))
        for key in ("trainable_params", "trainable_share", "train_runtime"):
            table[key] = [r[key] for r in rows]
        st.dataframe(table, hide_index=True, width="stretch", column_config={
            "label": st.column_config.TextColumn("model", width="medium"),
            "n_prompts": st.column_config.NumberColumn("prompts"),
            "n": st.column_config.NumberColumn("completions"),
            **{f"delta_{m}": st.column_config.NumberColumn(f"Δ {m}", format="%+.3f") for m in shown},
            **{f"ci_{m}": st.column_config.TextColumn(f"Δ {m} 95 % CI", width="medium") for m in shown},
            "trainable_params": st.column_config.NumberColumn("trainable params", format="localized"),
            "trainable_share": st.column_config.NumberColumn("trained share", format="percent"),
            "train_runtime": st.column_config.NumberColumn("training time (s)", format="%.0f")})
        notes = [caption(rows, _corrected(rows))]
        if "bleu" in shown and any(r["intervals"]["bleu"] for r in rows):
            notes.append("BLEU: bars and cells are the mean sentence BLEU, the per-example version the interval is "
                         "for; the corpus BLEU (one number per run) is under “All runs”.")
        st.caption(" ".join(notes))


def before_after_view(run_ids: list[int]) -> None:
    """Toxicity, reward and length (ROUGE-1 where there are references) with their 95 % intervals and paired
    deltas against the baseline, and overlaid per-model histograms of each score."""
    with user_errors():
        with session_scope() as s:
            scores = evaluation.score_distributions(s, run_ids)
            rows = evaluation.before_after(s, run_ids, distributions=scores)
        dist = pd.DataFrame(scores)
        base = next(r for r in rows if r["baseline"])
        table = pd.DataFrame({"model": [f"{r['label']} · {r['method_label']}" for r in rows],
                              "prompts": [r["n_prompts"] for r in rows], "n": [r["n"] for r in rows]})
        missing = []
        for key, title in (BEFORE_AFTER | HACKING).items():
            if all(r[f"{key}_mean"] is None for r in rows):
                missing.append(key)
                continue
            table[title] = [cell(r["intervals"][key], r[f"{key}_mean"], key) for r in rows]
            _delta_columns(table, rows, key, f"delta_{key}_mean", (f"Δ {title}", f"Δ {title} 95 % CI"))
        if any(r["rouge1"] is not None for r in rows):
            table["ROUGE-1"] = [cell(r["intervals"]["rouge1"], r["rouge1"], "rouge1") for r in rows]
            _delta_columns(table, rows, "rouge1", "delta_rouge1", ("Δ ROUGE-1", "Δ ROUGE-1 95 % CI"))
        st.caption(f"Baseline: {base['label']} · {base['method_label']}. Δ = run − baseline on the same prompts: "
                   "lower toxicity and higher reward mean the alignment worked; length shows whether it got there by "
                   "saying less; repetition, refusal and apology rates whether it repeated itself, declined or apologised "
                   "instead of answering. "
                   + caption(rows, _corrected(rows)))
        st.dataframe(table, hide_index=True, width="stretch", column_config={
            "model": st.column_config.TextColumn(width="medium"), "n": st.column_config.NumberColumn("completions"),
            **{c: st.column_config.NumberColumn(format="%+.3f") for c in table.columns
               if c.startswith("Δ") and not c.endswith("CI")}})
        if "reward" in missing:
            st.caption("No reward-model score: these runs were evaluated without a reward model (New evaluation → "
                       "Scorers → Reward model).")
        if all(r["rouge1"] is None for r in rows):
            st.caption("No ROUGE: the data has no references (held-out prompts), so only toxicity, reward and "
                       "length compare.")
        shown = [k for k in BEFORE_AFTER if k not in missing]  # histograms: the scores, not the hacking signs
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
            show_chart(fig, f"ev-ba-{key}", col)
