"""A wrong PostgreSQL URL against a real server: one line saying what to fix, for the CLI, the worker and the app.

The throwaway server (tests/pg_support.py) trusts every role but ``PASSWORD_USER``, which must give its password.
"""

from pathlib import Path

import pytest
from pg_support import PASSWORD, PASSWORD_USER, free_port
from test_config_errors import assert_one_line, studio

pytestmark = pytest.mark.databases("postgres")

REPO = Path(__file__).resolve().parent.parent
CASES = {  # name: (URL from the cluster, what the line must say)
    "unreachable": (lambda c: f"postgresql+psycopg://studio:{PASSWORD}@127.0.0.1:{free_port()}/studio",
                    ("Cannot reach the database server", "Connection refused", "start the server")),
    "wrong password": (lambda c: c.url(c.fresh_database("pw"), PASSWORD_USER, "wrong-" + PASSWORD),
                       ("refused the connection", "password authentication failed", "fix the user name or password")),
    "missing database": (lambda c: c.url("no_such_db", PASSWORD_USER, PASSWORD),
                         ('database "no_such_db" does not exist', "createdb no_such_db")),
    "missing driver": (lambda c: f"postgresql+pg8000://studio:{PASSWORD}@127.0.0.1:{c.port}/studio",
                       ("needs the database driver 'pg8000'", "pip install pg8000")),
}


@pytest.fixture(params=list(CASES))
def bad_url(request, db_backend, pg_server):
    make_url, needles = CASES[request.param]
    return make_url(pg_server), needles


def test_cli_and_worker_say_what_to_fix_in_one_line(bad_url, tmp_path):
    url, needles = bad_url
    for args, module in ((["models", "list"], "cli.main"), (["worker", "--max-jobs", "1"], "cli.main"),
                         (["--max-jobs", "1"], "jobs.worker")):
        err = assert_one_line(studio(args, tmp_path, module=module, STUDIO_DATABASE_URL=url), *needles)
        assert PASSWORD not in err  # the password is never printed


def test_the_right_password_on_an_empty_database_it_owns_works(db_backend, pg_server, tmp_path):
    """A team's first start: `createdb -O studio studio`, then every command migrates it (the first one does)."""
    url = pg_server.url(pg_server.empty_database(owner=PASSWORD_USER), PASSWORD_USER, PASSWORD)
    for args, module in ((["models", "list"], "cli.main"), (["worker", "--max-jobs", "1", "--idle-exit", "0.5"],
                                                            "cli.main")):
        done = studio(args, tmp_path, module=module, STUDIO_DATABASE_URL=url)
        assert done.returncode == 0, done.stderr[-2000:]


def test_a_user_without_rights_on_the_tables_is_told_what_to_grant(db_backend, pg_server, tmp_path):
    url = pg_server.url(pg_server.fresh_database("pw"), PASSWORD_USER, PASSWORD)  # tables owned by the admin
    assert_one_line(studio(["models", "list"], tmp_path, STUDIO_DATABASE_URL=url), "may not use table",
                    "OWNER TO")


def test_app_shows_what_to_fix_in_an_error_box(bad_url, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from backend.db.engine import reset_engines
    from backend.settings import reset_settings_cache

    url, needles = bad_url
    monkeypatch.setenv("STUDIO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("STUDIO_DATABASE_URL", url)
    monkeypatch.setenv("STUDIO_WORKER_AUTOSTART", "false")
    reset_settings_cache()
    reset_engines()
    try:
        at = AppTest.from_file(str(REPO / "app" / "studio_app.py"), default_timeout=90).run()
    finally:
        reset_engines()
        reset_settings_cache()
    assert not at.exception
    shown = " ".join(str(e.value) for e in at.error)
    assert all(needle in shown for needle in needles), shown
    assert PASSWORD not in shown
