"""One campaign, for its admin: progress, per-annotator progress, its completion job, status and settings."""

from typing import Any

import streamlit as st

from app.auth import current_user, leave_unless_admin
from app.common import user_errors
from app.components.gold_panel import gold_panel
from app.components.safe_text import escape_markdown
from app.components.submit_once import form_submission
from backend.db.engine import session_scope
from labeling import campaigns
from services import admin_actions, completion_jobs

STATUS_ACTIONS = {  # status → the buttons that move it on (label, target status)
    "open": [("Close", "closed"), ("Archive", "archived")],
    "closed": [("Reopen", "open"), ("Archive", "archived")],
    "archived": [("Unarchive", "closed")],
}


def _acting() -> int:
    """The signed-in user's id (the services re-check that it is still an admin's)."""
    user = current_user()
    return user["id"] if user else 0


def _set_status(campaign_id: int, status: str) -> None:
    with user_errors(), session_scope(write=True) as s:
        summary = admin_actions.set_campaign_status(s, _acting(), campaign_id, status)
        st.session_state["lc-flash"] = f"Campaign '{summary['name']}' is now {summary['status']}."


def _queue_job(campaign_id: int) -> None:
    with user_errors(), form_submission(f"lc-generate-{campaign_id}", campaign_id) as token, \
            session_scope(write=True) as s:  # a double click queues one job
        job = admin_actions.queue_completions(s, _acting(), campaign_id, submission_token=token)
        st.session_state["lc-flash"] = f"Queued job #{job.id} to generate the missing completions."


def _cancel_job(job_id: int) -> None:
    with user_errors(), session_scope(write=True) as s:
        admin_actions.cancel_job(s, _acting(), job_id)


@st.fragment(run_every=4)
def progress_panel(campaign_id: int) -> None:
    """Live while annotators rank and the job generates: progress, the job, each annotator's counts."""
    leave_unless_admin()  # a fragment rerun skips the entry script's role check: demoted since → leave the page
    with session_scope() as s:
        overview = admin_actions.campaign_overview(s, _acting(), campaign_id)
    p, people, jobs = overview["progress"], overview["people"], overview["jobs"]
    cols = st.columns(5)
    cols[0].metric("Items", p["items"])
    cols[1].metric("With completions", p["items_ready"])
    cols[2].metric("Items complete", p["items_complete"], help=f"Ranked by {p['overlap']} annotators.")
    cols[3].metric("Judgements", f"{p['judgements_counted']} / {p['judgements_needed']}",
                   help="Counted towards the overlap (extra judgements of an item are kept but not counted).")
    cols[4].metric("Annotators", p["annotators"], help=f"{p['skips']} skips; {p['mean_seconds']} s per ranking.")
    st.progress(min(1.0, p["fraction_done"]), text=f"{p['fraction_done']:.0%} of the needed judgements")
    _job_status(campaign_id, p, jobs)
    if people:
        st.dataframe(people, hide_index=True, width="stretch", column_order=(
            "annotator", "ranked", "skipped", "mean_seconds", "last_at"), column_config={
            "mean_seconds": st.column_config.NumberColumn("seconds / ranking"), "last_at": "last activity"})
    else:
        st.caption("No judgements yet.")


def _job_status(campaign_id: int, progress: dict[str, Any], jobs: list[dict[str, Any]]) -> None:
    job = jobs[0] if jobs else None
    missing = progress["items"] - progress["items_ready"]
    if job and job["status"] in completion_jobs.ACTIVE:
        c1, c2 = st.columns([4, 1], vertical_alignment="center")
        c1.progress(job["progress"], text=f"Completion job #{job['id']} {job['status']}: "
                                          f"{job['progress']:.0%} of the items")
        c2.button("Cancel job", key=f"lc-cancel-{job['id']}", on_click=_cancel_job, args=(job["id"],))
        return
    if job and job["status"] == "failed":
        st.error(f"Completion job #{job['id']} failed: {job['error']}")
    elif job:
        st.caption(f"Completion job #{job['id']} {job['status']}.")
    if missing and progress["status"] != "archived":
        st.warning(f"{missing} item(s) have no completions yet (annotators' pages generate them on demand, "
                   "one at a time).")
        st.button("Generate missing completions", key=f"lc-generate-{campaign_id}", on_click=_queue_job,
                  args=(campaign_id,), icon=":material/play_arrow:")


def campaign_panel(campaign: dict[str, Any]) -> None:
    """Progress, status buttons and editable settings of one campaign."""
    st.markdown(f"**{escape_markdown(campaign['name'])}** · {campaign['status']} · {campaign['criterion']} · "
                f"K={campaign['k']} · sources: {escape_markdown(', '.join(campaign['sources']))}")
    progress_panel(campaign["id"])
    cols = st.columns(6)
    for col, (label, target) in zip(cols, STATUS_ACTIONS[campaign["status"]], strict=False):
        col.button(label, key=f"lc-{target}-{campaign['id']}", on_click=_set_status, args=(campaign["id"], target),
                   width="stretch")
    with st.expander("Quality checks: gold items and 'too fast'", icon=":material/verified:"):
        gold_panel(campaign)
    with st.expander("Edit guidelines and overlap"):
        with session_scope() as s:
            guidelines = campaigns.find_campaign(s, campaign["id"]).guidelines
        with st.form(f"lc-edit-{campaign['id']}"):
            text = st.text_area("Guidelines (markdown)", guidelines, height=220)
            overlap = st.number_input("Annotators per item (overlap)", 1, 100, campaign["overlap"])
            saved = False
            if st.form_submit_button("Save changes"):
                with user_errors(), session_scope(write=True) as s:
                    admin_actions.update_campaign(s, _acting(), campaign["id"], guidelines=text,
                                                  overlap=int(overlap))
                    saved = True
        if saved:  # outside the transaction, so it commits first
            st.session_state["lc-flash"] = "Campaign settings saved."
            st.rerun()
