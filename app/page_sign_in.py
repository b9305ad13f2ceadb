"""Sign in, or create an account (the first account of a studio is its admin; later ones annotate)."""

import streamlit as st

from app.auth import sign_in_as
from app.common import user_errors
from backend.db.engine import session_scope
from labeling import accounts

st.title(":material/login: Sign in to Loop Studio")
with session_scope() as s:
    first = not accounts.any_admin(s)
if first:
    st.info("No account exists yet. Create the first one: it is the studio's **admin** (playground, "
            "campaigns, training). Accounts created later are annotators until an admin promotes them.")

signed = None
tab_in, tab_up = st.tabs(["Sign in", "Create account"])
with tab_in, st.form("sign-in"):
    name = st.text_input("User name", key="si-name")
    password = st.text_input("Password", type="password", key="si-password")
    if st.form_submit_button("Sign in", type="primary"):
        with user_errors(), session_scope() as s:
            signed = accounts.public(accounts.authenticate(s, name, password))
with tab_up, st.form("sign-up"):
    new_name = st.text_input("User name", key="su-name")
    new_password = st.text_input("Password", type="password", key="su-password",
                                 help=f"At least {accounts.MIN_PASSWORD} characters.")
    repeat = st.text_input("Repeat password", type="password", key="su-repeat")
    if st.form_submit_button("Create account and sign in", type="primary"):
        if new_password != repeat:
            st.error("The two passwords differ: type the same password twice.")
        else:
            with user_errors(), session_scope(write=True) as s:
                signed = accounts.public(accounts.sign_up(s, new_name, new_password))

if signed:  # st.rerun() outside the transactions above, so they commit first
    sign_in_as(signed)
    st.rerun()
