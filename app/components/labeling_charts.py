"""Plotly charts of a campaign's quality report: agreement per annotator, rank position per source, time."""

from typing import Any

import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st

from app.components.safe_text import show_chart

PERCENT = st.column_config.NumberColumn(format="percent")


def agreement_chart(annotators: list[dict[str, Any]], key: str) -> None:
    """Grouped bars per annotator: agreement with the others and with the others' consensus; 0.5 = chance."""
    frame = pd.DataFrame(annotators)
    long = frame.melt(id_vars=["annotator", "outlier"], value_vars=["agreement", "consensus_agreement"],
                      var_name="measure", value_name="share of pairs").dropna()
    long["measure"] = long["measure"].map({"agreement": "with each other annotator",
                                           "consensus_agreement": "with the others' consensus"})
    long["annotator"] = [f"{a} ⚠" if out else a for a, out in zip(long["annotator"], long["outlier"], strict=True)]
    fig = px.bar(long, x="annotator", y="share of pairs", color="measure", barmode="group",
                 title="Agreement per annotator (⚠ = outlier)", range_y=[0, 1])
    fig.add_hline(y=0.5, line_dash="dot", annotation_text="chance", annotation_position="bottom right")
    fig.update_layout(legend={"orientation": "h", "y": -0.2, "title": ""}, height=380)
    show_chart(fig, f"{key}-agreement")


def source_chart(source_ranks: list[dict[str, Any]], key: str) -> None:
    """Stacked bars: how often each source's completions got consensus rank 1, 2, … or a flag."""
    frame = pd.DataFrame(source_ranks)
    frame["rank"] = frame["rank"].map(lambda r: "flagged" if r == "F" else f"rank {r}")
    order = sorted(frame["rank"].unique(), key=lambda r: (r == "flagged", r))
    fig = px.bar(frame, x="source", y="count", color="rank", category_orders={"rank": order},
                 title="Consensus rank of each source's completions (which source wins)",
                 color_discrete_sequence=px.colors.sequential.Viridis)
    fig.update_layout(legend={"title": ""}, height=380)
    show_chart(fig, f"{key}-sources")


TIME_POINTS = 2000  # beyond this many rankings, the box is drawn from quartiles computed here, without points


def time_chart(times: list[dict[str, Any]], key: str) -> None:
    """Seconds per ranked item, per annotator: a box with every point, or — with many rankings — the same box
    from quartiles computed here, so the browser is not sent one point per ranking."""
    if len(times) <= TIME_POINTS:
        fig = px.box(pd.DataFrame(times), x="annotator", y="seconds", points="all", title="Time per item")
    else:
        import plotly.graph_objects as go

        by_annotator: dict[str, list[float]] = {}
        for row in times:
            by_annotator.setdefault(row["annotator"], []).append(row["seconds"])
        fig = go.Figure(layout={"title": f"Time per item ({len(times):,} rankings; whiskers at 1.5 × IQR)",
                                "xaxis_title": "annotator", "yaxis_title": "seconds"})
        for name in sorted(by_annotator):
            seconds = np.array(by_annotator[name], dtype=float)
            q1, mid, q3 = np.percentile(seconds, [25, 50, 75])
            inside = seconds[(seconds >= q1 - 1.5 * (q3 - q1)) & (seconds <= q3 + 1.5 * (q3 - q1))]
            fig.add_trace(go.Box(x=[name], q1=[q1], median=[mid], q3=[q3], lowerfence=[inside.min()],
                                 upperfence=[inside.max()], name=name, showlegend=False,
                                 marker_color=px.colors.qualitative.Plotly[0]))
    fig.update_layout(height=340)
    show_chart(fig, f"{key}-times")


def tables(report: dict[str, Any]) -> None:
    """Per annotator (vs consensus, outliers), per annotator pair (agreement, τ-b), per source (win rate)."""
    st.markdown("**Annotators** (against the consensus of the *other* annotators on shared items)")
    st.dataframe(report["annotators"], hide_index=True, width="stretch", column_order=(
        "annotator", "outlier", "why", "items", "agreement", "consensus_agreement", "consensus_tau_b", "tie_rate",
        "flag_rate", "median_seconds"), column_config={
        "agreement": PERCENT, "consensus_agreement": st.column_config.NumberColumn("vs consensus", format="percent"),
        "consensus_tau_b": st.column_config.NumberColumn("τ-b vs consensus", format="%.2f"),
        "tie_rate": PERCENT, "flag_rate": PERCENT,
        "median_seconds": st.column_config.NumberColumn("median s", format="%.1f")})
    st.markdown("**Annotator pairs** (pairwise agreement and Kendall's τ-b on the items both ranked)")
    st.dataframe(report["annotator_pairs"], hide_index=True, width="stretch", column_config={
        "agreement": PERCENT, "tau_b": st.column_config.NumberColumn("τ-b", format="%.2f")})
    st.markdown("**Sources** (consensus ranks; win rate over pairs against other sources, with its 95 % interval "
                "from resampling items, and the number of duels behind it)")
    st.dataframe(report["sources"], hide_index=True, width="stretch", column_config={
        "mean_rank": st.column_config.NumberColumn(format="%.2f"), "first_place": PERCENT, "flag_rate": PERCENT,
        "win_rate": PERCENT, "win_rate_low": st.column_config.NumberColumn("95 % low", format="percent"),
        "win_rate_high": st.column_config.NumberColumn("95 % high", format="percent")})
