"""Plotly charts of a PPO run: reward and KL on one chart (the reward-hacking monitor) and small PPO diagnostics."""

import plotly.graph_objects as go
from plotly.subplots import make_subplots


def reward_and_kl(steps: list[dict], kl_target: float | None) -> go.Figure:
    """Mean score (left axis) and KL per completion (right axis) against the step; the KL target as a dashed line."""
    x = [r["step"] for r in steps]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=x, y=[r.get("objective/scores") for r in steps], name="reward (score)",
                             mode="lines+markers"), secondary_y=False)
    fig.add_trace(go.Scatter(x=x, y=[r.get("objective/rlhf_reward") for r in steps], name="score − β·KL",
                             mode="lines", line={"dash": "dot"}), secondary_y=False)
    fig.add_trace(go.Scatter(x=x, y=[r.get("objective/kl") for r in steps], name="KL to reference",
                             mode="lines+markers"), secondary_y=True)
    if kl_target and x:  # a trace, not add_hline: a shape would stretch the reward axis to the KL's scale
        fig.add_trace(go.Scatter(x=[min(x), max(x)], y=[kl_target] * 2, name=f"KL target {kl_target:g}",
                                 mode="lines", line={"dash": "dash", "color": "gray"}), secondary_y=True)
    rewards = [v for r in steps for v in (r.get("objective/scores"), r.get("objective/rlhf_reward")) if v is not None]
    kls = [r["objective/kl"] for r in steps if r.get("objective/kl") is not None]
    if rewards:  # each axis fits its own values, so a reward moving between 0.88 and 0.95 stays readable
        pad = max(0.02, 0.1 * (max(rewards) - min(rewards)))
        fig.update_yaxes(range=[min(rewards) - pad, max(rewards) + pad], secondary_y=False)
    fig.update_yaxes(range=[min(0.0, *kls) if kls else 0.0, 1.1 * max([*kls, kl_target or 0.0, 0.1])],
                     secondary_y=True)
    fig.update_yaxes(title_text="reward", secondary_y=False)
    fig.update_yaxes(title_text="KL (nats / completion)", secondary_y=True, showgrid=False)
    fig.update_layout(height=360, margin={"l": 10, "r": 10, "t": 30, "b": 10}, xaxis_title="PPO step",
                      legend={"orientation": "h", "y": 1.12})
    return fig


def diagnostic(steps: list[dict], keys: list[str], title: str) -> go.Figure:
    """One small chart of a few per-step values (entropy, clip fractions, value loss)."""
    fig = go.Figure()
    for key in keys:
        fig.add_trace(go.Scatter(x=[r["step"] for r in steps], y=[r.get(key) for r in steps], name=key,
                                 mode="lines+markers"))
    fig.update_layout(title=title, height=260, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      legend={"orientation": "h", "y": -0.25})
    return fig


HELD_OUT_TITLES = {"reward": "held-out reward", "toxicity": "held-out toxicity", "kl": "KL to reference"}


def held_out_chart(rows: list[dict]) -> go.Figure:
    """Each held-out score against the step, one small panel each, with its approximate 95 % interval as error
    bars (none for the KL: its spread is not logged)."""
    from app.components.uncertainty import error_y

    metrics = [m for m in HELD_OUT_TITLES if any(r["metric"] == m for r in rows)]
    fig = make_subplots(rows=1, cols=max(1, len(metrics)), subplot_titles=[HELD_OUT_TITLES[m] for m in metrics])
    for col, metric in enumerate(metrics, start=1):
        mine = [r for r in rows if r["metric"] == metric]
        ys = [r["mean"] for r in mine]
        fig.add_trace(go.Scatter(x=[r["step"] for r in mine], y=ys, mode="lines+markers", name=metric,
                                 error_y=error_y(ys, [r["interval"] for r in mine])), row=1, col=col)
    fig.update_layout(height=260, showlegend=False, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    fig.update_xaxes(title_text="PPO step")
    return fig
