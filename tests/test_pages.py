"""Every page under Streamlit's AppTest, on a fresh database with the tiny random model as the default.

Each page file is run on its own (``st.navigation`` lives in the entry script, tested separately). No worker
runs: jobs stay queued, and metrics and evaluation rows are inserted directly, as a worker would.
"""


import pytest
from page_support import APP, TIMEOUT, button, count, page, texts
from streamlit.testing.v1 import AppTest

from backend.db.engine import session_scope
from backend.db.tables import User
from labeling import accounts

# --- entry script ----------------------------------------------------------------------------------

def test_entry_script_asks_to_sign_in_first(studio):
    at = page("studio_app.py")
    assert not at.exception
    assert [t.value for t in at.title] == [":material/login: Sign in to Loop Studio"]
    assert "No account exists yet" in texts(at.info)


def test_first_account_is_admin_and_sees_every_page(studio):
    at = page("studio_app.py")
    at.text_input(key="su-name").input("ada")
    at.text_input(key="su-password").input("correct horse")
    at.text_input(key="su-repeat").input("correct horse")
    button(at, "Create account and sign in").click().run()
    assert not at.exception
    assert at.session_state["user"]["role"] == "admin"
    assert [t.value for t in at.title] == [":material/chat: Playground"]
    assert "Signed in as ada (admin)" in texts(at.caption)


def test_model_pickers_list_generators_and_reward_pickers_list_reward_models(studio, tmp_path):
    from app.common import model_names
    from backend.models.store import register_model

    with session_scope(write=True) as s:
        register_model(s, "rm-demo", str(tmp_path), kind="reward")
    assert "rm-demo" not in model_names() and model_names()[0] == "tiny"
    assert model_names(reward=True) == ["rm-demo"]


def test_sign_up_rejects_mismatched_passwords_and_creates_nobody(studio):
    at = page("page_sign_in.py")
    at.text_input(key="su-name").input("ada")
    at.text_input(key="su-password").input("correct horse")
    at.text_input(key="su-repeat").input("correct hose")
    button(at, "Create account and sign in").click().run()
    assert "The two passwords differ" in texts(at.error)
    assert count(User) == 0 and "user" not in at.session_state


def test_wrong_password_is_a_message(studio):
    with session_scope(write=True) as s:
        accounts.sign_up(s, "ada", "correct horse")
    at = page("page_sign_in.py")
    at.text_input(key="si-name").input("ada")
    at.text_input(key="si-password").input("wrong horse")
    button(at, "Sign in").click().run()
    assert not at.exception
    assert "Wrong name or password." in texts(at.error)
    assert "user" not in at.session_state


def test_annotator_sees_only_labeling(studio):
    with session_scope(write=True) as s:
        accounts.sign_up(s, "ada", "correct horse")  # the admin
        bob = accounts.public(accounts.sign_up(s, "bob", "correct horse"))
    at = AppTest.from_file(str(APP / "studio_app.py"), default_timeout=TIMEOUT)
    at.session_state["user"] = bob
    at.run()
    assert not at.exception
    assert bob["role"] == "annotator"
    assert [t.value for t in at.title] == [":material/low_priority: Labeling"]
    with pytest.raises(ValueError, match="Known pages: .*page_labeling.py'\\]"):
        at.switch_page("page_playground.py")  # not in an annotator's navigation: no way to open it

