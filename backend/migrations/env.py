"""Alembic environment: the URL comes from the caller (``upgrade_database``) or settings."""

from alembic import context

from backend.db.engine import get_engine
from backend.db.tables import Base
from backend.settings import get_settings

config = context.config
url = config.attributes.get("url") or get_settings().url

with get_engine(url).connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    raw = connection.connection.driver_connection
    if sqlite:
        # Batch migrations rebuild a table (copy, DROP, rename). With foreign keys on, dropping `jobs` while
        # `models.job_id` rows point at it fails; SQLite only honours this pragma outside a transaction.
        raw.execute("PRAGMA foreign_keys=OFF")
    try:
        context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":  # one upgrader at a time (SQLite: a file lock in engine.py)
                connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7315420001)")
            context.run_migrations()
            if sqlite:  # the rebuilt tables must still satisfy every foreign key, or nothing is committed
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"migration left rows whose foreign keys point nowhere: {broken[:5]}")
        connection.commit()
    finally:
        if sqlite:  # the pooled connection goes back to the app: foreign keys on again
            raw.execute("PRAGMA foreign_keys=ON")
