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

