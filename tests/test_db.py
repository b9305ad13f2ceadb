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


def _insert_row(conn, table: str, **values) -> None:
    """One row with ``values`` and a plain value in every other required column (the schema of an old revision)."""
    from sqlalchemy import JSON, Boolean, DateTime, Float, Integer

    for column in inspect(conn).get_columns(table):
        if column["name"] in values or column["nullable"] or column["default"] is not None \
                or column.get("autoincrement") is True or column["name"] == "id":
            continue
        kind = column["type"]
        values[column["name"]] = (False if isinstance(kind, Boolean) else 0 if isinstance(kind, (Integer, Float)) else
                                  "{}" if isinstance(kind, JSON) else
                                  "2026-01-01 00:00:00" if isinstance(kind, DateTime) else "x")
    names = ", ".join(values)
    conn.execute(text(f"INSERT INTO {table} ({names}) VALUES ({', '.join(':' + n for n in values)})"), values)


def test_upgrading_a_database_with_rows_keeps_them(studio_env):
    """A team's database from an older release, with models and metrics pointing at jobs, upgrades in place
    (SQLite rebuilds `jobs` for a new constraint: with foreign keys on, that DROP used to fail)."""
    from alembic import command
    from alembic.config import Config

    from backend.db.engine import MIGRATIONS_DIR
    from backend.settings import get_settings

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["url"] = get_settings().url
    command.downgrade(cfg, "0002")
    with get_engine().begin() as conn:
        _insert_row(conn, "jobs", id=7, kind="sft", status="succeeded", spec="{}")
        _insert_row(conn, "models", name="old-sft", job_id=7, kind="full", source="job")
        _insert_row(conn, "job_metrics", job_id=7, key="train/loss", value=1.5, step=1)
    upgrade_database()
    with get_engine().connect() as conn:
        assert conn.execute(text("SELECT job_id FROM models WHERE name = 'old-sft'")).scalar() == 7
        assert conn.execute(text("SELECT count(*) FROM job_metrics WHERE job_id = 7")).scalar() == 1
        assert "submission_token" in {c["name"] for c in inspect(conn).get_columns("jobs")}
    with session_scope() as s:  # foreign keys are enforced again on the connection the migration used
        if s.bind.dialect.name == "sqlite":
            assert s.execute(text("PRAGMA foreign_keys")).scalar() == 1
