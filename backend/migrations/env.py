"""Alembic environment: the URL comes from the caller (``upgrade_database``) or settings."""

from alembic import context

from backend.db.engine import get_engine
from backend.db.tables import Base
from backend.settings import get_settings

config = context.config
url = config.attributes.get("url") or get_settings().url

with get_engine(url).connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":  # one upgrader at a time (SQLite: a file lock in engine.py)
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7315420001)")
        context.run_migrations()
    connection.commit()
