"""Loop Studio: the entry script (`streamlit run app/studio_app.py`, or `studio run`).

Navigation is role-based: signed out → the sign-in page; annotators → the labeling workbench only;
admins → everything.
"""

import streamlit as st

from app.auth import (
    apply_cookie_changes,
    current_user,
    restore_session,
    sign_in_as,
    sign_out,
    sign_out_everywhere,
)
from app.common import startup
from app.components.safe_text import escape_markdown
from backend.db.engine import session_scope
from backend.errors import StudioError
from labeling import accounts

# Material icons ship with Streamlit's frontend; emoji need a system font many Linux servers lack.
st.set_page_config(page_title="Loop Studio", page_icon=":material/autorenew:", layout="wide")
try:
    startup()
except StudioError as exc:  # a bad setting, database URL or data dir: what to fix, in a box, no traceback
    st.error(str(exc), icon=":material/error:")
    st.stop()

restore_session()  # the sign-in cookie (a reload, a new tab); a session revoked elsewhere signs out here
apply_cookie_changes()
user = current_user()
if user is not None:  # re-read the role each run: an admin may have changed it, or removed the account
    with session_scope() as s:
        user = accounts.lookup(s, user["id"])
    if user:  # a statement, not an expression: Streamlit's magic would print the None it returns
        sign_in_as(user)
    else:
        sign_out()

if user is None:
    pages = [st.Page("page_sign_in.py", title="Sign in", icon=":material/login:", url_path="sign-in", default=True)]
else:
    with st.sidebar:
        st.caption(f"Signed in as {escape_markdown(user['name'])} ({user['role']})")
        st.button("Sign out", key="sign-out", icon=":material/logout:", on_click=sign_out)
        st.button("Sign out everywhere", key="sign-out-all", icon=":material/devices:", on_click=sign_out_everywhere,
                  help="End this account's sign-ins in every browser and tab.")
    label = [st.Page("page_labeling.py", title="Labeling", icon=":material/low_priority:", url_path="labeling",
                     default=user["role"] != "admin")]
    if user["role"] == "admin":
        pages = {
            "Experiment": [st.Page("page_playground.py", title="Playground", icon=":material/chat:",
                                   url_path="playground", default=True),
                           st.Page("page_compare.py", title="Compare", icon=":material/view_column:",
                                   url_path="compare"),
                           st.Page("page_documents.py", title="Documents", icon=":material/description:",
                                   url_path="documents"),
                           st.Page("page_runs.py", title="Runs", icon=":material/history:", url_path="runs")],
            "Label": label + [
                st.Page("page_campaigns.py", title="Campaigns", icon=":material/campaign:", url_path="campaigns"),
                st.Page("page_label_quality.py", title="Agreement", icon=":material/handshake:",
                        url_path="agreement"),
                st.Page("page_leaderboard.py", title="Leaderboard", icon=":material/emoji_events:",
                        url_path="leaderboard"),
                st.Page("page_label_data.py", title="Preference data", icon=":material/compare_arrows:",
                        url_path="preference-data"),
                st.Page("page_label_accounts.py", title="Accounts", icon=":material/group:", url_path="accounts"),
            ],
            "Train & evaluate": [
                st.Page("page_jobs.py", title="Jobs", icon=":material/model_training:", url_path="jobs"),
                st.Page("page_evaluation.py", title="Evaluation", icon=":material/leaderboard:",
                        url_path="evaluation"),
                st.Page("page_rlhf.py", title="RLHF runs", icon=":material/psychology:", url_path="rlhf"),
                st.Page("page_models.py", title="Models & adapters", icon=":material/deployed_code:",
                        url_path="models"),
                st.Page("page_calculators.py", title="Calculators", icon=":material/calculate:",
                        url_path="calculators"),
            ],
        }
    else:
        pages = {"Label": label}
st.navigation(pages, expanded=True).run()  # 13 admin pages: show them all, not "View N more"
