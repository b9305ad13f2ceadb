"""Plotly charts of the sources' leaderboard: ratings with their 95 % intervals, and the win-rate matrix."""

from typing import Any

import plotly.graph_objects as go

from app.components.safe_text import show_chart


def ratings_chart(sources: list[dict[str, Any]], key: str) -> None:
    """One point per source with its 95 % interval as an error bar, best at the top."""
    rows = list(reversed(sources))  # Plotly draws the first category at the bottom
    fig = go.Figure(go.Scatter(
        x=[r["rating"] for r in rows], y=[r["source"] for r in rows], mode="markers",
        marker={"size": 10},
        error_x={"type": "data", "symmetric": False, "array": [r["high"] - r["rating"] for r in rows],
                 "arrayminus": [r["rating"] - r["low"] for r in rows], "thickness": 2, "width": 6},
        customdata=[[r["low"], r["high"], r["comparisons"]] for r in rows],
        hovertemplate="%{y}<br>rating %{x:.0f} [%{customdata[0]:.0f}, %{customdata[1]:.0f}]"
                      "<br>%{customdata[2]} comparisons<extra></extra>"))
    fig.add_vline(x=1000, line_dash="dot", annotation_text="average source", annotation_position="top")
    fig.update_layout(title="Rating with its 95 % interval (Elo scale; overlapping intervals = not separated)",
                      xaxis_title="rating", height=max(260, 70 * len(rows) + 120), margin={"l": 10})
    show_chart(fig, f"{key}-ratings")


def win_matrix_chart(sources: list[str], matrix: list[dict[str, Any]], key: str) -> None:
    """Row source's observed win rate against the column source (ties half); the count of comparisons in each
    cell's text and hover."""
    cells = {(m["source"], m["opponent"]): m for m in matrix}
    rates = [[cells[a, b]["win_rate"] if (a, b) in cells else None for b in sources] for a in sources]
    text = [[f"{cells[a, b]['win_rate']:.0%} (n={cells[a, b]['comparisons']})" if (a, b) in cells else "–"
             for b in sources] for a in sources]
    fig = go.Figure(go.Heatmap(z=rates, x=sources, y=sources, text=text, texttemplate="%{text}", zmin=0, zmax=1,
                               colorscale="RdBu", colorbar={"title": "win rate"},
                               hovertemplate="%{y} vs %{x}: %{text}<extra></extra>"))
    fig.update_layout(title="Win rate of the row against the column (n = comparisons)",
                      yaxis={"autorange": "reversed"}, height=max(300, 60 * len(sources) + 160))
    show_chart(fig, f"{key}-matrix")
