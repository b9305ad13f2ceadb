"""Accounts: salted PBKDF2 hashes, sign-up / sign-in, roles, admin-only actions."""

import pytest
from sqlalchemy import func, select

from backend.db.engine import session_scope
from backend.db.tables import User
from backend.errors import StudioError
from labeling import accounts, workbench


@pytest.fixture
def fast_hash(monkeypatch):
    monkeypatch.setattr(accounts, "ITERATIONS", 1000)  # the default costs ~0.3 s per hash


def test_hash_is_salted_pbkdf2_with_default_iterations():
    first, second = accounts.hash_password("correct horse"), accounts.hash_password("correct horse")
    scheme, iterations, salt, digest = first.split("$")
    assert scheme == "pbkdf2_sha256" and int(iterations) == accounts.ITERATIONS >= 300_000
    assert len(bytes.fromhex(salt)) == 16 and len(bytes.fromhex(digest)) == 32
    assert first != second  # a fresh salt per hash
    assert accounts.verify_password("correct horse", first)
    assert not accounts.verify_password("correct horsE", first)


@pytest.mark.parametrize("stored", [None, "", "md5$abc", "pbkdf2_sha256$x$zz$00", "pbkdf2_sha256$10$00"])
def test_odd_stored_hashes_never_verify(stored):
    assert not accounts.verify_password("anything", stored)


def test_first_user_is_admin_then_annotators(studio_env, fast_hash):
    with session_scope(write=True) as s:
        admin = accounts.sign_up(s, "  alice ", "password-1")
        bob = accounts.sign_up(s, "bob", "password-2")
        assert (admin.name, admin.role, bob.role) == ("alice", "admin", "annotator")
        assert "password-1" not in admin.password_hash


def test_authenticate(studio_env, fast_hash):
    with session_scope(write=True) as s:
        user_id = accounts.sign_up(s, "alice", "password-1").id
    with session_scope() as s:
        assert accounts.authenticate(s, "alice", "password-1").id == user_id
        for name, password in [("alice", "wrong-password"), ("nobody", "password-1"), ("", "")]:
            with pytest.raises(StudioError, match="Wrong name or password"):
                accounts.authenticate(s, name, password)


def test_name_only_users_cannot_sign_in_until_given_a_password(studio_env, fast_hash):
    with session_scope(write=True) as s:
        admin = accounts.sign_up(s, "alice", "password-1")
        imported = workbench.get_or_create_user(s, "imported-annotator")
        with pytest.raises(StudioError, match="Wrong name"):
            accounts.authenticate(s, "imported-annotator", "")
        with pytest.raises(StudioError, match="taken"):
            accounts.sign_up(s, "imported-annotator", "password-2")  # nobody can claim it by signing up
        accounts.set_password(s, admin.id, imported.id, "password-3")
        assert accounts.authenticate(s, "imported-annotator", "password-3").id == imported.id


@pytest.mark.parametrize("name, password, message", [
    ("", "password-1", "user name"),
    ("x" * 81, "password-1", "80"),
    ("carol", "short", "at least 8"),
])
def test_bad_sign_ups_change_nothing(studio_env, fast_hash, name, password, message):
    with pytest.raises(StudioError, match=message), session_scope(write=True) as s:
        accounts.sign_up(s, name, password)
    with session_scope() as s:
        assert s.scalar(select(func.count(User.id))) == 0


def test_taken_name_is_refused(studio_env, fast_hash):
    with session_scope(write=True) as s:
        accounts.sign_up(s, "alice", "password-1")
        with pytest.raises(StudioError, match="taken"):
            accounts.sign_up(s, "alice", "password-2")


def test_admin_only_actions(studio_env, fast_hash):
    with session_scope(write=True) as s:
        admin = accounts.sign_up(s, "alice", "password-1")
        bob = accounts.sign_up(s, "bob", "password-2")
        with pytest.raises(StudioError, match="Only an admin"):
            accounts.list_users(s, bob.id)
        with pytest.raises(StudioError, match="Only an admin"):
            accounts.set_role(s, bob.id, bob.id, "admin")
        carol = accounts.create_user(s, admin.id, "carol", "password-3", role="admin")
        assert carol.role == "admin" and accounts.is_admin(s, carol.id) and not accounts.is_admin(s, bob.id)
        accounts.set_role(s, admin.id, carol.id, "annotator")
        with pytest.raises(StudioError, match="last admin"):
            accounts.set_role(s, admin.id, admin.id, "annotator")
        with pytest.raises(StudioError, match="Role"):
            accounts.set_role(s, admin.id, bob.id, "owner")
        users = accounts.list_users(s, admin.id)
        assert [u["name"] for u in users] == ["alice", "bob", "carol"]
        assert all("password_hash" not in u for u in users)



def failures_for(name: str) -> int:
    from backend.db.tables import SignInFailure

    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(SignInFailure).where(SignInFailure.name == name))


def test_five_wrong_passwords_in_15_minutes_make_sign_in_wait(studio_env, fast_hash, monkeypatch):
    from datetime import timedelta

    from backend.db.tables import utcnow

    with session_scope(write=True) as s:
        accounts.sign_up(s, "alice", "password-1")
    assert accounts.sign_in("alice", "password-1")["name"] == "alice"
    for _ in range(accounts.MAX_FAILURES):
        with pytest.raises(StudioError, match="Wrong name or password"):
            accounts.sign_in("Alice ", "wrong-password")  # the name as typed: case and spaces do not matter
    assert failures_for("alice") == 5
    with pytest.raises(StudioError, match="Too many failed sign-ins for this name: wait 15 minutes") as info:
        accounts.sign_in("alice", "password-1")  # even the right password waits: it is not checked
    throttled = str(info.value)
    assert failures_for("alice") == 5  # a refused attempt is not a new failure
    # an unknown name gets the same answers (no account enumeration)
    for _ in range(accounts.MAX_FAILURES):
        with pytest.raises(StudioError, match="Wrong name or password"):
            accounts.sign_in("mallory", "guess")
    with pytest.raises(StudioError) as info:
        accounts.sign_in("mallory", "guess")
    assert str(info.value) == throttled
    # other names are not affected; the wait ends when the oldest failure leaves the window
    with session_scope(write=True) as s:
        accounts.sign_up(s, "bob", "password-2")
    assert accounts.sign_in("bob", "password-2")["name"] == "bob"
    with session_scope() as s:
        assert accounts.throttle_wait(s, "alice", now=utcnow() + timedelta(minutes=15, seconds=1)) == 0
        assert 0 < accounts.throttle_wait(s, "alice") <= 15 * 60
    later = utcnow() + timedelta(minutes=16)
    monkeypatch.setattr(accounts, "utcnow", lambda: later)
    assert accounts.sign_in("alice", "password-1")["name"] == "alice"
    assert failures_for("alice") == 0  # a successful sign-in clears the count


def test_sign_in_page_says_to_wait_after_five_wrong_passwords(studio_env, fast_hash):
    from page_support import page, texts

    with session_scope(write=True) as s:
        accounts.sign_up(s, "alice", "password-1")
    at = page("page_sign_in.py")
    for attempt in range(accounts.MAX_FAILURES + 1):
        at.text_input(key="si-name").input("alice")
        at.text_input(key="si-password").input("wrong-password" if attempt < 5 else "password-1")
        at.button[0].click().run()
    assert not at.exception
    assert "Too many failed sign-ins" in texts(at.error)


def test_web_sessions_store_only_a_hash_expire_and_are_revoked(studio_env, fast_hash, monkeypatch):
    from datetime import timedelta

    from backend.db.tables import WebSession, utcnow
    from labeling import web_sessions

    with session_scope(write=True) as s:
        admin = accounts.sign_up(s, "alice", "password-1").id
        bob = accounts.sign_up(s, "bob", "password-2").id
        token, other, bobs = (web_sessions.start(s, u) for u in (admin, admin, bob))
    with session_scope() as s:
        stored = s.scalars(select(WebSession.token_hash)).all()
        assert token not in stored and len(stored) == 3 and all(len(h) == 64 for h in stored)  # hashes only
        assert web_sessions.resolve(s, token)["name"] == "alice"
        for bad in (None, "", "x" * 500, "not-a-token", 42):
            assert web_sessions.resolve(s, bad) is None
    with session_scope(write=True) as s:  # a demotion shows at the next resolve (the role is read fresh)
        accounts.set_role(s, admin, bob, "admin")
    with session_scope() as s:
        assert web_sessions.resolve(s, bobs)["role"] == "admin"
    with session_scope(write=True) as s:
        web_sessions.revoke(s, token)  # sign-out ends this browser only
    with session_scope() as s:
        assert web_sessions.resolve(s, token) is None and web_sessions.resolve(s, other)["id"] == admin
    with session_scope(write=True) as s:  # a password change ends every sign-in of that account
        accounts.set_password(s, admin, bob, "new-password-3")
    with session_scope() as s:
        assert web_sessions.resolve(s, bobs) is None and web_sessions.resolve(s, other) is not None
    with session_scope(write=True) as s:
        assert web_sessions.revoke_all(s, admin) == 1  # sign out everywhere
        fresh = web_sessions.start(s, bob)
    with session_scope() as s:
        assert web_sessions.resolve(s, other) is None and web_sessions.live_sessions(s, admin) == 0
    later = utcnow() + timedelta(days=7, seconds=1)  # the default lifetime
    monkeypatch.setattr(web_sessions, "utcnow", lambda: later)
    with session_scope() as s:
        assert web_sessions.resolve(s, fresh) is None


def test_an_admin_ends_someones_sign_ins_from_the_accounts_page(studio_env, fast_hash):
    from page_support import button, open_as, texts

    from labeling import web_sessions

    with session_scope(write=True) as s:
        admin = accounts.public(accounts.sign_up(s, "alice", "password-1"))
        bob = accounts.sign_up(s, "bob", "password-2").id
        tokens = [web_sessions.start(s, bob) for _ in range(2)]
    at = open_as("page_label_accounts.py", admin)
    at.selectbox(key="la-pick").select(bob).run()
    button(at, "End all their sign-ins").click().run()
    assert not at.exception and "2 sign-in(s) of bob ended." in texts(at.toast) + texts(at.success)
    with session_scope() as s:
        assert all(web_sessions.resolve(s, t) is None for t in tokens)


def test_single_sign_on_matches_an_account_by_its_e_mail(studio_env, fast_hash):
    from app.sso import DEFAULT, providers

    with session_scope(write=True) as s:
        admin = accounts.sign_up(s, "alice", "password-1").id
        bob = accounts.sign_up(s, "bob", "password-2").id
        accounts.set_email(s, admin, bob, "  Bob@Example.org ")
    with session_scope() as s:
        assert accounts.account_for_email(s, "bob@example.ORG")["name"] == "bob"
        for email, message in [(None, "gave no e-mail"), ("carol@example.org", "No studio account has the e-mail")]:
            with pytest.raises(StudioError, match=message):
                accounts.account_for_email(s, email)
    for bad, message in [("not-an-email", "is not an e-mail"), ("BOB@example.org", "already belongs to the account 'bob'")]:
        with pytest.raises(StudioError, match=message), session_scope(write=True) as s:
            accounts.set_email(s, admin, admin, bad)
    with session_scope(write=True) as s, pytest.raises(StudioError, match="admin"):
        accounts.set_email(s, bob, bob, "x@y.org")  # only admins set e-mails
    # which providers a secrets [auth] section configures; none without redirect_uri and cookie_secret
    base = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "s"}
    assert providers(None) == [] and providers({"client_id": "x"}) == []
    assert providers({**base, "client_id": "x", "client_secret": "y"}) == [DEFAULT]
    assert providers({**base, "google": {"client_id": "x"}, "okta": {"client_id": "y"}}) == ["google", "okta"]


def test_sign_in_page_offers_single_sign_on_only_when_configured(studio_env, fast_hash):
    from page_support import page

    with session_scope(write=True) as s:
        accounts.sign_up(s, "alice", "password-1")
    at = page("page_sign_in.py")
    assert not at.exception and not [b for b in at.button if "single sign-on" in b.label]
    at.secrets["auth"] = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "s",
                          "client_id": "x", "client_secret": "y",
                          "server_metadata_url": "https://idp.example/.well-known/openid-configuration"}
    at.run()
    assert not at.exception and [b for b in at.button if b.label == "Sign in with single sign-on"]
