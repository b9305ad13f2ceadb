"""Database set-up: migrations at start-up, SQLite tuned for several processes."""

from sqlalchemy import inspect, text

from backend.db.engine import get_engine, session_scope, upgrade_database


def test_migrations_create_every_table_and_are_idempotent(studio_env):
    upgrade_database()
    tables = set(inspect(get_engine()).get_table_names())
    assert {"models", "prompts", "completions", "campaigns", "campaign_items", "rankings", "jobs",
            "job_metrics", "workers", "eval_runs", "eval_results", "users", "alembic_version"} <= tables


def test_sqlite_pragmas(studio_env):
    with session_scope() as s:
        assert s.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert s.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert s.execute(text("PRAGMA busy_timeout")).scalar() == 30000


def test_failed_transaction_writes_nothing(studio_env):
    from backend.db.tables import User

    try:
        with session_scope(write=True) as s:
            s.add(User(name="x"))
            s.flush()
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    with session_scope() as s:
        assert s.query(User).count() == 0
