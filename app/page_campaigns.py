"""Campaigns (admin): create a ranking campaign, follow its progress and completion job, close/reopen/archive."""

import streamlit as st

from app.auth import current_user, require_admin
from app.components.labeling_campaign_panel import campaign_panel
from app.components.labeling_create import new_campaign_form
from backend.db.engine import session_scope
from labeling import campaigns

st.title(":material/campaign: Campaigns")
user = current_user()
require_admin("manage campaigns")
if flash := st.session_state.pop("lc-flash", None):
    st.toast(flash)

show_archived = st.toggle("Show archived campaigns", key="lc-show-archived")
with session_scope() as s:
    rows = campaigns.list_campaigns(s, status=None if show_archived else ["open", "closed"])

with st.expander("New campaign", expanded=not rows, icon=":material/add:"):
    created = new_campaign_form(user["id"])
if created is not None:  # the form's transaction has committed: show the new campaign selected
    st.session_state["lc-pick"] = created
    st.rerun()

if not rows:
    st.info("No campaign yet: create one above. Annotators see open campaigns on their Labeling page.")
    st.stop()
st.dataframe([{"name": c["name"], "status": c["status"], "criterion": c["criterion"], "K": c["k"],
               "overlap": c["overlap"], "items": c["items"], "judgements": f"{c['rankings']} / {c['needed']}",
               "sources": ", ".join(c["sources"]), "created": (c["created_at"] or "").replace("T", " ")}
              for c in rows], hide_index=True, width="stretch")
by_id = {c["id"]: c for c in rows}
if st.session_state.get("lc-pick") not in by_id:
    st.session_state.pop("lc-pick", None)
picked = st.selectbox("Campaign", list(by_id), key="lc-pick",
                      format_func=lambda i: f"{by_id[i]['name']} ({by_id[i]['status']})")
campaign_panel(by_id[picked])
