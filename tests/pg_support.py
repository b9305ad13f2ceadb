"""A throwaway PostgreSQL server for the tests: one cluster per test session, one fresh database per test.

The cluster lives in a temp dir (``initdb`` with trust auth), listens on a free loopback port and on a socket in
that dir, and is stopped and deleted when the session ends. ``initdb`` refuses to run as root, so as root the
server runs as the ``postgres`` user (``runuser``), which Debian's ``postgresql`` package creates. Each test gets a
database copied from a template that was migrated once (``CREATE DATABASE … TEMPLATE``, a file copy: ~0.1 s).

When no server can be started, :func:`start_cluster` raises ``PostgresUnavailable`` with the reason; the fixtures
turn it into a SKIP of every PostgreSQL variant, never a pass.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ADMIN_USER = "studio_admin"  # the cluster's superuser (initdb -U): no clash with a system role
PASSWORD_USER, PASSWORD = "studio_pw", "right-password"  # the one role that must log in with its password
TEMPLATE_DB = "studio_template"


class PostgresUnavailable(RuntimeError):
    """The test server could not be started; the message says why (shown as the skip reason)."""


def find_pg_bin() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``: Debian keeps them under /usr/lib/postgresql/<v>/bin."""
    if os.environ.get("STUDIO_TEST_PG_BIN"):
        folder = Path(os.environ["STUDIO_TEST_PG_BIN"])
        return folder if (folder / "initdb").is_file() else None
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name),
                        reverse=True)
    for folder in candidates:
        if (Path(folder) / "initdb").is_file() and (Path(folder) / "pg_ctl").is_file():
            return Path(folder)
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(os.path.realpath(initdb)).parent
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PostgresCluster:
    bin_dir: Path
    root: Path  # temp dir: data/, the socket, the log
    port: int
    run_as: str | None  # the system user running the server (root cannot), None = us
    _names: itertools.count = field(default_factory=lambda: itertools.count(1))

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str, user: str = ADMIN_USER, password: str | None = None) -> str:
        auth = user if password is None else f"{user}:{password}"
        return f"postgresql+psycopg://{auth}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if self.run_as:
            cmd = ["runuser", "-u", self.run_as, "--", *cmd]
        return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout, cwd=self.root)

    def start(self) -> None:
        init = self._run("initdb", "-D", str(self.data_dir), "-U", ADMIN_USER, "--auth=trust", "-E", "UTF8",
                         "--no-sync", "--locale=C", timeout=120)
        if init.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {(init.stderr or init.stdout).strip()[-300:]}")
        hba = self.data_dir / "pg_hba.conf"  # first match wins: this role needs its password, all others trusted
        hba.write_text(f"host all {PASSWORD_USER} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c max_connections=300 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        started = self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file), "-o", options, "-w",
                            "-t", "60", "start", timeout=90)
        if started.returncode != 0:
            log = self.log_file.read_text(errors="replace")[-300:] if self.log_file.exists() else ""
            raise PostgresUnavailable(f"pg_ctl start failed: {(started.stderr or started.stdout).strip()[-200:]} "
                                      f"{log}")

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop", timeout=60)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def admin_execute(self, *statements: str, database: str = "postgres") -> None:
        """Run statements outside a transaction (CREATE/DROP DATABASE need that) as the superuser."""
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=ADMIN_USER, dbname=database,
                             autocommit=True) as conn:
            for sql in statements:
                conn.execute(sql)

    def create_template(self) -> None:
        """The template every test database copies: migrated to head once per session."""
        from backend.db.engine import reset_engines, upgrade_database

        self.admin_execute(f"CREATE DATABASE {TEMPLATE_DB}",
                           f"CREATE ROLE {PASSWORD_USER} LOGIN PASSWORD '{PASSWORD}'")
        upgrade_database(self.url(TEMPLATE_DB))
        reset_engines()  # closes the template's connections: CREATE DATABASE … TEMPLATE needs it unused
        self.admin_execute(f"ALTER DATABASE {TEMPLATE_DB} WITH ALLOW_CONNECTIONS false")

    def fresh_database(self, prefix: str = "t") -> str:
        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        self.admin_execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
        return name

    def empty_database(self, owner: str = ADMIN_USER, prefix: str = "e") -> str:
        """A database with no tables yet, owned by ``owner`` (a team's first run: the studio migrates it)."""
        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        self.admin_execute(f"CREATE DATABASE {name} OWNER {owner}")
        return name

    def drop_database(self, name: str) -> None:
        # FORCE ends connections a test or its child processes left open
        self.admin_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _server_user() -> str | None:
    """Who runs the server: us, or as root the ``postgres`` system user (initdb and postgres refuse root)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresUnavailable("running as root and there is no 'postgres' user to run the server as "
                                  "(install Debian's postgresql package: `apt-get install postgresql`)") from None
    if not shutil.which("runuser"):
        raise PostgresUnavailable("running as root and `runuser` is missing to start the server as 'postgres'")
    return "postgres"


def start_cluster() -> PostgresCluster:
    """Start a throwaway server with a migrated template database; raises ``PostgresUnavailable`` with the reason."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        raise PostgresUnavailable("PostgreSQL is not installed (no initdb/pg_ctl): `apt-get install postgresql`, "
                                  "or set STUDIO_TEST_PG_BIN to its bin folder")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise PostgresUnavailable("the psycopg driver is not installed: `pip install 'psycopg[binary]'`") from None
    run_as = _server_user()
    root = Path(tempfile.mkdtemp(prefix="studio-pg-"))
    if run_as:
        info = pwd.getpwnam(run_as)
        os.chown(root, info.pw_uid, info.pw_gid)
    cluster = PostgresCluster(bin_dir=bin_dir, root=root, port=free_port(), run_as=run_as)
    try:
        cluster.start()
        cluster.create_template()
    except BaseException:
        cluster.stop()
        raise
    return cluster
