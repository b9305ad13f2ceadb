"""RLHF runs: reward and KL of a PPO run on one chart (with the reward-hacking flag), PPO diagnostics, held-out
evaluations and the sample completions over time. Jobs are launched from the Jobs page (kinds reward, ppo, dpo)."""

import pandas as pd
import streamlit as st

from app.auth import leave_unless_admin
from app.common import user_errors
from app.components.rlhf_charts import diagnostic, held_out_chart, reward_and_kl
from app.components.safe_text import show_chart
from app.components.uncertainty import cell, delta_interval
from backend.db.engine import session_scope
from services import rlhf

st.title(":material/psychology: RLHF runs")
st.caption("PPO keeps the policy close to its reference with a per-token KL penalty: watch the reward rise while the "
           "KL stays near its target. Launch reward, PPO and DPO jobs from the Jobs page.")

with session_scope() as s:
    runs = rlhf.ppo_runs(s)
if not runs:
    st.info("No PPO run yet: on the Jobs page, queue a `ppo` job (the `ppo-detox-cpu` preset is a good start).")
    st.stop()

labels = {r["id"]: f"#{r['id']} {r['name']} ({r['status']}, {r['created']})" for r in runs}
if st.session_state.get("rlhf-pick") not in labels:
    st.session_state.pop("rlhf-pick", None)
job_id = st.selectbox("PPO run", list(labels), key="rlhf-pick", format_func=labels.get)


def samples_view(samples: list[dict]) -> None:
    st.subheader("Sample completions")
    if not samples:
        st.caption("No samples yet.")
        return
    steps = sorted({s["step"] for s in samples})
    if len(steps) > 1:
        low, high = st.select_slider("Steps", options=steps, value=(steps[0], steps[-1]), key="rlhf-sample-steps")
    else:
        low = high = steps[0]
    shown = [s for s in samples if low <= s["step"] <= high]
    st.dataframe(pd.DataFrame(shown)[["step", "reward", "prompt", "completion"]].iloc[::-1], hide_index=True,
                 width="stretch", height=300,
                 column_config={"reward": st.column_config.NumberColumn(format="%.3f")})


def change(row: dict | None, metric: str) -> str | None:
    """``+0.100 [+0.020, +0.180] ▲ better · p = 0.01`` since the first evaluation (no interval without a spread)."""
    if row is None or row["delta"] is None:
        return None
    return f"{row['delta']:+.3f} " + (delta_interval(row["vs_first"], metric) if row["vs_first"] else "(no interval)")


def evaluations_view(view: dict, job_id: int) -> None:
    """The held-out evaluations: the latest with its change since the first, per step with approximate intervals."""
    rows = view["held_out"]
    if not rows:
        return
    st.subheader("Held-out prompts")
    latest = {r["metric"]: r for r in rows if r["step"] == rows[-1]["step"]}
    cols = st.columns(3)
    for col, metric, label, better_down in ((cols[0], "reward", "mean reward", False),
                                            (cols[1], "toxicity", "mean toxicity", True),
                                            (cols[2], "kl", "KL to reference", True)):
        if row := latest.get(metric):
            noise = row["vs_first"] is not None and not row["vs_first"]["significant"]
            since = change(row, metric)
            col.metric(label, f"{row['mean']:.3f}", since and f"{since} since step 0",
                       help=cell(row["interval"], row["mean"], metric),
                       delta_color="off" if noise else "inverse" if better_down else "normal")
    by_step: dict[int, dict] = {}
    for r in rows:
        by_step.setdefault(r["step"], {"step": r["step"]}).update(
            {r["metric"]: cell(r["interval"], r["mean"], r["metric"]), f"Δ {r['metric']} since step 0":
             change(r, r["metric"])})
    if any(r["interval"] for r in rows):
        show_chart(held_out_chart(rows), f"rlhf-held-out-{job_id}")
    st.dataframe(pd.DataFrame(list(by_step.values())), hide_index=True, width="stretch")
    sizes = {(r["interval"]["n"], r["interval"]["n_obs"]) for r in rows if r["interval"]}
    n = ", ".join(f"{p} prompts ({c} completions)" for p, c in sorted(sizes)) or "no logged spread: point values"
    st.caption(f"n = {n}. {view['held_out_note']}")


@st.fragment(run_every=5)
def run_view(job_id: int) -> None:
    leave_unless_admin()  # a fragment rerun skips the entry script's role check: demoted since → leave the page
    view = None
    with user_errors(), session_scope() as s:
        view = rlhf.run_view(s, job_id)
    if view is None:  # the error is shown
        return
    job, steps = view["job"], view["steps"]
    if job["error"]:
        st.error(job["error"])
    if view["flag"]:
        st.warning(view["flag"]["message"], icon=":material/warning:")
    if not steps:
        st.info(f"Job {job['id']} is {job['status']}: the first step has not been logged yet.")
    else:
        last = steps[-1]
        cols = st.columns(4)
        cols[0].metric("step", last["step"])
        cols[1].metric("reward", f"{last['objective/scores']:.3f}")
        cols[2].metric("KL", f"{last['objective/kl']:.2f}",
                       None if view["kl_target"] is None else f"target {view['kl_target']:g}", delta_color="off")
        cols[3].metric("β (kl_coef)", f"{last.get('kl_coef', 0):.4f}")
        st.plotly_chart(reward_and_kl(steps, view["kl_target"]), width="stretch", key=f"rlhf-main-{job_id}")
        left, middle, right = st.columns(3)
        left.plotly_chart(diagnostic(steps, ["policy/entropy"], "Entropy per token"), width="stretch",
                          key=f"rlhf-entropy-{job_id}")
        middle.plotly_chart(diagnostic(steps, ["policy/clipfrac", "val/clipfrac"], "Clip fractions"),
                            width="stretch", key=f"rlhf-clip-{job_id}")
        right.plotly_chart(diagnostic(steps, ["val/loss"], "Value loss"), width="stretch", key=f"rlhf-value-{job_id}")
    evaluations_view(view, job_id)
    if view["summary"]:
        st.caption(f"Stopped after {view['summary']['steps']} step(s): {view['summary']['stopped']}.")
    samples_view(view["samples"])


run_view(job_id)
