"""A campaign's quality checks (admin): gold rate, "too fast" time, and which items are gold with their known best."""

from typing import Any

import streamlit as st

from app.auth import current_user
from app.common import user_errors
from backend.db.engine import session_scope
from labeling import campaigns, gold
from services import admin_actions


def _acting() -> int:
    user = current_user()
    return user["id"] if user else 0


def _short(text: str, n: int = 90) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[: n - 1] + "…"


def gold_panel(campaign: dict[str, Any]) -> None:
    cid = campaign["id"]
    with session_scope() as s:
        row = campaigns.find_campaign(s, cid)
        rate, too_fast = row.gold_rate, row.too_fast_seconds
        choices = gold.item_choices(s, cid)
    with st.form(f"lc-checks-{cid}"):
        cols = st.columns(2)
        new_rate = cols[0].number_input(
            "Gold items per 100 served", 0, int(gold.MAX_GOLD_RATE * 100), round(rate * 100),
            help="Gold items (below) are mixed into each annotator's queue at this rate, whatever the overlap, and "
                 "look like any item. 0 = gold items are ordinary items.")
        new_fast = cols[1].number_input(
            "Too fast under (seconds per completion)", 0.0, gold.MAX_TOO_FAST, float(too_fast), step=0.5,
            help="A judgement quicker than this times the item's completions is flagged 'too fast' on the "
                 "Agreement page. 0 = no check.")
        if st.form_submit_button("Save checks"):
            with user_errors(), session_scope(write=True) as s:
                admin_actions.set_quality_checks(s, _acting(), cid, gold_rate=new_rate / 100,
                                                 too_fast_seconds=float(new_fast))
                st.success("Checks saved.")
    if not choices:
        st.caption("Gold items need completions: generate them first.")
        return
    by_id = {c["item_id"]: c for c in choices}
    marked = [c for c in choices if c["gold_completion_id"]]
    st.caption(f"{len(marked)} gold item(s).")
    item_id = st.selectbox("Item", list(by_id), key=f"lc-gold-item-{cid}",
                           format_func=lambda i: f"#{i}{' ★ gold' if by_id[i]['gold_completion_id'] else ''} · "
                                                 f"{_short(by_id[i]['prompt'], 70)}")
    item = by_id[item_id]
    options = [c["id"] for c in item["completions"]]
    texts = {c["id"]: f"{_short(c['text'])} ({c['source'] or 'unknown source'})" for c in item["completions"]}
    current = options.index(item["gold_completion_id"]) if item["gold_completion_id"] in options else 0
    best = st.radio("Known best completion", options, current, key=f"lc-gold-best-{cid}-{item_id}",
                    format_func=texts.get)
    cols = st.columns(2)
    if cols[0].button("Mark as gold", key=f"lc-gold-mark-{cid}", icon=":material/star:"):
        with user_errors(), session_scope(write=True) as s:
            admin_actions.mark_gold(s, _acting(), item_id, best)
            st.session_state["lc-flash"] = f"Item #{item_id} is gold."
        st.rerun()
    if item["gold_completion_id"] and cols[1].button("Make ordinary", key=f"lc-gold-unmark-{cid}"):
        with user_errors(), session_scope(write=True) as s:
            admin_actions.mark_gold(s, _acting(), item_id, None)
            st.session_state["lc-flash"] = f"Item #{item_id} is an ordinary item again."
        st.rerun()
