"""One job per form submission: a double-click on "Queue job" (or "Run evaluation") queues its jobs once.

Each click reruns the page; the second rerun of a double-click starts right after the first ended, with the same
spec. The form's submission token stays the same while the spec is unchanged and the previous submit ended less
than ``REPEAT_AFTER_SECONDS`` ago, so ``queue.submit`` returns the job it already queued; a changed spec, or the
same spec queued again deliberately later, gets a new token and a new job.
"""

import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import streamlit as st

from app.auth import current_user
from backend.db.engine import session_scope
from jobs import queue
from services import admin_actions

REPEAT_AFTER_SECONDS = 3.0
TOKEN_CHARS = queue.MAX_TOKEN_CHARS - 4  # room for a "-<n>" suffix when one submission queues several jobs


@contextmanager
def form_submission(form_key: str, payload: Any) -> Iterator[str]:
    """The submission token of this click of form ``form_key`` submitting ``payload`` (JSON-able or a spec)."""
    state = st.session_state.setdefault(f"{form_key}-submission", {})
    text = payload.model_dump_json() if hasattr(payload, "model_dump_json") else json.dumps(payload, default=str)
    digest = hashlib.sha256(text.encode()).hexdigest()[:24]
    if state.get("digest") != digest or time.monotonic() - state.get("ended", 0.0) > REPEAT_AFTER_SECONDS:
        state.update(token=f"{uuid.uuid4().hex}-{digest}"[:TOKEN_CHARS], digest=digest)
    try:
        yield state["token"]
    finally:
        state["ended"] = time.monotonic()


def queue_once(form_key: str, spec) -> int:
    """Queue ``spec`` from the form ``form_key`` once per submission; returns the job id."""
    user = current_user()  # the service re-checks in the database that this user is (still) an admin
    with form_submission(form_key, spec) as token, session_scope(write=True) as s:
        return admin_actions.submit_job(s, user["id"] if user else 0, spec, submission_token=token).id
