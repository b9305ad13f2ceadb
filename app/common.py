"""Page helpers: one-time start-up, the model and campaign lists, and user-facing errors."""

import time
from contextlib import contextmanager

import streamlit as st

from backend.db.engine import session_scope, upgrade_database
from backend.errors import StudioError
from backend.settings import get_settings


@st.cache_resource(show_spinner="Preparing the database…")
def _prepare(url: str) -> bool:
    """Migrate, and register the bootstrapped default model, so that page runs only ever read the model list."""
    from backend.models.store import ensure_default_registered

    upgrade_database(url)
    with session_scope(write=True, url=url) as s:
        ensure_default_registered(s)
    return True


def startup() -> None:
    """Prepare the database once per process; start a local worker when none is alive (checked every 15 s)."""
    settings = get_settings()
    _prepare(settings.url)
    last = st.session_state.get("_worker_checked", 0.0)
    if settings.worker_autostart and time.time() - last > 15:
        from services.workers import ensure_local_worker

        with session_scope() as s:
            ensure_local_worker(s)
        st.session_state["_worker_checked"] = time.time()


def model_names(*, reward: bool = False) -> list[str]:
    """Registered models and adapters that generate text (``reward=True``: the reward models instead), the
    configured default (``STUDIO_DEFAULT_MODEL``) first."""
    from backend.models.store import list_models

    # A read transaction: a write one would queue behind any long writer (and fail after the busy timeout).
    # The default model was registered by startup(), so listing does not write.
    with session_scope() as s:
        names = [m["name"] for m in list_models(s) if (m["kind"] == "reward") == reward]
    default = get_settings().default_model
    return sorted(names, key=lambda name: name != default)


def campaigns_or_stop() -> dict[int, dict]:
    """Every campaign by id, for a page that reads one; with none yet, say where to create one and stop."""
    from labeling.campaigns import list_campaigns

    with session_scope() as s:
        rows = {c["id"]: c for c in list_campaigns(s)}
    if not rows:
        st.info("No campaign yet: create one on the Campaigns page.")
        st.stop()
    return rows


NO_SCORE = "none"  # the "Score with" choice that scores nothing


def reward_choices(key: str) -> list[str]:
    """The options of a "Score with" selectbox (``key``): none, the packaged toxicity score and the registered
    reward models. A remembered choice whose reward model was deleted since is forgotten (the selectbox would
    fail on a value it no longer offers)."""
    from services.reward_scoring import TOXICITY

    choices = [NO_SCORE, TOXICITY, *model_names(reward=True)]
    if st.session_state.get(key, NO_SCORE) not in choices:
        del st.session_state[key]
    return choices


@contextmanager
def user_errors():
    """Show a ``StudioError`` as a message in the page instead of a traceback."""
    try:
        yield
    except StudioError as exc:
        st.error(str(exc))
