"""Shared pieces of the AppTest page tests: the ``studio`` fixture (registered in conftest.py) and helpers.

A page test does ``from page_support import button, count, open_as, page, signed_in, texts, the_admin`` and takes the
``studio`` fixture: a fresh data dir and database whose default model is the tiny random one. Each page file
runs on its own (``st.navigation`` lives in the entry script, tested in test_pages.py).
"""

from pathlib import Path

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from backend.db.engine import session_scope

APP = Path(__file__).resolve().parent.parent / "app"
TIMEOUT = 90  # first model load, the embedder and the first plotly import can take a while on a slow shared CPU


@pytest.fixture
def studio(tiny_model, monkeypatch):
    """A fresh studio whose default model is the tiny one."""
    from backend.settings import reset_settings_cache

    monkeypatch.setenv("STUDIO_DEFAULT_MODEL", "tiny")
    reset_settings_cache()
    yield tiny_model
    reset_settings_cache()


def page(name: str) -> AppTest:
    """Run a page file once, signed out."""
    return AppTest.from_file(str(APP / name), default_timeout=TIMEOUT).run()


def open_as(page_file: str, user: dict) -> AppTest:
    """Run a page file once as a signed-in user (the session state a sign-in leaves)."""
    at = AppTest.from_file(str(APP / page_file), default_timeout=TIMEOUT)
    at.session_state["user"] = user
    return at.run()


def signed_in(name: str, password: str = "correct horse") -> dict:
    """An account (the first one is the admin), as the session state holds it after signing in."""
    from labeling import accounts

    with session_scope(write=True) as s:
        return accounts.public(accounts.sign_up(s, name, password))


def the_admin() -> dict:
    """The studio's admin (signed up on first use), as the session state holds it after signing in: pages that
    queue or cancel jobs need one (the services re-check the role in the database)."""
    from backend.db.tables import User
    from labeling import accounts

    with session_scope(write=True) as s:
        user = s.scalar(select(User).where(User.role == "admin")) or accounts.sign_up(s, "admin", "correct horse")
        return accounts.public(user)


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def count(table) -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(table))


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)
