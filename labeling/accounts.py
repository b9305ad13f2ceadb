"""Annotator accounts: sign-up, sign-in and roles (admin / annotator).

Passwords are stored as ``pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>`` (``hashlib.pbkdf2_hmac``, a
16-byte random salt per user) and compared in constant time. The iteration count travels with each hash,
so raising ``ITERATIONS`` later keeps old passwords working.

Roles: whoever signs up while no admin exists becomes admin (normally the first user); everyone else is an
annotator until an admin promotes them. Annotators see only the labeling pages and their own work; pages
gate admin views with ``require_admin``, and every admin service function calls it with the acting user.

Exposure: when the studio listens beyond loopback (``exposed=True``), the first admin can sign up only with the
one-time setup token the server prints in its terminal (``setup_token``) — or be made with
``studio users create-admin`` — and self sign-up is off unless an admin turns it on (``set_self_signup``; the
choice is kept in ``<data dir>/access.json``). On loopback both stay open: only this machine can reach the page.

Throttling: after ``MAX_FAILURES`` wrong sign-ins for one name within ``FAILURE_WINDOW`` (stored in the database, so
it holds across restarts and server processes), ``sign_in`` refuses further attempts for that name until the oldest
leaves the window, with the same message for names that have no account (no account enumeration).

User names are letters, digits, spaces and ``. _ - @ '`` (``NAME_RULE``): they are shown on many pages, so no
markdown, HTML or link syntax.
"""

import hashlib
import hmac
import json
import math
import os
import re
import secrets
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from backend.db.lookup import get_or_raise
from backend.db.tables import SignInFailure, User, WebSession, utcnow
from backend.errors import StudioError
from backend.settings import get_settings

ITERATIONS = 310_000  # OWASP's 2021 figure for PBKDF2-HMAC-SHA256: ~0.1-0.3 s per sign-in on a laptop
MIN_PASSWORD = 8
ROLES = ("admin", "annotator")
_BAD_LOGIN = "Wrong name or password."
MAX_NAME = 80
_NAME_RE = re.compile(r"[^\W_][\w .@'-]*")  # \w: letters and digits of any script, and _
NAME_RULE = "letters, digits, spaces and . _ - @ ' (starting with a letter or digit)"
_CLOSED = "Self sign-up is off on this studio: ask an admin for an account."
MAX_FAILURES = 5  # wrong sign-ins per name within FAILURE_WINDOW before further attempts wait
FAILURE_WINDOW = timedelta(minutes=15)


def hash_password(password: str, *, iterations: int | None = None, salt: bytes | None = None) -> str:
    iterations = iterations or ITERATIONS
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str | None) -> bool:
    """True when ``password`` matches the stored hash (constant-time compare; False for no/odd hash)."""
    try:
        scheme, iterations, salt, digest = (stored or "").split("$")
        if scheme != "pbkdf2_sha256":
            return False
        candidate = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), bytes.fromhex(salt), int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(candidate.hex(), digest)


@lru_cache(maxsize=4)
def _dummy_hash(iterations: int) -> str:
    return hash_password("not a password", iterations=iterations, salt=b"\0" * 16)


def name_problem(name: str) -> str | None:
    """Why ``name`` (already stripped) cannot be a user name, or None when it can."""
    if not name:
        return "Enter a user name."
    if len(name) > MAX_NAME:
        return f"User names are at most {MAX_NAME} characters."
    if not _NAME_RE.fullmatch(name):
        return f"A user name may hold only {NAME_RULE}."
    return None


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if problem := name_problem(name):
        raise StudioError(problem)
    return name


def _check_password(password: str) -> None:
    if len(password or "") < MIN_PASSWORD:
        raise StudioError(f"Choose a password of at least {MIN_PASSWORD} characters.")


def public(user: User) -> dict[str, Any]:
    """What pages may show about a user (never the hash)."""
    return {"id": user.id, "name": user.name, "role": user.role, "can_sign_in": user.password_hash is not None,
            "email": user.email,
            "created_at": user.created_at.isoformat(timespec="seconds") if user.created_at else None}


def any_admin(session: Session) -> bool:
    return session.scalar(select(func.count(User.id)).where(User.role == "admin")) > 0


_setup_token: str | None = None


def setup_token() -> str:
    """This process's one-time token for creating the first admin of an exposed studio (made on first call).

    The server prints it in its terminal, as Jupyter does; it stops working once an admin exists."""
    global _setup_token
    if _setup_token is None:  # `studio run` makes it, prints it and hands it to the server in the environment
        _setup_token = os.environ.get("STUDIO_SETUP_TOKEN") or secrets.token_urlsafe(24)
    return _setup_token


def _access_file():
    return get_settings().resolved_data_dir / "access.json"


def self_signup_open(*, exposed: bool) -> bool:
    """Whether people may create their own (annotator) accounts: an admin's choice, else open on loopback only."""
    try:
        choice = json.loads(_access_file().read_text(encoding="utf-8")).get("self_signup")
    except (OSError, ValueError, AttributeError):
        choice = None
    return choice if isinstance(choice, bool) else not exposed


def set_self_signup(session: Session, admin_id: int, allowed: bool) -> None:
    """An admin turns self sign-up on or off (kept in ``<data dir>/access.json``, written atomically)."""
    require_admin(session, admin_id)
    path = _access_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"self_signup": bool(allowed)}), encoding="utf-8")
    os.replace(tmp, path)


def sign_up(session: Session, name: str, password: str, *, exposed: bool = False, token: str | None = None) -> User:
    """Create an account; it is admin when no admin exists yet, else annotator.

    ``exposed``: the studio listens beyond loopback. Then the first admin needs this process's ``setup_token``
    and later accounts need self sign-up turned on by an admin.

    Raises:
        StudioError: empty/long/odd name, short password, the name is taken, a missing or wrong setup token,
            or self sign-up is off.
    """
    first = not any_admin(session)
    if first and exposed and not hmac.compare_digest((token or "").strip().encode(), setup_token().encode()):
        raise StudioError("Enter the setup token printed in the terminal that started the studio (or create the "
                          "first admin with `studio users create-admin`).")
    if not first and not self_signup_open(exposed=exposed):
        raise StudioError(_CLOSED)
    name = _clean_name(name)
    _check_password(password)
    if session.scalar(select(User.id).where(User.name == name)) is not None:
        raise StudioError(f"The name '{name}' is taken: choose another, or sign in.")
    user = User(name=name, role="admin" if first else "annotator", password_hash=hash_password(password))
    session.add(user)
    session.flush()
    return user


def create_admin(session: Session, name: str, password: str) -> User:
    """An admin account made from the command line (``studio users create-admin``): whoever runs it can write the
    database already. A name-only user (an imported annotator) of that name gets the password and the role."""
    name = _clean_name(name)
    _check_password(password)
    user = session.scalar(select(User).where(User.name == name))
    if user is not None and user.password_hash is not None:
        raise StudioError(f"The name '{name}' is taken: choose another (or promote that account in the studio).")
    if user is None:
        user = User(name=name)
        session.add(user)
    user.role, user.password_hash = "admin", hash_password(password)
    session.flush()
    return user


def _throttle_key(name: str) -> str:
    return (name or "").strip().lower()[:200]


def throttle_wait(session: Session, name: str, *, now: datetime | None = None) -> float:
    """Seconds until ``name`` may try again: 0 unless ``MAX_FAILURES`` wrong sign-ins for it (known or not) fell
    within the last ``FAILURE_WINDOW``; then until the oldest of them leaves the window."""
    now = now or utcnow()
    recent = list(session.scalars(
        select(SignInFailure.at).where(SignInFailure.name == _throttle_key(name),
                                       SignInFailure.at > now - FAILURE_WINDOW)
        .order_by(SignInFailure.at.desc()).limit(MAX_FAILURES)))
    if len(recent) < MAX_FAILURES:
        return 0.0
    return max(0.0, (recent[-1] + FAILURE_WINDOW - now).total_seconds())


def throttled_message(seconds: float) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return (f"Too many failed sign-ins for this name: wait {minutes} minute{'s' if minutes > 1 else ''} and try "
            "again, or ask an admin to reset the password.")


def sign_in(name: str, password: str) -> dict[str, Any]:
    """Check a sign-in in its own short transactions and return ``public(user)``: a wrong password (or unknown
    name) is recorded, and after ``MAX_FAILURES`` of them for one name within ``FAILURE_WINDOW`` further attempts
    are refused without checking the password, with the same message whether the account exists or not. A
    successful sign-in clears the name's failures.

    Raises:
        StudioError: wrong name or password, or throttled (how long to wait).
    """
    from backend.db.engine import session_scope

    key = _throttle_key(name)
    with session_scope() as s:
        if wait := throttle_wait(s, key):
            raise StudioError(throttled_message(wait))
        try:
            user = public(authenticate(s, name, password))
        except StudioError:
            user = None
    with session_scope(write=True) as s:  # its own commit: the failure counts even though the sign-in raises
        now = utcnow()
        s.execute(delete(SignInFailure).where(SignInFailure.at <= now - FAILURE_WINDOW))  # keep the table small
        if user is not None:
            s.execute(delete(SignInFailure).where(SignInFailure.name == key))
            return user
        s.add(SignInFailure(name=key, at=now))
    raise StudioError(_BAD_LOGIN)


def authenticate(session: Session, name: str, password: str) -> User:
    """The user with this name and password (no throttling: the sign-in page calls ``sign_in``).

    Raises:
        StudioError: the same message for an unknown name and a wrong password.
    """
    user = session.scalar(select(User).where(User.name == (name or "").strip()))
    if user is None or user.password_hash is None:
        verify_password(password or "", _dummy_hash(ITERATIONS))  # same work as a real check: no timing leak
        raise StudioError(_BAD_LOGIN)
    if not verify_password(password or "", user.password_hash):
        raise StudioError(_BAD_LOGIN)
    return user


def get_user(session: Session, user_id: int) -> User:
    return get_or_raise(session, User, user_id, message="This account no longer exists: sign in again.")


def lookup(session: Session, user_id: int) -> dict[str, Any] | None:
    """The public view of a user, or None when the account is gone (pages re-check who is signed in)."""
    user = session.get(User, user_id)
    return public(user) if user is not None else None


def is_admin(session: Session, user_id: int) -> bool:
    user = session.get(User, user_id)
    return user is not None and user.role == "admin"


def require_admin(session: Session, user_id: int) -> User:
    """The user, if an admin; raises StudioError otherwise (gate every admin view with it)."""
    user = get_user(session, user_id)
    if user.role != "admin":
        raise StudioError("Only an admin can do this.")
    return user


def create_user(session: Session, admin_id: int, name: str, password: str, role: str = "annotator") -> User:
    """An admin creates an account for someone else."""
    require_admin(session, admin_id)
    if role not in ROLES:
        raise StudioError(f"Role must be one of {', '.join(ROLES)}.")
    name = _clean_name(name)
    _check_password(password)
    user = session.scalar(select(User).where(User.name == name))
    if user is not None and user.password_hash is not None:
        raise StudioError(f"The name '{name}' is taken.")
    if user is None:  # a name-only user (e.g. an imported annotator) gets a password instead
        user = User(name=name)
        session.add(user)
    user.role, user.password_hash = role, hash_password(password)
    session.flush()
    return user


def set_role(session: Session, admin_id: int, user_id: int, role: str) -> User:
    require_admin(session, admin_id)
    if role not in ROLES:
        raise StudioError(f"Role must be one of {', '.join(ROLES)}.")
    user = get_user(session, user_id)
    if user.role == "admin" and role != "admin":
        admins = session.scalar(select(func.count(User.id)).where(User.role == "admin"))
        if admins <= 1:
            raise StudioError("This is the last admin: promote someone else first.")
    user.role = role
    session.flush()
    return user


def set_password(session: Session, admin_id: int, user_id: int, password: str) -> User:
    """An admin sets (or resets) someone's password."""
    require_admin(session, admin_id)
    _check_password(password)
    user = get_user(session, user_id)
    user.password_hash = hash_password(password)
    # a new password ends every sign-in made with the old one (web_sessions imports this module: no cycle at load)
    session.execute(update(WebSession).where(WebSession.user_id == user.id, WebSession.revoked_at.is_(None))
                    .values(revoked_at=utcnow()))
    session.flush()
    return user


_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def set_email(session: Session, admin_id: int, user_id: int, email: str | None) -> User:
    """An admin sets (or clears, with an empty value) the e-mail that single sign-on matches to this account."""
    require_admin(session, admin_id)
    user = get_user(session, user_id)
    email = (email or "").strip().lower() or None
    if email is not None:
        if len(email) > 254 or not _EMAIL_RE.fullmatch(email):
            raise StudioError(f"'{email[:80]}' is not an e-mail address (name@example.org).")
        owner = session.scalar(select(User).where(User.email == email, User.id != user.id))
        if owner is not None:
            raise StudioError(f"The e-mail {email} already belongs to the account '{owner.name}'.")
    user.email = email
    session.flush()
    return user


def account_for_email(session: Session, email: str | None) -> dict[str, Any]:
    """The account single sign-on signs in: the one whose e-mail is the provider's verified ``email``.

    Raises:
        StudioError: no e-mail from the provider, or no account with it (an admin sets it on the Accounts page).
    """
    email = (email or "").strip().lower()
    if not email:
        raise StudioError("The sign-on provider gave no e-mail address: ask your admin to add the 'email' scope.")
    user = session.scalar(select(User).where(User.email == email))
    if user is None:
        raise StudioError(f"No studio account has the e-mail {email}: ask an admin to add it to your account "
                          "(Accounts page), then sign in again.")
    return public(user)


def list_users(session: Session, admin_id: int) -> list[dict[str, Any]]:
    require_admin(session, admin_id)
    return [public(u) for u in session.scalars(select(User).order_by(User.id))]


def all_users(session: Session) -> list[User]:
    """Every account, oldest first (for the command line, which runs with the database's own rights)."""
    return list(session.scalars(select(User).order_by(User.id)))
