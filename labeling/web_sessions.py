"""Sign-ins that survive a reload, a new tab and a server restart, for ``session_days`` (default 7).

The browser keeps a random token in an HttpOnly cookie (set by the web server's ``/studio-session`` route,
``app/server.py``); the database keeps only its SHA-256, so a leaked database signs nobody in. A session ends when it
expires or is revoked: by signing out, by "sign out everywhere", by a password change, or by an admin. Every page run
checks the session again, so a revocation reaches every other tab on its next rerun; the role is re-read from the
users table on every run too, so a demotion takes effect at once.
"""

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.db.tables import WebSession, utcnow
from backend.settings import get_settings
from labeling.accounts import lookup


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(session: Session, user_id: int) -> str:
    """A new session for the user; returns the token (the only copy: it goes into the cookie)."""
    token = secrets.token_urlsafe(32)
    session.add(WebSession(user_id=user_id, token_hash=_hash(token),
                           expires_at=utcnow() + timedelta(days=get_settings().session_days)))
    session.flush()
    return token


def resolve(session: Session, token: str | None) -> dict[str, Any] | None:
    """The signed-in user (``accounts.lookup``: fresh role) of a live session token; None when the token is unknown,
    expired or revoked, or the account is gone."""
    if not isinstance(token, str) or not token or len(token) > 200:
        return None
    row = session.scalar(select(WebSession).where(WebSession.token_hash == _hash(token)))
    if row is None or row.revoked_at is not None or row.expires_at <= utcnow():
        return None
    return lookup(session, row.user_id)


def revoke(session: Session, token: str | None) -> None:
    """End this one session (sign-out)."""
    if token:
        session.execute(update(WebSession).where(WebSession.token_hash == _hash(token),
                                                 WebSession.revoked_at.is_(None)).values(revoked_at=utcnow()))


def revoke_all(session: Session, user_id: int) -> int:
    """End every session of the user (sign out everywhere, a password change, an admin's revocation); returns
    how many were live."""
    result = session.execute(update(WebSession).where(WebSession.user_id == user_id, WebSession.revoked_at.is_(None),
                                                      WebSession.expires_at > utcnow()).values(revoked_at=utcnow()))
    return result.rowcount or 0


def live_sessions(session: Session, user_id: int) -> int:
    return len(session.scalars(select(WebSession.id).where(
        WebSession.user_id == user_id, WebSession.revoked_at.is_(None), WebSession.expires_at > utcnow())).all())
