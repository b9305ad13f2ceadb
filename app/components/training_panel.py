"""One job's live panel: status, step, loss, training curves, output model with lineage, log, cancel."""

import pandas as pd
import streamlit as st

from app.auth import current_user
from app.common import user_errors
from app.components.training_curves import curves_chart
from backend.db.engine import session_scope
from jobs import artifacts, queue
from services import admin_actions, training

ACTIVE = ("queued", "running")


def _cancel(job_id: int) -> None:
    """Button callback: runs before the rerun, so the panel then shows the new status."""
    user = current_user()
    with user_errors(), session_scope(write=True) as s:  # the service re-checks that the user is still an admin
        admin_actions.cancel_job(s, user["id"] if user else 0, job_id)


def _output(model_id: int) -> dict | None:
    with session_scope() as s:
        return training.output_lineage(s, model_id)


def job_panel(job_id: int) -> None:
    with session_scope() as s:
        job = queue.get_job(s, job_id)
        status, error, kind, output_id = job.status, job.error, job.kind, job.output_model_id
        metrics = pd.DataFrame(queue.job_metrics(s, job_id))
        curves = training.training_curves(s, [job_id]) if kind != "eval" else []
    loss = metrics[metrics["key"] == "loss"] if not metrics.empty else metrics
    cols = st.columns(5, vertical_alignment="center")
    cols[0].metric("Status", status)
    cols[1].metric("Step", int(loss["step"].max()) if not loss.empty else "–")
    cols[2].metric("Loss", f"{loss['value'].iloc[-1]:.4g}" if not loss.empty else "–")
    last = metrics.groupby("key")["value"].last() if not metrics.empty else pd.Series(dtype=float)
    if "trainable_params" in last and last.get("total_params"):
        cols[3].metric("Trainable", f"{int(last['trainable_params']):,}",
                       f"{100 * last['trainable_params'] / last['total_params']:.2f} % of all", delta_color="off",
                       delta_arrow="off")
    if status in ACTIVE:
        cols[4].button("Cancel", key=f"cancel-{job_id}", on_click=_cancel, args=(job_id,),
                       help="A queued job is cancelled at once; a running one stops at its next step "
                       "(and checkpoints there when it saves checkpoints, so it can be resumed).")
    if error:
        st.error(error)
    if status == "succeeded" and output_id:
        out = _output(output_id)
        if out is not None:
            runtime = f", {out['train_runtime']:.0f} s of training" if out.get("train_runtime") else ""
            st.success(f"Trained model registered as **{out['name']}** ({out['method'] or out['kind']} on "
                       f"{out['base']}, data {out['dataset']}{runtime}): try it in the Playground, compare it in "
                       "Evaluation, see its lineage under Models.")
    if curves:
        curves_chart(curves, key=f"curves-{job_id}")
    if not metrics.empty:
        with st.expander("All metrics (last value of each)"):
            st.dataframe(last.reset_index(), hide_index=True, width="stretch")
    with st.expander("Log", expanded=status == "failed"):
        log = artifacts.read_log_tail(job_id, 4000)
        # Progress bars redraw their line with \r: show each line as it was last drawn.
        st.code("\n".join(line.rsplit("\r", 1)[-1] for line in log.split("\n")) or "(no log yet)",
                language="text", height=300 if log.count("\n") > 15 else "content")
