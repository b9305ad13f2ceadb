"""Engine, sessions and start-up migrations.

SQLite is tuned for many readers and a few short writers across processes (app, worker, jobs):
WAL journal, a 30 s busy timeout, foreign keys on. Write transactions start with
``BEGIN IMMEDIATE`` so two writers queue on the busy timeout instead of failing with
"database is locked" when a read lock cannot be upgraded (NOTE: a SQLite-only constraint).

Start-up migrations are serialized across processes: on SQLite by an exclusive file lock next to the
database file (``<db>.migrate.lock``), on PostgreSQL by a transaction-level advisory lock, so several
first-run commands at once (app, worker, CLI) upgrade one after another instead of failing.
"""

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from backend.config_errors import config_errors
from backend.settings import get_settings

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
BUSY_TIMEOUT_SECONDS = 30  # how long a SQLite writer waits for the lock before "database is locked"


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (see _on_begin)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_SECONDS * 1000}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        immediate = conn.get_execution_options().get("studio_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


CONNECT_TIMEOUT_SECONDS = 10  # a server that does not answer: a clear error after this long, not a hang
_engines: dict[str, Engine] = {}


def get_engine(url: str | None = None) -> Engine:
    """The process's engine for ``url`` (default from settings), made once per URL."""
    url = url or get_settings().url
    engine = _engines.get(url)
    if engine is None:
        engine = _engines[url] = _create_engine(url)
    return engine


@config_errors  # a missing driver, a bad URL, a data dir that cannot be created: one line
def _create_engine(url: str) -> Engine:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_SECONDS, "check_same_thread": False})
        _tune_sqlite(engine)
        return engine
    connect_args = {"connect_timeout": CONNECT_TIMEOUT_SECONDS} if url.startswith("postgresql") else {}
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args)


@lru_cache(maxsize=8)
def _sessionmakers(url: str) -> tuple[sessionmaker, sessionmaker]:
    engine = get_engine(url)
    reader = sessionmaker(bind=engine, expire_on_commit=False)
    writer = sessionmaker(bind=engine.execution_options(studio_write=True), expire_on_commit=False)
    return reader, writer


@contextmanager
def read_before_write(session: Session) -> Iterator[Session]:
    """A session for slow reads that come before ``session`` writes (submit-time checks, role checks).

    ``session`` itself when it has already begun a transaction: it may hold rows the reads must see, and its reads
    and writes stay atomic. Otherwise a read transaction of its own on the same database, committed and closed on
    exit — a fresh write session would take SQLite's write lock at its first query and hold it through the reads.
    """
    if session.in_transaction():
        yield session
        return
    reader = Session(bind=session.get_bind().execution_options(studio_write=False), expire_on_commit=False)
    try:
        yield reader
        reader.commit()
    finally:
        reader.close()


@contextmanager
def session_scope(write: bool = False, url: str | None = None) -> Iterator[Session]:
    """One short transaction: commit on success, roll back on any error.

    Args:
        write: take SQLite's write lock up front; use it for every transaction that writes.
        url: database URL; default from settings.
    """
    reader, writer = _sessionmakers(url or get_settings().url)
    session = (writer if write else reader)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def migration_lock(url: str) -> Iterator[None]:
    """Hold an exclusive lock on ``<db file>.migrate.lock`` (SQLite file URLs); other URLs lock in ``env.py``."""
    if not url.startswith("sqlite:///") or url.endswith(":memory:"):
        yield
        return
    path = Path(url.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".migrate.lock"), "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)  # blocks until the process upgrading now is done
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


@config_errors  # an unreachable server, an unwritable data dir, a full disk: one line
def upgrade_database(url: str | None = None) -> None:
    """Apply Alembic migrations up to head (idempotent; called at every start-up; serialized across processes)."""
    from alembic import command
    from alembic.config import Config

    url = url or get_settings().url
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["url"] = url
    with migration_lock(url):
        command.upgrade(cfg, "head")


def reset_engines() -> None:
    """Close and drop cached engines and session factories (tests point settings at fresh databases)."""
    engines = list(_engines.values())
    _engines.clear()
    for engine in engines:
        engine.dispose()
    _sessionmakers.cache_clear()
