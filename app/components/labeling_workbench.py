"""Pieces of the annotator workbench: the ranking form, prefilling it after an undo, and the waiting panel."""

from typing import Any

import streamlit as st

from backend.db.engine import session_scope
from labeling import workbench

FLAG = "F"


def rank_key(item_id: int, completion_id: int) -> str:
    return f"lb-rank-{item_id}-{completion_id}"


def comment_key(item_id: int) -> str:
    return f"lb-comment-{item_id}"


def prefill(undone: dict[str, Any]) -> None:
    """Put an undone judgement back into the form's widgets (set before they are drawn in the next run)."""
    item_id = undone["item_id"]
    for completion_id, rank in undone["ranks"].items():
        st.session_state[rank_key(item_id, completion_id)] = str(rank)
    for completion_id in undone["flagged"]:
        st.session_state[rank_key(item_id, completion_id)] = FLAG
    st.session_state[comment_key(item_id)] = undone["comment"]


def ranking_form(task: dict[str, Any]) -> tuple[str | None, dict[int, int], set[int], str]:
    """The prompt, the K completions in this annotator's order, a rank (or F) for each, a comment.

    A form: picking ranks does not rerun the page; only Submit or Skip does. Returns
    ``(action, ranks, flagged, comment)`` with action ``"submit"``, ``"skip"`` or None.
    """
    item_id, completions = task["item_id"], task["completions"]
    options = [str(r) for r in range(1, len(completions) + 1)] + [FLAG]
    st.markdown("**Prompt**")
    st.container(border=True).text(task["prompt"])
    st.caption(f"Rank the {len(completions)} responses for **{task['criterion']}**: 1 = best; equal ranks for a "
               f"tie (sparingly); **{FLAG}** flags a response that is nonsense, off-topic or unusable.")
    with st.form(f"lb-form-{item_id}", border=False):
        picks: dict[int, str | None] = {}
        for completion in completions:
            with st.container(border=True):
                col_text, col_rank = st.columns([3, 2], vertical_alignment="center")
                col_text.markdown(f"**Response {completion['letter']}**")
                col_text.text(completion["text"].strip() or "(empty response)")
                picks[completion["id"]] = col_rank.segmented_control(
                    f"Rank of response {completion['letter']}", options, key=rank_key(item_id, completion["id"]),
                    help="1 = best. Give two responses the same rank for a tie; F = flag as unusable.")
        comment = st.text_area("Comment (optional)", key=comment_key(item_id), height=68,
                               placeholder="Anything the admin should know about this item")
        c1, c2, _ = st.columns([1, 1, 3])
        submitted = c1.form_submit_button("Submit ranking", type="primary", width="stretch",
                                          icon=":material/check:")
        skipped = c2.form_submit_button("Skip item", width="stretch", icon=":material/skip_next:",
                                        help="Pass on an item you cannot judge; it is not shown to you again.")
    ranks = {cid: int(p) for cid, p in picks.items() if p and p != FLAG}
    flagged = {cid for cid, p in picks.items() if p == FLAG}
    return ("submit" if submitted else "skip" if skipped else None), ranks, flagged, comment


def history_panel(user_id: int, campaign_id: int) -> None:
    """The annotator's own latest judgements in this campaign (never anyone else's)."""
    with session_scope() as s:
        rows = workbench.my_history(s, user_id, campaign_id, limit=10)
    if not rows:
        st.caption("Nothing submitted yet in this campaign.")
        return
    table = [{"when": r["created_at"].replace("T", " "), "prompt": r["prompt"][:90], "judgement": r["judgement"],
              "seconds": r["seconds"], "comment": r["comment"]} for r in rows]
    st.dataframe(table, hide_index=True, width="stretch")


@st.fragment(run_every=3)
def wait_for_completions(campaign_id: int, user_id: int, job: dict[str, Any]) -> None:
    """While the background job writes completions, check every few seconds and show the item when ready."""
    st.info(f"The next items' completions are being generated in the background (job #{job['id']}, "
            f"{job['status']}, {job['progress']:.0%} done). The next item appears here as soon as it is ready.",
            icon=":material/hourglass_top:")
    with session_scope() as s:
        ready = workbench.next_item(s, campaign_id, user_id, ready_only=True) is not None
    if ready:
        st.rerun(scope="app")
