"""Sign in, or create an account (the first account of a studio is its admin; later ones annotate).

On an exposed studio (listening beyond loopback) the first admin needs the setup token printed in the server's
terminal, and later sign-ups need an admin to have turned self sign-up on (Accounts page).
"""

import streamlit as st

from app.auth import announce_setup_token, exposed, remember_sign_in
from app.common import user_errors
from app.sso import sign_on_panel
from backend.db.engine import session_scope
from labeling import accounts

st.title(":material/login: Sign in to Loop Studio")
open_to_net = exposed()
with session_scope() as s:
    first = not accounts.any_admin(s)
need_token = first and open_to_net
if need_token:
    announce_setup_token()
    st.info("No account exists yet. Create the first one, the studio's **admin**, with the **setup token** printed "
            "in the terminal that started the studio (or run `studio users create-admin NAME` there).")
elif first:
    st.info("No account exists yet. Create the first one: it is the studio's **admin** (playground, "
            "campaigns, training). Accounts created later are annotators until an admin promotes them.")
can_sign_up = first or accounts.self_signup_open(exposed=open_to_net)

signed = sign_on_panel()  # single sign-on (st.login) when secrets.toml configures a provider
tab_in, tab_up = st.tabs(["Sign in", "Create account"])
with tab_in, st.form("sign-in"):
    name = st.text_input("User name", key="si-name")
    password = st.text_input("Password", type="password", key="si-password")
    if st.form_submit_button("Sign in", type="primary"):
        with user_errors():  # throttled after 5 wrong passwords for one name in 15 minutes
            signed = accounts.sign_in(name, password)
with tab_up:
    if not can_sign_up:
        st.info("Self sign-up is off on this studio: ask an admin for an account.")
    else:
        with st.form("sign-up"):
            new_name = st.text_input("User name", key="su-name", max_chars=accounts.MAX_NAME,
                                     help=f"Use {accounts.NAME_RULE}.")
            new_password = st.text_input("Password", type="password", key="su-password",
                                         help=f"At least {accounts.MIN_PASSWORD} characters.")
            repeat = st.text_input("Repeat password", type="password", key="su-repeat")
            token = st.text_input("Setup token", type="password", key="su-token",
                                  help="Printed in the terminal that started the studio.") if need_token else None
            if st.form_submit_button("Create account and sign in", type="primary"):
                if new_password != repeat:
                    st.error("The two passwords differ: type the same password twice.")
                else:
                    with user_errors(), session_scope(write=True) as s:
                        signed = accounts.public(accounts.sign_up(s, new_name, new_password, exposed=open_to_net,
                                                                  token=token))

if signed:  # st.rerun() outside the transactions above, so they commit first
    remember_sign_in(signed)  # a session that survives reloads, new tabs and restarts (an HttpOnly cookie)
    st.rerun()
