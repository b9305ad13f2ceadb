"""Labeling workbench: the signed-in annotator ranks one item at a time, most to least preferred.

Only campaigns open to the annotator and only their own judgements are shown. The current task lives in
session state, so picking ranks (inside a form) costs no query; a submit stores the ranking and fetches the
next task in one transaction (``workbench.submit_and_next``) and the next item is drawn in the same rerun.
"""

import time

import streamlit as st

from app.auth import current_user, is_admin
from app.common import user_errors
from app.components.keyboard_ranking import keyboard_shortcuts
from app.components.labeling_workbench import history_panel, prefill, ranking_form, wait_for_completions
from app.components.safe_text import safe_markdown
from backend.db.engine import session_scope
from labeling import workbench
from services import completion_jobs

# NOTE: st.rerun()/st.stop() raise; called inside session_scope they would roll the transaction back.
# Every transaction below closes before the page reruns or stops.

st.title(":material/low_priority: Labeling")
user = current_user()
if user is None:
    st.info("Sign in to start ranking.")
    st.stop()
if flash := st.session_state.pop("lb-flash", None):
    st.toast(flash)

with session_scope() as s:
    campaigns = {c["id"]: c for c in workbench.campaigns_for_annotator(s, user["id"])}
if not campaigns:
    st.info("No campaign is open for labeling right now. "
            + ("Create one on the **Campaigns** page." if is_admin() else "Your admin will open one for you."))
    st.stop()

campaign_id = st.selectbox("Campaign", list(campaigns), key="lb-campaign", format_func=lambda i: (
    f"{campaigns[i]['name']} · {campaigns[i]['criterion']} · K={campaigns[i]['k']}"))
campaign = campaigns[campaign_id]


def fetch_task(item_id: int | None = None) -> dict | None:
    with session_scope(write=True) as s:  # serving an item reserves its overlap slot (labeling.reservations)
        task = workbench.next_task(s, campaign_id, user["id"], item_id)
    return task.to_dict() if task else None


task = st.session_state.get("lb-task")
if task is None or task["campaign_id"] != campaign_id:
    task = None
    with user_errors():
        task = fetch_task()
    st.session_state["lb-task"] = task

with session_scope() as s:
    mine = workbench.my_progress(s, user["id"], campaign_id)
    guidelines = workbench.campaign_guidelines(s, campaign_id)
c1, c2, c3 = st.columns([1, 1, 3], vertical_alignment="bottom")
c1.metric("You ranked", mine["ranked"])
c2.metric("You skipped", mine["skipped"])
c3.progress(min(1.0, campaign["rankings"] / max(1, campaign["needed"])),
            text=f"Campaign: {campaign['rankings']} of {campaign['needed']} judgements "
                 f"({campaign['items']} items × {campaign['overlap']} annotators each)")
with st.expander("Guidelines", expanded=mine["ranked"] == 0, icon=":material/menu_book:"):
    st.markdown(safe_markdown(guidelines))  # no remote images or live links


def undo() -> None:
    """Take back the last submission in this campaign and show that item again, prefilled."""
    undone = task_again = None
    with user_errors(), session_scope(write=True) as s:
        last = workbench.undo_last(s, user["id"], campaign_id)
        task_again = workbench.next_task(s, campaign_id, user["id"], last["item_id"]).to_dict()
        undone = last  # only once both succeeded (else the transaction rolled back)
    if undone and task_again:
        prefill(undone)
        st.session_state["lb-task"] = task_again
        st.session_state["lb-started"] = (undone["item_id"], time.time() - undone["seconds_spent"])
        st.session_state["lb-flash"] = "Last submission undone: change it and submit again."


if task is None:
    with session_scope() as s:
        job = completion_jobs.active_job(s, campaign_id)
    if not mine["waiting_for_completions"]:
        st.success("You have judged every item of this campaign that needs you. Thank you!",
                   icon=":material/task_alt:")
    elif job is not None:
        wait_for_completions(campaign_id, user["id"], job)
    else:  # no job is making completions (cancelled, failed, or never queued): make the next item's now
        made = None
        with user_errors(), st.spinner("Generating this item's completions…"):
            made = completion_jobs.complete_next_item(campaign_id, user["id"])
        if made is not None:
            st.session_state.pop("lb-task", None)
            st.rerun()
else:
    item_id = task["item_id"]
    started_for, started = st.session_state.get("lb-started", (None, 0.0))
    if started_for != item_id:  # the clock starts when the item is first shown
        started = time.time()
        st.session_state["lb-started"] = (item_id, started)
    key_action = keyboard_shortcuts(task, undo)  # 1–K, F, Z, S, Enter: before the form draws its widgets
    action, ranks, flagged, comment = ranking_form(task)
    action = action or key_action
    if action:
        result = None
        with user_errors(), session_scope(write=True) as s:
            result = workbench.submit_and_next(s, item_id, user["id"], ranks, flagged=flagged, comment=comment,
                                             seconds_spent=time.time() - started, skipped=action == "skip")
        if result is not None:
            st.session_state["lb-task"] = result["next"].to_dict() if result["next"] else None
            st.session_state["lb-flash"] = "Ranking saved." if action == "submit" else "Item skipped."
            st.rerun()

st.button("Undo last submission", key="lb-undo", icon=":material/undo:", on_click=undo,
          disabled=mine["ranked"] + mine["skipped"] == 0 or campaign["status"] != "open",
          help="Removes your latest ranking or skip in this campaign and shows that item again, prefilled.")
with st.expander("Your recent judgements", icon=":material/history:"):
    history_panel(user["id"], campaign_id)
