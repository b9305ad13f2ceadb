"""Labeling: rank K completions of a prompt, most to least preferred, and save the ranking."""

import random
import time

import streamlit as st

from app.auth import current_user
from app.common import user_errors
from backend.db.engine import session_scope
from labeling import service

# NOTE: st.rerun()/st.stop() raise; called inside session_scope they would roll the transaction back.
# Every transaction below closes before the page reruns or stops.

st.title(":material/low_priority: Labeling")
if flash := st.session_state.pop("lb-flash", None):
    st.toast(flash)

with session_scope() as s:
    campaigns = service.list_campaigns(s)

annotator = (current_user() or {}).get("name", "")

if not campaigns:
    st.info("No campaign yet. Create the demo campaign: 3 completions per prompt from the embedded model.")
    if st.button("Create demo campaign", type="primary", key="lb-create-demo"):
        with user_errors(), session_scope(write=True) as s:
            service.create_demo_campaign(s)
        st.rerun()
    st.stop()

by_name = {c["name"]: c for c in campaigns}
name = st.selectbox("Campaign", list(by_name), key="lb-campaign")
campaign = by_name[name]
st.progress(min(1.0, campaign["rankings"] / max(1, campaign["needed"])),
            text=f"{campaign['rankings']} of {campaign['needed']} judgements · criterion: {campaign['criterion']}")
if not annotator:
    st.info("Sign in to start ranking.")
    st.stop()

with session_scope(write=True) as s:
    user = service.get_or_create_user(s, annotator)
    item = service.next_item(s, campaign["id"], user.id)
    prompt = service.item_prompt(s, item) if item else ""
    guidelines = service.campaign_guidelines(s, campaign["id"])
if item is None:
    st.success("You have judged every item of this campaign that needs you. Thank you!")
    st.stop()
with st.expander("Guidelines", expanded=False):
    st.markdown(guidelines)

st.markdown("**Prompt**")
st.info(prompt)
completions = []
with user_errors(), st.spinner("Generating completions…"), session_scope(write=True) as s:
    completions = [(c.id, c.text) for c in service.ensure_completions(s, item.id)]
if not completions:
    st.stop()
# Shuffle per annotator and item so position and model identity do not bias the ranking.
random.Random(f"{user.id}-{item.id}").shuffle(completions)
started = st.session_state.setdefault(f"lb-started-{item.id}", time.time())

with st.form(f"rank-{item.id}"):
    choices = ["—"] + [str(r) for r in range(1, len(completions) + 1)] + ["F (flag)"]
    picks = {}
    for letter, (cid, text) in zip("ABCDEFGHI", completions, strict=False):
        col_text, col_rank = st.container(border=True).columns([5, 1], vertical_alignment="center")
        col_text.markdown(f"**{letter}.** {text.strip() or '*(empty)*'}")
        picks[cid] = col_rank.selectbox(f"Rank {letter}", choices, key=f"rank-{item.id}-{cid}")
    comment = st.text_input("Comment (optional)", key=f"comment-{item.id}")
    b1, b2, _ = st.columns([1, 1, 3])
    submitted = b1.form_submit_button("Submit ranking", type="primary", width="stretch")
    skipped = b2.form_submit_button("Skip this item", width="stretch")

if submitted or skipped:
    ranks = {cid: int(p) for cid, p in picks.items() if p.isdigit()}
    flagged = {cid for cid, p in picks.items() if p.startswith("F")}
    saved = False
    with user_errors(), session_scope(write=True) as s:
        service.submit_ranking(s, item.id, user.id, ranks, flagged=flagged, comment=comment,
                               seconds_spent=time.time() - started, skipped=bool(skipped))
        saved = True
    if saved:
        st.session_state["lb-flash"] = "Ranking saved." if submitted else "Item skipped."
        st.rerun()
