"""Who is signed in: the account lives in ``st.session_state["user"]`` as ``{"id", "name", "role"}``.

Navigation is the gate (``studio_app.py`` lists only the pages a role may open, Streamlit's pattern for
role-based access); admin actions in ``labeling/`` check the role again in the database.
"""

from typing import Any

import streamlit as st

USER_KEY = "user"


def current_user() -> dict[str, Any] | None:
    return st.session_state.get(USER_KEY)


def sign_in_as(user: dict[str, Any]) -> None:
    st.session_state[USER_KEY] = {"id": user["id"], "name": user["name"], "role": user["role"]}


def sign_out() -> None:
    st.session_state.pop(USER_KEY, None)


def is_admin() -> bool:
    user = current_user()
    return bool(user) and user["role"] == "admin"
