"""Configuration problems as one line that says what to fix: the one place that translates them.

A database URL with a driver that is not installed, a URL that does not parse, a server that cannot be reached,
a data dir that cannot be created or written, a full disk: each surfaces deep inside SQLAlchemy, sqlite3 or the
OS as an exception with a traceback. :func:`explain_config_error` turns such an exception into a ``StudioError``
naming the setting or path to fix (``None`` when the exception is not a configuration problem), and
:func:`config_errors` applies it to a function (the engine factory and start-up migrations use it). The CLI
prints a ``StudioError`` as one line and exits with status 2; the app shows it in an error box.
"""

from __future__ import annotations

import errno
import functools
import re
from collections.abc import Callable
from typing import TypeVar

from backend.errors import StudioError

F = TypeVar("F", bound=Callable)

# which package each driver module comes from
_DRIVER_PACKAGES = {"psycopg": "psycopg[binary]", "psycopg2": "psycopg2-binary", "pg8000": "pg8000",
                    "asyncpg": "asyncpg", "MySQLdb": "mysqlclient", "pymysql": "pymysql", "oracledb": "oracledb",
                    "pyodbc": "pyodbc"}
_DISK_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
_NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)
STORAGE_ERRNOS = _DISK_FULL + _NOT_WRITABLE  # an OSError with one of these is a setup problem wherever it happens
_CANNOT_CREATE = (errno.ENOENT, errno.ENOTDIR, errno.EEXIST)
# psycopg's "connection failed: connection to server at "h", port 5432 failed: FATAL:  …": the part after it says why
_SERVER_PREFIX = re.compile(r"^(connection failed: )?connection to server (at|on) .*? failed: (fatal: +)?",
                            re.IGNORECASE)


def _first_line(exc: BaseException, limit: int = 160) -> str:
    orig = getattr(exc, "orig", None)  # SQLAlchemy's DBAPIError wraps the driver's own exception
    text = str(orig if orig is not None else exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0][:limit]


def _shown_url(url: str | None) -> str:
    if not url:
        return "the database URL"
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL: show its scheme only (it may hold a password)
        return url.split("://", 1)[0] + "://…" if "://" in url else "(not a URL)"


def _url_setting(url: str | None) -> str:
    from backend.settings import get_settings

    try:
        configured = get_settings().database_url
    except StudioError:
        configured = None
    return "STUDIO_DATABASE_URL" if configured and configured == url else "the database URL"


def _data_dir() -> str:
    from backend.settings import get_settings

    try:
        return str(get_settings().resolved_data_dir)
    except StudioError:
        return "the data dir"


def _sqlite_file(url: str | None) -> str | None:
    return url.removeprefix("sqlite:///") if url and url.startswith("sqlite:///") else None


def explain_config_error(exc: BaseException, url: str | None = None) -> StudioError | None:
    """A ``StudioError`` saying what to fix when ``exc`` is a configuration problem, else ``None``.

    Args:
        exc: the exception raised while opening the database or writing under the data dir.
        url: the database URL in use (driver and server problems name it, password hidden).
    """
    if isinstance(exc, StudioError):
        return exc
    from sqlalchemy import exc as sa_exc

    if isinstance(exc, ModuleNotFoundError) and url and "://" in url:
        module = (exc.name or "").split(".")[0]
        package = _DRIVER_PACKAGES.get(module, module)
        return StudioError(f"{_url_setting(url)} {_shown_url(url)} needs the database driver '{module}', which is not "
                           f"installed: run `pip install {package}`, or use a URL for an installed driver "
                           "(empty = SQLite in the data dir).")
    if isinstance(exc, sa_exc.ArgumentError):
        return StudioError(f"{_url_setting(url)} {_shown_url(url)} is not a usable database URL ({_first_line(exc)}): "
                           "write e.g. postgresql+psycopg://user:password@host:5432/studio, or leave it empty for "
                           "SQLite in the data dir.")
    if isinstance(exc, OSError):
        return _explain_os_error(exc)
    if isinstance(exc, sa_exc.DBAPIError) or type(exc).__module__ == "sqlite3":
        return _explain_database_error(exc, url)
    return None


def _explain_os_error(exc: OSError) -> StudioError | None:
    where = exc.filename or _data_dir()
    reason = exc.strerror or type(exc).__name__
    if exc.errno in _DISK_FULL:
        return StudioError(f"The disk is full: could not write {where} ({reason}). Free some space, or set "
                           "STUDIO_DATA_DIR to a folder on a disk with room.")
    if exc.errno in _NOT_WRITABLE:
        return StudioError(f"{where} cannot be written ({reason}): fix the folder's permissions, or set "
                           "STUDIO_DATA_DIR to a folder you can write.")
    if exc.errno in _CANNOT_CREATE:
        hint = "a file is in the way" if exc.errno in (errno.ENOTDIR, errno.EEXIST) else "its parent does not exist"
        return StudioError(f"The data folder {where} cannot be created ({reason}: {hint}): set STUDIO_DATA_DIR to a "
                           "folder path you can create.")
    return None


def _explain_database_error(exc: BaseException, url: str | None) -> StudioError | None:
    text = _first_line(exc)
    low = text.lower()
    sqlite_file = _sqlite_file(url)
    if "disk is full" in low or "no space left" in low:
        return StudioError(f"The disk is full: the database {sqlite_file or _shown_url(url)} cannot grow ({text}). "
                           "Free some space, or set STUDIO_DATA_DIR to a folder on a disk with room.")
    if sqlite_file is not None and ("readonly" in low or "read-only" in low or "unable to open" in low
                                    or "disk i/o error" in low or "authorization denied" in low):
        return StudioError(f"The database file {sqlite_file} cannot be opened for writing ({text}): check that its "
                           "folder exists and is writable, or set STUDIO_DATA_DIR to a folder you can write.")
    if sqlite_file is None and (refusal := _server_refusal(text, low, url)) is not None:
        return refusal
    if sqlite_file is None and (m := re.search(r"permission denied for (table|schema|sequence|database) (\S+)", text)):
        return StudioError(f"The database user of {_shown_url(url)} may not use {m.group(1)} {m.group(2)} ({text}): "
                           "connect as the database's owner, or have its owner run "
                           "`ALTER DATABASE <name> OWNER TO <user>` (a fresh empty database the user owns is "
                           "migrated at first start).")
    if sqlite_file is None and any(s in low for s in (
            "could not connect", "connection refused", "could not translate host name", "timeout expired",
            "timed out", "name or service not known", "no route to host", "network is unreachable",
            "can't connect", "server closed the connection", "unknown host")):
        return StudioError(f"Cannot reach the database server of {_url_setting(url)} {_shown_url(url)} "
                           f"({_SERVER_PREFIX.sub('', text)}): "
                           "start the server or fix the host and port in the URL.")
    return None


def _server_refusal(text: str, low: str, url: str | None) -> StudioError | None:
    """A server that answered but refused us: wrong password, unknown user or database, host not allowed."""
    where, why = _shown_url(url), _SERVER_PREFIX.sub("", text)
    if "password authentication failed" in low or "access denied for user" in low:
        fix = "fix the user name or password in STUDIO_DATABASE_URL"
    elif (m := re.search(r'database "([^"]*)" does not exist', text)):
        fix = (f"create the database (e.g. `createdb {m.group(1)}` on the server) or fix its name at the end of "
               "STUDIO_DATABASE_URL")
    elif (m := re.search(r'role "([^"]*)" does not exist', text)):
        fix = f"create the user (e.g. `createuser --pwprompt {m.group(1)}`) or fix the user in STUDIO_DATABASE_URL"
    elif "no pg_hba.conf entry" in low:
        fix = "allow this host and user in the server's pg_hba.conf, or connect as a user it allows"
    else:
        return None
    return StudioError(f"The database server of {where} refused the connection ({why}): {fix}.")


def config_errors(func: F) -> F:
    """Decorate a function that opens the database (``url`` first argument or keyword, default: settings):
    configuration problems leave it as one-line ``StudioError``s."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except StudioError:
            raise
        except Exception as exc:
            url = kwargs.get("url") or (args[0] if args and isinstance(args[0], str) else None)
            if url is None:
                from backend.settings import get_settings

                try:
                    url = get_settings().url
                except StudioError:
                    url = None
            explained = explain_config_error(exc, url)
            if explained is None:
                raise
            raise explained from exc

    return wrapper  # type: ignore[return-value]

