"""Optional single sign-on through Streamlit's ``st.login`` (OpenID Connect).

Off unless ``.streamlit/secrets.toml`` has an ``[auth]`` section (``redirect_uri``, ``cookie_secret`` and either a
provider's ``client_id``/``client_secret``/``server_metadata_url`` directly, or one sub-table per provider such as
``[auth.google]``). The provider signs the person in; the studio then signs in the account whose e-mail (set by an
admin on the Accounts page) is the provider's ``email``. Local accounts stay the default.
"""

from collections.abc import Mapping
from typing import Any

import streamlit as st

DEFAULT = "default"  # [auth] configures one provider directly: st.login() without a name


def providers(auth: Mapping[str, Any] | None) -> list[str]:
    """The providers an ``[auth]`` secrets section configures (``DEFAULT`` for a provider set in ``[auth]``)."""
    if not auth or not auth.get("redirect_uri") or not auth.get("cookie_secret"):
        return []
    named = [name for name, value in auth.items() if isinstance(value, Mapping) and value.get("client_id")]
    return named or ([DEFAULT] if auth.get("client_id") else [])


def configured() -> list[str]:
    from streamlit.errors import StreamlitSecretNotFoundError

    try:
        auth = st.secrets.get("auth")
    except (StreamlitSecretNotFoundError, FileNotFoundError):  # no secrets.toml at all
        return []
    return providers(auth)


def sign_on_panel() -> dict[str, Any] | None:
    """Offer "Sign in with …" per provider; after the provider's round trip, the matching studio account (public
    dict) or None. A provider user without a matching account gets a message saying what to ask the admin."""
    names = configured()
    if not names:
        return None
    from app.common import user_errors
    from backend.db.engine import session_scope
    from labeling.accounts import account_for_email

    if getattr(st.user, "is_logged_in", False):
        found = None
        with user_errors(), session_scope() as s:
            found = account_for_email(s, st.user.get("email"))
        if found is None:
            st.button("Use another sign-on account", on_click=st.logout, key="sso-logout")
        return found
    st.markdown("**Single sign-on**")
    for name in names:
        label = "Sign in with single sign-on" if name == DEFAULT else f"Sign in with {name}"
        if st.button(label, key=f"sso-{name}", icon=":material/key:"):
            if name == DEFAULT:
                st.login()
            else:
                st.login(name)
    st.divider()
    return None
