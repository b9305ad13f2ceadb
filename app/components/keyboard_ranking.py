"""Keyboard-first ranking on the workbench: a key listener on the page (an ``st.components.v2`` component, no
build step) whose key presses rerun the page; ``labeling.keyboard`` says what each key does to the form."""

from collections.abc import Callable
from typing import Any

import streamlit as st

from app.components.labeling_workbench import rank_key
from labeling.keyboard import LEGEND, apply_key, next_open

# Keys typed into a text box (the comment) or with a modifier are left alone; the listener goes when the page does.
JS = """
export default function(component) {
  const { setTriggerValue } = component;
  const onKey = (event) => {
    const target = event.target;
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    if (target && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName))) return;
    if (/^[1-9]$/.test(event.key) || ["f", "F", "s", "S", "z", "Z", "Enter"].includes(event.key)) {
      event.preventDefault();
      setTriggerValue("pressed", event.key);
    }
  };
  document.addEventListener("keydown", onKey);
  return () => document.removeEventListener("keydown", onKey);
}
"""


@st.cache_resource
def _listener():
    return st.components.v2.component("loop_studio.ranking_keys", js=JS)


def history_key(item_id: int) -> str:
    return f"lb-key-history-{item_id}"


def keyboard_shortcuts(task: dict[str, Any], undo_submission: Callable[[], None]) -> str | None:
    """Mount the key listener (before the ranking form draws its widgets), apply a pressed key to the form's picks,
    show the legend; returns ``"submit"`` or ``"skip"`` when a key asks for it."""
    item_id = task["item_id"]
    order = [c["id"] for c in task["completions"]]
    letters = {c["id"]: c["letter"] for c in task["completions"]}
    result = _listener()(key="lb-keys", on_pressed_change=lambda: None)
    pressed = getattr(result, "pressed", None)
    action = None
    if isinstance(pressed, str) and pressed:
        picks = {cid: st.session_state.get(rank_key(item_id, cid)) for cid in order}
        outcome = apply_key(pressed, order, {c: p for c, p in picks.items() if p},
                            st.session_state.get(history_key(item_id), []))
        for cid in order:
            st.session_state[rank_key(item_id, cid)] = outcome.picks.get(cid)
        st.session_state[history_key(item_id)] = outcome.history
        if outcome.message:
            st.toast(outcome.message)
        if outcome.action == "undo_submission":
            undo_submission()
            st.rerun()
        action = outcome.action
    following = next_open(order, {cid: st.session_state.get(rank_key(item_id, cid)) for cid in order})
    st.caption(LEGEND.format(k=len(order)) + (f" — next: **Response {letters[following]}**" if following else ""))
    return action
