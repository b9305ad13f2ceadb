"""The sign-in cookie's mechanics: a signed-in page cannot set an HttpOnly cookie itself (Streamlit talks over a
websocket), so it hands the browser a one-time code and the browser trades it at the web server's
``/studio-session`` route (``app/server.py``) for ``Set-Cookie: studio_session=<token>; HttpOnly; SameSite=Lax``
(``Secure`` over HTTPS). The code lives a minute in this process's memory; the token itself never reaches a page
script. ``st.context.cookies`` reads the cookie back on every new browser session (a reload, a new tab).
"""

import secrets
import threading
import time

import streamlit.components.v1 as components

COOKIE = "studio_session"
CODE_SECONDS = 60
_pending: dict[str, tuple[str, float]] = {}
_lock = threading.Lock()


def issue_code(token: str) -> str:
    """A one-time code the browser trades for the cookie holding ``token``."""
    code = secrets.token_urlsafe(24)
    now = time.monotonic()
    with _lock:
        for stale in [c for c, (_, at) in _pending.items() if now - at > CODE_SECONDS]:
            del _pending[stale]
        _pending[code] = (token, now)
    return code


def take(code: str) -> str | None:
    """The token of a fresh code, once (None when unknown or older than a minute)."""
    with _lock:
        token, at = _pending.pop(code, (None, 0.0))
    return token if token and time.monotonic() - at <= CODE_SECONDS else None


def _post(path: str, body: str = "") -> None:
    # a same-origin fetch from the component's frame: the response's Set-Cookie lands in the browser's jar
    components.html(f"""<script>
const origin = (() => {{ try {{ return window.parent.location.origin; }} catch (e) {{ return ""; }} }})();
fetch(origin + "{path}", {{method: "POST", body: "{body}", credentials: "same-origin"}});
</script>""", height=0)


def set_cookie(code: str) -> None:
    _post("/studio-session", code)


def clear_cookie() -> None:
    _post("/studio-session/clear")
