"""The web server: Streamlit's app (``studio_app.py``) plus the sign-in cookie's two routes (``app/session_cookie``).

``streamlit run app/server.py`` (what ``studio run`` does) finds ``app`` and serves it: everything Streamlit serves,
and ``POST /studio-session`` (a one-time code in the body → the HttpOnly session cookie) and
``POST /studio-session/clear`` (→ the cookie removed).
"""

import streamlit as st
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.session_cookie import COOKIE, take
from backend.settings import get_settings


def _https(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto", "").lower() == "https"


async def set_session(request: Request) -> Response:
    token = take((await request.body()).decode("utf-8", "replace")[:100])
    if token is None:
        return Response("unknown or expired code", status_code=400)
    response = Response(status_code=204)
    response.set_cookie(COOKIE, token, max_age=int(get_settings().session_days * 86400), path="/", httponly=True,
                        samesite="lax", secure=_https(request))
    return response


async def clear_session(request: Request) -> Response:
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax", secure=_https(request))
    return response


app = st.App("studio_app.py", routes=[Route("/studio-session", set_session, methods=["POST"]),
                                      Route("/studio-session/clear", clear_session, methods=["POST"])])
