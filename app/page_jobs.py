"""Jobs: launch a fine-tuning (or any other) job from a form, follow its curves live, read its log, cancel it."""

import pandas as pd
import streamlit as st

from app.auth import leave_unless_admin
from app.common import model_names, user_errors
from app.components.spec_form import spec_form
from app.components.submit_once import queue_once
from app.components.training_form import sft_job_form
from app.components.training_panel import job_panel
from backend.db.engine import session_scope
from jobs.registry import KINDS, parse_spec
from jobs.spec_files import list_presets, load_spec_file, spec_to_yaml
from services import workers

# Evaluation jobs have their own page; every other kind (labeling, reward, PPO, DPO…) gets the generic form.
OTHER_KINDS = [k for k in KINDS if k not in ("sft", "eval")]

st.title(":material/model_training: Jobs")
st.caption("Jobs run in a background worker: close the browser or restart the studio, they carry on.")


def generic_job_form(kind: str) -> None:
    """A form generated from the kind's spec class, starting from one of its presets when there are any."""
    spec_cls = KINDS[kind].spec
    presets = {n: p for n, p in list_presets().items() if n.split("-", 1)[0] == kind}
    preset = st.selectbox("Start from preset", ["(defaults)", *presets], key=f"jobs-{kind}-preset")
    defaults = load_spec_file(presets[preset]) if preset in presets else spec_cls()
    names = model_names()
    options = {f: names for f in ("base_model", "model", "policy_model", "reward_model") if f in spec_cls.model_fields}
    values = spec_form(spec_cls, defaults, f"jobs-{kind}-form-{preset}", options=options)
    with user_errors():
        spec = parse_spec(values)
        with st.expander("Resolved spec (the same YAML works with `studio job submit`)"):
            st.code(spec_to_yaml(spec), language="yaml")
        if st.button("Queue job", type="primary", key=f"jobs-{kind}-submit"):
            job_id = queue_once(f"jobs-{kind}-submit", spec)  # a double-click queues one job
            st.session_state["jobs-pick"] = job_id
            st.success(f"Queued job {job_id}.")


with st.expander("New job", expanded=False, icon=":material/add:"):
    kind = st.radio("Kind", ["sft", *OTHER_KINDS], key="jobs-kind", horizontal=True,
                    format_func=lambda k: "Supervised fine-tuning (full · LoRA · prompt tuning)" if k == "sft" else k,
                    help="Evaluation jobs are launched from the Evaluation page.")
    if kind == "sft":
        sft_job_form()
    else:
        generic_job_form(kind)


@st.fragment(run_every=3)
def jobs_view() -> None:
    """The job list and the selected job, refreshed every few seconds from the database."""
    leave_unless_admin()  # a fragment rerun skips the entry script's role check: demoted since → leave the page
    with session_scope() as s:
        jobs = workers.job_rows(s)
        live = workers.workers_table(s)
    with st.expander(f"Workers ({len(live)} live)", icon=":material/memory:"):
        if live:
            st.dataframe(pd.DataFrame(live), hide_index=True, width="stretch")
        else:
            st.caption("No live worker: the studio starts one on this machine when a job is queued; start more "
                       "with `studio worker` (`--gpus 0,1`, `STUDIO_WORKER_LABELS`).")
    for job in jobs:
        if job["status"] == "queued" and job["note"]:
            st.warning(f"Job #{job['id']}: {job['note']}", icon=":material/hourglass_empty:")
    if not jobs:
        st.info("No jobs yet: open the form above and queue one.")
        return
    st.dataframe(pd.DataFrame(jobs), hide_index=True, width="stretch", height=min(36 * (len(jobs) + 1) + 2, 250))
    # The status stays out of the label: a keyed selectbox keeps showing the label it was first drawn with.
    labels = {j["id"]: f"#{j['id']} {j['name']} ({j['kind']}, {j['created']})" for j in jobs}
    if st.session_state.get("jobs-pick") not in labels:
        st.session_state.pop("jobs-pick", None)
    job_id = st.selectbox("Job", list(labels), key="jobs-pick", format_func=labels.get)
    job_panel(job_id)


jobs_view()
