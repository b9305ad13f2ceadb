"""Training-curve charts: loss and eval loss, learning rate, gradient norm and tokens/s, one panel each."""

import pandas as pd
import plotly.express as px

from app.components.safe_text import show_chart

# metric key → (panel title, legend name); loss and eval loss share a panel so they compare on one axis
PANELS = {"loss": ("loss", "train loss"), "eval_loss": ("loss", "eval loss"),
          "learning_rate": ("learning rate", "learning rate"), "grad_norm": ("gradient norm", "grad norm"),
          "train/tokens_per_second": ("tokens/s (measured)", "tokens/s")}


def curves_frame(rows: list[dict]) -> pd.DataFrame:
    """Metric rows (``job, job_name, step, key, value``) → the chart's frame with a panel and a series name."""
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame = frame[frame["key"].isin(list(PANELS))].copy()
    frame["panel"] = frame["key"].map(lambda k: PANELS[k][0])
    several = frame["job"].nunique() > 1 if "job" in frame else False
    name = frame["key"].map(lambda k: PANELS[k][1])
    frame["series"] = (frame["job_name"].fillna("").astype(str) + " #" + frame["job"].astype(str) + " · " + name
                       if several else name)
    return frame.sort_values(["series", "step"])


def curves_chart(rows: list[dict], key: str, height: int = 520) -> bool:
    """Draw the panels that have data; returns False (and draws nothing) when there is none yet."""
    frame = curves_frame(rows)
    if frame.empty:
        return False
    panels = [p for p in dict.fromkeys(t for t, _ in PANELS.values()) if p in set(frame["panel"])]
    fig = px.line(frame, x="step", y="value", color="series", facet_col="panel", facet_col_wrap=2,
                  category_orders={"panel": panels}, markers=frame["step"].nunique() < 40,
                  labels={"value": "", "series": "", "step": "step"}, height=height if len(panels) > 2 else 340)
    fig.update_yaxes(matches=None, showticklabels=True)  # each metric on its own scale
    fig.update_xaxes(dtick=max(1, round(frame["step"].max() / 10)))  # whole steps only
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=", 1)[-1]))
    fig.update_layout(legend={"orientation": "h", "y": -0.12}, margin={"t": 40})
    show_chart(fig, key)
    return True
