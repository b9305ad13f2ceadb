"""Configuration errors are one line that says what to fix: exit status 2 and no traceback from `studio …` and
`studio worker`, an error box in the app. Cases: a database URL whose driver is not installed, a URL that does
not parse, an unreachable server, a data dir that cannot be created or written, a full disk, a bad setting, a
missing default model while offline."""

import errno
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from backend.config_errors import config_errors, explain_config_error
from backend.errors import StudioError
from cli.main import main

REPO = Path(__file__).resolve().parent.parent


def studio(args: list[str], tmp_path: Path, module: str = "cli.main", **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("STUDIO_")}
    base.update({"STUDIO_DATA_DIR": str(tmp_path / "data"), "STUDIO_WORKER_AUTOSTART": "false",
                 "HF_HUB_OFFLINE": "1", **env})
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=base, capture_output=True,
                          text=True, timeout=300, check=False)


def without_psycopg(tmp_path: Path) -> str:
    """A PYTHONPATH on which ``import psycopg`` fails as on a machine without it (it is a dependency here)."""
    shadow = tmp_path / "no-psycopg" / "psycopg"
    shadow.mkdir(parents=True, exist_ok=True)
    (shadow / "__init__.py").write_text('raise ModuleNotFoundError("No module named \'psycopg\'", name="psycopg")\n')
    return str(shadow.parent)


def assert_one_line(done: subprocess.CompletedProcess, *needles: str) -> str:
    err = done.stderr.strip()
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.mark.parametrize(("url", "needles"), [
    ("postgresql+psycopg://studio:s3cret@db.example:5432/studio", ("STUDIO_DATABASE_URL", "'psycopg'",
                                                                    "pip install psycopg[binary]")),
    ("postgresql://studio:s3cret@db.example/studio", ("driver", "pip install")),
    ("not a url", ("STUDIO_DATABASE_URL", "not a usable database URL")),
    ("nosuchdialect://x/y", ("not a usable database URL", "nosuchdialect")),
])
def test_bad_database_url_is_one_line(tmp_path, url, needles):
    err = assert_one_line(studio(["models", "list"], tmp_path, STUDIO_DATABASE_URL=url,
                                 PYTHONPATH=without_psycopg(tmp_path)), *needles)
    assert "s3cret" not in err  # the password is never printed


def test_worker_with_a_bad_url_is_one_line(tmp_path):
    url = "postgresql+psycopg://u:p@localhost/studio"
    path = without_psycopg(tmp_path)
    assert_one_line(studio(["worker", "--max-jobs", "1"], tmp_path, STUDIO_DATABASE_URL=url, PYTHONPATH=path),
                    "psycopg")
    assert_one_line(studio(["--max-jobs", "1"], tmp_path, module="jobs.worker", STUDIO_DATABASE_URL=url,
                           PYTHONPATH=path), "psycopg")


def test_data_dir_that_cannot_be_created_or_written(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert_one_line(studio(["models", "list"], tmp_path, STUDIO_DATA_DIR=str(blocker / "data")),
                    "cannot be created", "STUDIO_DATA_DIR")
    assert_one_line(studio(["models", "list"], tmp_path, STUDIO_DATA_DIR=str(blocker)), "STUDIO_DATA_DIR")
    # /sys refuses new folders even to root (a chmod'ed folder would not stop root)
    assert_one_line(studio(["job", "list"], tmp_path, STUDIO_DATA_DIR="/sys/loop-studio-test/data"),
                    "cannot be written", "STUDIO_DATA_DIR")


def test_read_only_database_file(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes read-only files")
    data = tmp_path / "data"
    assert studio(["job", "list"], tmp_path).returncode == 0
    data.chmod(0o500)
    (data / "studio.db").chmod(0o400)
    try:
        assert_one_line(studio(["job", "list"], tmp_path), "STUDIO_DATA_DIR")
    finally:
        data.chmod(0o700)


def test_bad_setting_names_the_variable(tmp_path):
    assert_one_line(studio(["job", "list"], tmp_path, STUDIO_DEVICE="gpu"), "STUDIO_DEVICE")
    assert_one_line(studio(["worker", "--max-jobs", "1"], tmp_path, STUDIO_HEARTBEAT_SECONDS="soon"),
                    "STUDIO_HEARTBEAT_SECONDS")


def test_missing_default_model_offline(tmp_path):
    done = subprocess.run([sys.executable, "-m", "cli.main", "generate"], input="hello", cwd=REPO,
                          env={**{k: v for k, v in os.environ.items() if not k.startswith("STUDIO_")},
                               "STUDIO_DATA_DIR": str(tmp_path / "data"), "STUDIO_WORKER_AUTOSTART": "false",
                               "HF_HUB_OFFLINE": "1"},
                          capture_output=True, text=True, timeout=300, check=False)
    assert_one_line(done, "studio models bootstrap")


def _run_main(args, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_:
        main(args)
    return exit_.value.code, capsys.readouterr().err


def test_full_disk_during_migrations_and_commands(studio_env, monkeypatch, capsys):
    from alembic import command

    def full(*_args, **_kwargs):
        raise OperationalError("INSERT", {}, sqlite3.OperationalError("database or disk is full"))

    monkeypatch.setattr(command, "upgrade", full)
    code, err = _run_main(["job", "list"], capsys)
    assert code == 2 and "disk is full" in err and "STUDIO_DATA_DIR" in err and len(err.strip().splitlines()) == 1

    import cli.main as cli

    def no_space(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(studio_env / "exports" / "m.gguf"))

    monkeypatch.setattr(cli, "_db", no_space)
    code, err = _run_main(["models", "list"], capsys)
    assert code == 2 and "The disk is full" in err and "m.gguf" in err


@pytest.mark.parametrize(("message", "needle"), [
    ('connection to server at "db.example" (10.0.0.9), port 5432 failed: Connection refused', "Cannot reach"),
    ('could not translate host name "nowhere" to address: Name or service not known', "Cannot reach"),
    ('connection to server failed: FATAL:  password authentication failed for user "studio"', "refused the conn"),
])
def test_unreachable_or_refusing_server(message, needle):
    url = "postgresql+psycopg://studio:s3cret@db.example:5432/studio"
    err = explain_config_error(OperationalError("connect", {}, Exception(message)), url)
    assert isinstance(err, StudioError) and needle in str(err) and "s3cret" not in str(err)
    assert "db.example" in str(err)

    @config_errors
    def open_database(url: str) -> None:
        raise OperationalError("connect", {}, Exception(message))

    with pytest.raises(StudioError, match=needle):
        open_database(url)


def test_other_errors_are_not_disguised():
    assert explain_config_error(ValueError("a bug")) is None
    assert explain_config_error(OSError(errno.EBADF, "Bad file descriptor")) is None

    @config_errors
    def buggy(url: str) -> None:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        buggy("sqlite:///x.db")


def test_app_shows_an_error_box(studio_env, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from backend.db.engine import reset_engines
    from backend.settings import reset_settings_cache

    monkeypatch.setenv("STUDIO_DATABASE_URL", "postgresql+psycopg://studio:s3cret@db.example/studio")
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as on a machine without the driver
    reset_settings_cache()
    reset_engines()
    at = AppTest.from_file(str(REPO / "app" / "studio_app.py"), default_timeout=90).run()
    assert not at.exception
    shown = " ".join(str(e.value) for e in at.error)
    assert "psycopg" in shown and "pip install" in shown and "s3cret" not in shown


def test_bootstrap_offline_is_one_line(tmp_path):
    # PIP_NO_INDEX: pip cannot reach any index, as on an offline machine
    done = studio(["models", "bootstrap"], tmp_path, PIP_NO_INDEX="1")
    assert_one_line(done, "studio models bootstrap --wheel")
