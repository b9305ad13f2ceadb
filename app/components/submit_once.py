"""One job per form submission: a double-click on "Queue job" queues one job, not two.

Each click reruns the page; the second rerun of a double-click starts right after the first ended, with the same
spec. The form's submission token stays the same while the spec is unchanged and the previous submit ended less
than ``REPEAT_AFTER_SECONDS`` ago, so ``queue.submit`` returns the job it already queued; a changed spec, or the
same spec queued again deliberately later, gets a new token and a new job.
"""

import hashlib
import time
import uuid

import streamlit as st

from backend.db.engine import session_scope
from jobs import queue

REPEAT_AFTER_SECONDS = 3.0


def queue_once(form_key: str, spec) -> int:
    """Queue ``spec`` from the form ``form_key`` once per submission; returns the job id."""
    state = st.session_state.setdefault(f"{form_key}-submission", {})
    digest = hashlib.sha256(spec.model_dump_json().encode()).hexdigest()[:24]
    if state.get("digest") != digest or time.monotonic() - state.get("ended", 0.0) > REPEAT_AFTER_SECONDS:
        state.update(token=f"{uuid.uuid4().hex}-{digest}"[:queue.MAX_TOKEN_CHARS], digest=digest)
    try:
        with session_scope(write=True) as s:
            return queue.submit(s, spec, submission_token=state["token"]).id
    finally:
        state["ended"] = time.monotonic()
