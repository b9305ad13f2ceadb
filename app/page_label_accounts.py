"""Accounts (admin): create annotator accounts, promote or demote, reset a password, allow self sign-up."""

import streamlit as st

from app.auth import current_user, exposed, require_admin
from app.common import user_errors
from backend.db.engine import session_scope
from labeling import accounts
from services import admin_actions

st.title(":material/group: Accounts")
require_admin("manage accounts")
admin = current_user()
if flash := st.session_state.pop("la-flash", None):
    st.toast(flash)

with session_scope() as s:
    users = {u["id"]: u for u in accounts.list_users(s, admin["id"])}
st.dataframe([{"name": u["name"], "role": u["role"], "can sign in": u["can_sign_in"],
               "created": (u["created_at"] or "").replace("T", " ")} for u in users.values()],
             hide_index=True, width="stretch")
st.caption("Annotators see only the Labeling page and their own work; admins see every page. Imported annotators "
           "cannot sign in until they get a password.")

done = None
signup_open = accounts.self_signup_open(exposed=exposed())
allow = st.toggle("Self sign-up", value=signup_open, key="la-signup",
                  help="On: anyone who can open the studio may create an annotator account on the sign-in page. "
                       "Off: only admins create accounts. Default: on when the studio listens on this machine only "
                       "(loopback), off when it is exposed to the network.")
if allow != signup_open:
    with user_errors(), session_scope() as s:
        accounts.set_self_signup(s, admin["id"], allow)
        done = "Self sign-up is now " + ("on." if allow else "off.")
left, right = st.columns(2)
with left.form("la-create", clear_on_submit=True):
    st.markdown("**New account**")
    name = st.text_input("User name", key="la-name")
    password = st.text_input("Password", type="password", key="la-password",
                             help=f"At least {accounts.MIN_PASSWORD} characters; tell the person, who can sign in "
                                  "with it at once.")
    role = st.selectbox("Role", accounts.ROLES, index=list(accounts.ROLES).index("annotator"), key="la-role")
    if st.form_submit_button("Create account", type="primary"):
        with user_errors(), session_scope(write=True) as s:
            created = accounts.create_user(s, admin["id"], name, password, role)
            done = f"Account '{created.name}' created ({created.role})."

with right.container(border=True):
    st.markdown("**Change an account**")
    user_id = st.selectbox("Account", list(users), key="la-pick",
                           format_func=lambda i: f"{users[i]['name']} ({users[i]['role']})")
    picked = users[user_id]
    other = "annotator" if picked["role"] == "admin" else "admin"
    if st.button("Promote to admin" if other == "admin" else "Demote to annotator", key="la-role-change"):
        with user_errors(), session_scope(write=True) as s:
            accounts.set_role(s, admin["id"], user_id, other)
            done = f"{picked['name']} is now {other}."
    new_password = st.text_input("New password", type="password", key="la-new-password")
    if st.button("Reset password", key="la-reset"):
        with user_errors(), session_scope(write=True) as s:
            accounts.set_password(s, admin["id"], user_id, new_password)
            done = f"Password of {picked['name']} reset (their sign-ins ended)."
    email = st.text_input("E-mail for single sign-on", picked.get("email") or "", key=f"la-email-{user_id}",
                          help="Single sign-on (st.login, when secrets.toml configures a provider) signs in the "
                               "account with the provider's e-mail. Empty = none.")
    if st.button("Save e-mail", key="la-email-save"):
        with user_errors(), session_scope(write=True) as s:
            accounts.set_email(s, admin["id"], user_id, email)
            done = f"E-mail of {picked['name']} saved."
    if st.button("End all their sign-ins", key="la-revoke", icon=":material/devices:",
                 help="Signs this account out in every browser and tab at their next click."):
        with user_errors(), session_scope(write=True) as s:
            ended = admin_actions.revoke_sessions(s, admin["id"], user_id)
            done = f"{ended} sign-in(s) of {picked['name']} ended."

if done:  # st.rerun() outside the transactions above, so they commit first
    st.session_state["la-flash"] = done
    st.rerun()
