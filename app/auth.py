"""Who is signed in: the account lives in ``st.session_state["user"]`` as ``{"id", "name", "role"}``.

Navigation is the gate (``studio_app.py`` re-reads the role from the database each run and lists only the pages
that role may open, Streamlit's pattern for role-based access). Fragments and button callbacks run without that
script, so admin fragments call ``leave_unless_admin`` and every admin service function checks the acting user's role
in the database itself.
"""

from typing import Any

import streamlit as st

USER_KEY = "user"


TOKEN_KEY = "session-token"  # this browser session's sign-in token (labeling.web_sessions)
COOKIE_CODE_KEY = "session-cookie-code"  # set the cookie on the next run (app.session_cookie)
COOKIE_CLEAR_KEY = "session-cookie-clear"


def current_user() -> dict[str, Any] | None:
    return st.session_state.get(USER_KEY)


def sign_in_as(user: dict[str, Any]) -> None:
    st.session_state[USER_KEY] = {"id": user["id"], "name": user["name"], "role": user["role"]}


def remember_sign_in(user: dict[str, Any]) -> None:
    """Sign in and start a session that survives reloads, new tabs and restarts (its cookie is set on the next run)."""
    from app.session_cookie import issue_code
    from backend.db.engine import session_scope
    from labeling import web_sessions

    with session_scope(write=True) as s:
        token = web_sessions.start(s, user["id"])
    sign_in_as(user)
    st.session_state[TOKEN_KEY] = token
    st.session_state[COOKIE_CODE_KEY] = issue_code(token)


def restore_session() -> None:
    """Each run of the app: sign in from the session cookie (a reload, a new tab), and sign out when this browser's
    session was revoked (signed out in another tab, everywhere, by a password change or by an admin) or expired."""
    from app.session_cookie import COOKIE
    from backend.db.engine import session_scope
    from labeling import web_sessions

    cookie = st.context.cookies.get(COOKIE)
    cookie = cookie if isinstance(cookie, str) else None  # (no browser, as in AppTest: no cookies)
    token = st.session_state.get(TOKEN_KEY)
    if token is None and current_user() is None:
        token = cookie
    if not token:
        return
    with session_scope() as s:
        user = web_sessions.resolve(s, token)
    if user is None:  # revoked or expired: signed out here too
        for key in (USER_KEY, TOKEN_KEY):
            st.session_state.pop(key, None)
        if cookie:
            st.session_state[COOKIE_CLEAR_KEY] = True
        return
    sign_in_as(user)
    st.session_state[TOKEN_KEY] = token


def apply_cookie_changes() -> None:
    """Set or clear the session cookie asked for by the previous run (a sign-in, a sign-out)."""
    from app import session_cookie

    if code := st.session_state.pop(COOKIE_CODE_KEY, None):
        session_cookie.set_cookie(code)
    if st.session_state.pop(COOKIE_CLEAR_KEY, False):
        session_cookie.clear_cookie()


def sign_out(everywhere: bool = False) -> None:
    """Sign this browser out (its session revoked), or every browser of this account with ``everywhere``."""
    token = st.session_state.pop(TOKEN_KEY, None)
    user = st.session_state.pop(USER_KEY, None)
    if token or (everywhere and user):
        from backend.db.engine import session_scope
        from labeling import web_sessions

        with session_scope(write=True) as s:
            if everywhere and user:
                web_sessions.revoke_all(s, user["id"])
            else:
                web_sessions.revoke(s, token)
        st.session_state[COOKIE_CLEAR_KEY] = True


def sign_out_everywhere() -> None:
    sign_out(everywhere=True)


def is_admin() -> bool:
    user = current_user()
    return bool(user) and user["role"] == "admin"


def require_admin(to_do: str) -> None:
    """First lines of an admin page: say who may ``to_do`` what the page does, and stop for anyone else."""
    if not is_admin():
        st.error(f"Only an admin can {to_do}.")
        st.stop()


def exposed() -> bool:
    """Whether this server listens beyond loopback (``server.address`` empty = every interface)."""
    from backend.settings import is_loopback

    return not is_loopback(st.get_option("server.address"))


@st.cache_resource
def announce_setup_token() -> str:
    """Print the one-time setup token in the server's terminal, once per process (as Jupyter does)."""
    from labeling.accounts import setup_token

    token = setup_token()
    print(f"\nLoop Studio has no admin yet. Create the first one on the sign-in page with this setup token:\n\n"
          f"    {token}\n\n(or stop the studio and run `studio users create-admin NAME`).\n", flush=True)
    return token


def still_admin() -> bool:
    """Re-read the signed-in user's role from the database (for fragments and button callbacks, which run without
    the entry script's check): on a demotion or a removed account, sign the session out of admin and rerun the
    whole app, whose navigation then leaves the admin pages out."""
    from backend.db.engine import session_scope
    from labeling.accounts import lookup

    user = current_user()
    if user is not None:
        with session_scope() as s:
            fresh = lookup(s, user["id"])
        if fresh is not None and fresh["role"] == "admin":
            return True
        if fresh is None:
            sign_out()
        else:
            sign_in_as(fresh)
    return False


def leave_unless_admin() -> None:
    """First line of an admin fragment: when the user is no longer an admin, rerun the whole app (its navigation
    then leaves the admin pages out) — or, in a full run, stop here (the page was opened without navigation).

    Nobody signed in: nothing to re-check (navigation shows signed-out visitors the sign-in page only, and signing
    out reruns the whole app); page files run on their own in tests get here that way."""
    if current_user() is None or still_admin():
        return
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    if ctx is not None and ctx.fragment_ids_this_run:
        st.rerun()
    st.stop()
