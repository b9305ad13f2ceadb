"""Database set-up: migrations at start-up, SQLite tuned for several processes; on SQLite and PostgreSQL."""

import pytest
from sqlalchemy import inspect, text

from backend.db.engine import get_engine, session_scope, upgrade_database

pytestmark = pytest.mark.databases("sqlite", "postgres")


def test_migrations_create_every_table_and_are_idempotent(studio_env):
    upgrade_database()
    tables = set(inspect(get_engine()).get_table_names())
    assert {"models", "prompts", "completions", "campaigns", "campaign_items", "rankings", "jobs",
            "job_metrics", "workers", "eval_runs", "eval_results", "users", "alembic_version"} <= tables


@pytest.mark.databases("sqlite")
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


def test_migrations_match_the_orm_tables(studio_env):
    """A table change without a migration fails here: write one with `alembic revision --autogenerate`."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from backend.db.tables import Base

    with get_engine().connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_downgrade_and_upgrade_round_trip(studio_env):
    from alembic import command
    from alembic.config import Config

    from backend.db.engine import MIGRATIONS_DIR
    from backend.settings import get_settings

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["url"] = get_settings().url
    command.downgrade(cfg, "base")
    command.upgrade(cfg, "head")
    assert "rankings" in inspect(get_engine()).get_table_names()
