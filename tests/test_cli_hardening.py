"""`studio` CLI fixes: `generate --help` and `worker --help` work, non-UTF-8 standard input is a clear error, and
`models add` refuses existing names (unless --replace), the default model's name, bad hub ids and names, and
folders whose config does not load."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from factories import run_cli

from backend.db.engine import session_scope
from backend.models.store import list_models

REPO = Path(__file__).resolve().parent.parent


def cli_process(args: list[str], data_dir: Path, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("STUDIO_")}, "STUDIO_DATA_DIR": str(data_dir),
           "STUDIO_WORKER_AUTOSTART": "false", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "cli.main", *args], input=stdin, cwd=REPO, env=env,
                          capture_output=True, timeout=300, check=False)


def test_generate_help_lists_the_decoding_flags(tmp_path):
    done = cli_process(["generate", "--help"], tmp_path / "data")
    out = done.stdout.decode()
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert "--top-p" in out and "20%" in out and "--template" in out


def test_worker_help_shows_the_worker_options(tmp_path):
    done = cli_process(["worker", "--help"], tmp_path / "data")
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    out = done.stdout.decode()
    assert "usage: studio worker" in out and "--max-jobs" in out and "--idle-exit" in out


def test_studio_help_still_lists_worker(capsys):
    code, out, _ = run_cli(["--help"], capsys)
    assert code == 0 and "worker" in out


def test_worker_options_still_reach_the_worker(studio_env, capsys):
    code, _, err = run_cli(["worker", "--max-jobs", "0"], capsys)
    assert code == 0, err
    code, _, err = run_cli(["worker", "--max-jobs", "lots"], capsys)
    assert code == 2 and "invalid int value" in err


def test_latin1_stdin_is_a_clear_error(tmp_path):
    done = cli_process(["generate"], tmp_path / "data", stdin="Résumé: café crème".encode("latin-1"))
    err = done.stderr.decode()
    assert done.returncode == 2, err[-2000:]
    assert "Traceback" not in err and "not UTF-8" in err and len(err.strip().splitlines()) == 1


def test_utf8_stdin_with_bom_is_read(tiny_model, monkeypatch, capsys):
    import io

    stdin = io.TextIOWrapper(io.BytesIO("\ufeffhello".encode()), encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", stdin)
    code, out, err = run_cli(["generate", "--model", "tiny", "--max-new-tokens", "2", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["completions"]


# --- models add -------------------------------------------------------------------------------------------

def names() -> dict[str, str]:
    with session_scope() as s:
        return {m["name"]: m["path"] for m in list_models(s)}


def test_models_add_refuses_an_existing_name_unless_replace(tiny_model, tiny_model_dir, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    before = names()
    code, _, err = run_cli(["models", "add", str(other), "--name", "tiny"], capsys)
    assert code == 2 and "already registered" in err and "--replace" in err
    assert names() == before
    code, _, err = run_cli(["models", "add", str(other), "--name", "tiny", "--replace"], capsys)
    assert code == 0, err
    assert names()["tiny"] == str(other.resolve())


def test_models_add_never_replaces_the_default_model(studio_env, tiny_model_dir, capsys):
    from backend.models.store import register_model
    from backend.settings import DEFAULT_MODEL_NAME

    with session_scope(write=True) as s:
        register_model(s, DEFAULT_MODEL_NAME, "/models/default", source="embedded")
    for extra in ([], ["--replace"]):
        code, _, err = run_cli(["models", "add", str(tiny_model_dir), "--name", DEFAULT_MODEL_NAME, *extra], capsys)
        assert code == 2 and "default model" in err, err
    assert names()[DEFAULT_MODEL_NAME] == "/models/default"


@pytest.mark.parametrize(("args", "message"), [
    (["a/.."], "neither an existing folder nor a hub id"),
    (["../etc"], "neither an existing folder nor a hub id"),
    (["org/" + "m" * 200], "neither an existing folder nor a hub id"),
    (["a/b/c"], "neither an existing folder nor a hub id"),
    (["org/-model"], "neither an existing folder nor a hub id"),
    (["org/model", "--name", "x" * 500], "at most 96"),
    (["org/model", "--name", "bad name!"], "not allowed"),
    (["org/model", "--name", "../escape"], "not allowed"),
    (["org/model", "--name", "a/b/c"], "not allowed"),
])
def test_models_add_validates_hub_ids_and_names(studio_env, capsys, args, message):
    code, _, err = run_cli(["models", "add", *args], capsys)
    assert code == 2 and message in err, err
    assert "Traceback" not in err
    assert names() == {}


def test_models_add_accepts_a_good_hub_id(studio_env, capsys):
    code, _, err = run_cli(["models", "add", "HuggingFaceTB/SmolLM2-135M-Instruct", "--name", "smol.v2_hub"],
                           capsys)
    assert code == 0, err
    assert names() == {"smol.v2_hub": "HuggingFaceTB/SmolLM2-135M-Instruct"}


@pytest.mark.parametrize("config", ["{}", "not json", '{"model_type": "no-such-architecture"}'])
def test_models_add_refuses_a_config_that_does_not_load(studio_env, tmp_path, capsys, config):
    folder = tmp_path / "broken-model"
    folder.mkdir()
    (folder / "config.json").write_text(config)
    code, _, err = run_cli(["models", "add", str(folder)], capsys)
    assert code == 2 and "not a loadable transformers config" in err, err
    assert len(err.strip().splitlines()) == 1
    assert names() == {}
