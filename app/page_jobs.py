"""Jobs: launch a fine-tuning job from a form, follow its loss live, read its log, cancel it."""

import pandas as pd
import plotly.express as px
import streamlit as st

from app.common import model_names, user_errors
from app.components.spec_form import spec_form
from backend.db.engine import session_scope
from backend.models.store import list_models
from jobs import queue
from jobs.specs import SFTSpec, list_presets, load_spec_file, parse_spec, spec_to_yaml

ACTIVE = ("queued", "running")

st.title(":material/model_training: Jobs")
st.caption("Jobs run in a background worker: close the browser or restart the studio, they carry on.")

with st.expander("New fine-tuning job (SFT: LoRA, prompt tuning or full)", expanded=False):
    presets = list_presets()
    preset = st.selectbox("Start from preset", [p for p in presets if p.startswith("sft")], key="jobs-preset")
    defaults = load_spec_file(presets[preset])
    values = spec_form(SFTSpec, defaults, f"jobs-form-{preset}", options={"base_model": model_names()})
    with user_errors():
        spec = parse_spec(values)
        st.caption("Resolved spec (the same YAML works with `studio job submit`):")
        st.code(spec_to_yaml(spec), language="yaml", height=260)
        if st.button("Queue job", type="primary", key="jobs-submit"):
            with session_scope(write=True) as s:
                job_id = queue.submit(s, spec).id
            st.session_state["jobs-pick"] = job_id  # the list below is not drawn yet in this run
            st.success(f"Queued job {job_id}.")


def output_name(model_id: int) -> str:
    with session_scope(write=True) as s:
        return next((m["name"] for m in list_models(s) if m["id"] == model_id), f"model {model_id}")


def cancel(job_id: int) -> None:
    """Button callback: runs before the rerun, so the panel then shows the new status."""
    with user_errors(), session_scope(write=True) as s:
        queue.request_cancel(s, job_id)


def loss_chart(metrics: pd.DataFrame, job_id: int) -> None:
    curves = metrics[metrics["key"].isin(["loss", "eval_loss"])]
    if curves.empty:
        return
    fig = px.line(curves, x="step", y="value", color="key", markers=True, title="Loss",
                  labels={"value": "loss", "key": ""})
    fig.update_xaxes(dtick=max(1, round(curves["step"].max() / 10)))  # whole steps only
    st.plotly_chart(fig, width="stretch", key=f"loss-{job_id}")


def job_panel(job_id: int) -> None:
    with session_scope() as s:
        job = queue.get_job(s, job_id)
        metrics = pd.DataFrame(queue.job_metrics(s, job_id))
    loss = metrics[metrics["key"] == "loss"] if not metrics.empty else metrics
    cols = st.columns(4, vertical_alignment="center")
    cols[0].metric("Status", job.status)
    cols[1].metric("Step", int(loss["step"].max()) if not loss.empty else "–")
    cols[2].metric("Loss", f"{loss['value'].iloc[-1]:.4g}" if not loss.empty else "–")
    if job.status in ACTIVE:
        cols[3].button("Cancel", key=f"cancel-{job_id}", on_click=cancel, args=(job_id,),
                       help="A queued job is cancelled at once; a running one stops at its next step.")
    if job.error:
        st.error(job.error)
    if job.status == "succeeded" and job.output_model_id:
        st.success(f"Trained model registered as **{output_name(job.output_model_id)}**: "
                   "try it in the Playground, compare it in Evaluation.")
    if not metrics.empty:
        loss_chart(metrics, job_id)
        with st.expander("All metrics (last value of each)"):
            last = metrics.groupby("key")["value"].last().reset_index()
            st.dataframe(last, hide_index=True, width="stretch")
    with st.expander("Log", expanded=job.status == "failed"):
        log = queue.read_log_tail(job_id, 4000)
        # Progress bars redraw their line with \r: show each line as it was last drawn.
        st.code("\n".join(line.rsplit("\r", 1)[-1] for line in log.split("\n")) or "(no log yet)",
                language="text", height=300 if log.count("\n") > 15 else "content")


@st.fragment(run_every=3)
def jobs_view() -> None:
    """The job list and the selected job, refreshed every few seconds from the database."""
    with session_scope() as s:
        jobs = [{"id": j.id, "kind": j.kind, "name": j.name, "status": j.status,
                 "created": j.created_at.strftime("%m-%d %H:%M:%S"), "error": j.error or ""}
                for j in queue.list_jobs(s)]
    if not jobs:
        st.info("No jobs yet: open the form above and queue one.")
        return
    st.dataframe(pd.DataFrame(jobs), hide_index=True, width="stretch", height=min(36 * (len(jobs) + 1) + 2, 250))
    # The status stays out of the label: a keyed selectbox keeps showing the label it was first drawn with.
    labels = {j["id"]: f"#{j['id']} {j['name']} ({j['kind']}, {j['created']})" for j in jobs}
    job_id = st.selectbox("Job", list(labels), key="jobs-pick", format_func=labels.get)
    job_panel(job_id)


jobs_view()
