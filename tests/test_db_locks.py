"""SQLite's write lock is never held through slow work: while `studio generate` generates, an adapter merges, a
job's submit-time checks run or a large ranking import writes, another connection can still write (a heartbeat,
an annotator's submit). Start-up migrations from several processes at once are serialized. A form submission
queues one job however often it is sent. The lock probes are SQLite's; the rest also runs on PostgreSQL."""

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from backend.db.engine import session_scope
from backend.db.tables import Campaign, Completion, Job, ModelRecord, Ranking
from backend.models.store import local_path
from backend.settings import get_settings
from jobs import queue
from jobs.specs import EvalSpec

REPO = Path(__file__).resolve().parent.parent


def write_from_elsewhere(timeout: float = 1.0) -> float:
    """Take SQLite's write lock on a separate connection, as a heartbeat would; returns the seconds it waited.

    Raises ``sqlite3.OperationalError: database is locked`` when another transaction keeps the lock longer than
    ``timeout``."""
    con = sqlite3.connect(get_settings().url.removeprefix("sqlite:///"), timeout=timeout, isolation_level=None)
    try:
        started = time.monotonic()
        con.execute("BEGIN IMMEDIATE")
        con.execute("UPDATE workers SET heartbeat_at = heartbeat_at")
        con.execute("COMMIT")
        return time.monotonic() - started
    finally:
        con.close()


def count(table) -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(table))


# --- slow work holds no write lock -----------------------------------------------------------------------------

def test_cli_generate_lets_writers_in_while_it_generates(tiny_model, monkeypatch, capsys):
    from cli.main import main
    from services import playground

    real, waits = playground.generate, []

    def generate_while_probing(*args, **kwargs):
        waits.append(write_from_elsewhere())  # raised "database is locked" when the CLI's transaction held it
        return real(*args, **kwargs)

    monkeypatch.setattr(playground, "generate", generate_while_probing)
    main(["generate", "--model", "tiny", "--prompt", "hello", "--max-new-tokens", "4", "--raw"])
    assert len(waits) == 1 and waits[0] < 0.5
    assert count(Completion) == 1  # the completion is still saved, after generating
    assert capsys.readouterr().out.strip() != ""


def make_lora(base_dir: Path, out: Path) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base_dir),
                           LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    model.save_pretrained(out)
    return out


@pytest.fixture
def lora(tiny_model, tiny_model_dir, tmp_path) -> str:
    from backend.models.store import register_model

    with session_scope(write=True) as s:
        register_model(s, "tiny-lora", str(make_lora(tiny_model_dir, tmp_path / "lora")), kind="adapter",
                       source="local", base_model_id=tiny_model.id)
    return "tiny-lora"


def test_merge_adapter_merges_first_and_registers_after(lora, monkeypatch):
    from services import training

    real, waits = training.merge_to_folder, []

    def merge_while_probing(*args, **kwargs):
        waits.append(write_from_elsewhere())
        with session_scope() as s:  # nothing registered before the merge is done
            assert s.scalar(select(ModelRecord.id).where(ModelRecord.name == "merged")) is None
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "merge_to_folder", merge_while_probing)
    with session_scope(write=True) as s:
        record = training.merge_adapter(s, lora, "merged")
        path = Path(local_path(record.path, record.source))
    assert waits and waits[0] < 0.5
    assert (path / "config.json").is_file()
    with session_scope() as s:
        assert s.scalar(select(ModelRecord.kind).where(ModelRecord.name == "merged")) == "full"


def test_merge_that_fails_registers_nothing_and_leaves_no_folder(lora, monkeypatch):
    from backend.errors import StudioError
    from services import training

    def half_merge(adapter_path, base_path, target):
        target.mkdir(parents=True)
        (target / "model.safetensors").write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(training, "merge_to_folder", half_merge)
    models = count(ModelRecord)
    with pytest.raises(OSError, match="No space"), session_scope(write=True) as s:
        training.merge_adapter(s, lora, "merged")
    assert count(ModelRecord) == models
    assert not (get_settings().models_dir / "merged").exists()

    def merge_while_someone_takes_the_name(adapter_path, base_path, target):
        from backend.models.store import register_model

        target.mkdir(parents=True)
        with session_scope(write=True) as other:
            register_model(other, "merged", str(target.parent), kind="full", source="local")
    monkeypatch.setattr(training, "merge_to_folder", merge_while_someone_takes_the_name)
    with pytest.raises(StudioError, match="registered while merging"), session_scope(write=True) as s:
        training.merge_adapter(s, lora, "merged")
    assert not (get_settings().models_dir / "merged").exists()


def probe_writes_during_checks(monkeypatch) -> list[float]:
    """Make every submit-time check first time a write from another connection; returns those waits (seconds)."""
    real, waits = queue.check_spec, []

    def check_while_probing(session, spec):
        waits.append(write_from_elsewhere())
        return real(session, spec)

    monkeypatch.setattr(queue, "check_spec", check_while_probing)
    return waits


def test_submit_checks_run_before_the_write_lock(tiny_model, tmp_path, monkeypatch):
    from factories import write_dialogues

    waits = probe_writes_during_checks(monkeypatch)
    spec = EvalSpec.model_validate({"model": "tiny", "dataset": str(write_dialogues(tmp_path, {"test": 2}))})
    with session_scope(write=True) as s:
        job_id = queue.submit(s, spec).id
    assert waits and waits[0] < 0.5
    with session_scope() as s:
        assert s.get(Job, job_id).status == "queued"


def test_evaluating_several_models_checks_them_all_before_the_write_lock(tiny_model, tiny_model_dir, tmp_path,
                                                                         monkeypatch):
    from factories import write_dialogues

    from backend.models.store import add_model
    from services import evaluation

    with session_scope(write=True) as s:
        add_model(s, str(tiny_model_dir), name="tiny-again")
    waits = probe_writes_during_checks(monkeypatch)
    spec = EvalSpec.model_validate({"model": "tiny", "dataset": str(write_dialogues(tmp_path, {"test": 2}))})
    with session_scope(write=True) as s:
        ids = evaluation.submit_comparison(s, spec, ["tiny", "tiny-again"], submission_token="ev-1")
    assert len(waits) == 2 and max(waits) < 0.5
    with session_scope(write=True) as s:  # the double click: the same jobs, no check run again
        assert evaluation.submit_comparison(s, spec, ["tiny", "tiny-again"], submission_token="ev-1") == ids
    assert len(waits) == 2 and count(Job) == 2


def ranking_lines(n: int) -> list[str]:
    return [json.dumps({"prompt": f"prompt {i}", "completions": [f"a {i}", f"b {i}"], "ranks": [1, 2],
                        "annotator": f"ann{i % 3}"}) for i in range(n)]


def test_large_import_commits_in_batches_and_lets_writers_in(studio_env, monkeypatch):
    from labeling import importer

    monkeypatch.setattr(importer, "IMPORT_BATCH_ROWS", 40)
    lines, report, errors = ranking_lines(600), {}, []

    def run():
        try:
            with session_scope(write=True) as s:
                report.update(importer.import_rankings(s, lines, "big"))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    waits = []
    while worker.is_alive():
        waits.append(write_from_elsewhere(timeout=2.0))  # fails with "database is locked" after 2 s
        time.sleep(0.05)
    worker.join()
    assert not errors, errors
    assert report["accepted"] == 600 and report["rejected"] == []
    assert len(waits) >= 3, "the import ended too fast to probe it"
    assert max(waits) < 2.0
    assert count(Ranking) == 600


@pytest.mark.databases("sqlite", "postgres")
def test_interrupted_import_keeps_whole_rows_and_a_rerun_completes_it(studio_env, monkeypatch):
    from labeling import importer

    monkeypatch.setattr(importer, "IMPORT_BATCH_ROWS", 10)
    monkeypatch.setattr(importer, "IMPORT_PAUSE_SECONDS", 0.0)
    real_write, written = importer._Importer.write, []

    def write_then_die(self, row):
        if len(written) == 25:
            raise KeyboardInterrupt  # the process is stopped in the middle of a batch
        stored = real_write(self, row)
        written.append(row)
        return stored

    monkeypatch.setattr(importer._Importer, "write", write_then_die)
    lines = ranking_lines(40)
    with pytest.raises(KeyboardInterrupt), session_scope(write=True) as s:
        importer.import_rankings(s, lines, "cut")
    assert count(Ranking) == 20  # two committed batches; the third rolled back whole
    with session_scope() as s:  # no row half-written: every stored prompt has both completions and a ranking
        assert s.scalar(select(func.count()).select_from(Completion)) == 40
    monkeypatch.setattr(importer._Importer, "write", real_write)
    with session_scope(write=True) as s:
        report = importer.import_rankings(s, lines, "cut")
    assert report["accepted"] == 20
    assert [r["line"] for r in report["rejected"]] == list(range(1, 21))
    assert all("already ranked" in r["reason"] for r in report["rejected"])
    assert count(Ranking) == 40 and count(Campaign) == 1


# --- migrations from several processes ----------------------------------------------------------------------

FIRST_RUN = """
import sys, time
from pathlib import Path
go = Path(sys.argv[1])
while not go.exists():
    time.sleep(0.005)
from backend.db.engine import session_scope, upgrade_database
from jobs import queue
upgrade_database()
with session_scope() as s:
    queue.list_jobs(s)
print("ok")
"""


@pytest.mark.databases("sqlite", "postgres")
@pytest.mark.parametrize("trial", [1, 2])
def test_three_first_runs_at_once_upgrade_one_after_another(tmp_path, trial, db_backend, request):
    data = tmp_path / "fresh-data"
    go = tmp_path / "go"
    env = {**os.environ, "STUDIO_DATA_DIR": str(data), "STUDIO_WORKER_AUTOSTART": "false"}
    env.pop("STUDIO_DATABASE_URL", None)
    if db_backend == "postgres":  # an empty database: the advisory lock in migrations/env.py serializes them
        cluster = request.getfixturevalue("pg_server")
        name = f"first_runs_{trial}"
        cluster.admin_execute(f"CREATE DATABASE {name}")
        request.addfinalizer(lambda: cluster.drop_database(name))
        env["STUDIO_DATABASE_URL"] = cluster.url(name)
    procs = [subprocess.Popen([sys.executable, "-c", FIRST_RUN, str(go)], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    time.sleep(3.0)  # let the three interpreters reach the start line
    go.touch()
    results = [p.communicate(timeout=240) for p in procs]
    for p, (out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0 and out.strip() == "ok", err[-2000:]
        assert "locked" not in err
    if db_backend == "postgres":
        from sqlalchemy import create_engine, text

        engine = create_engine(env["STUDIO_DATABASE_URL"])
        try:
            with engine.connect() as conn:
                heads = conn.execute(text("SELECT version_num FROM alembic_version")).fetchall()
        finally:
            engine.dispose()
        assert len(heads) == 1
        return
    con = sqlite3.connect(data / "studio.db")
    try:
        heads = con.execute("SELECT version_num FROM alembic_version").fetchall()
    finally:
        con.close()
    assert len(heads) == 1


# --- one job per form submission ----------------------------------------------------------------------------

def bare_spec() -> EvalSpec:
    return EvalSpec.model_validate({"model": "tiny", "dataset": "demo:provocative", "split": "test"})


@pytest.mark.databases("sqlite", "postgres")
def test_same_submission_token_queues_one_job(studio_env, monkeypatch):
    monkeypatch.setattr(queue, "check_spec", lambda session, spec: None)
    with session_scope(write=True) as s:
        first = queue.submit(s, bare_spec(), submission_token="form-1").id
    with session_scope(write=True) as s:  # the double click
        again = queue.submit(s, bare_spec(), submission_token="form-1").id
    with session_scope(write=True) as s:
        other = queue.submit(s, bare_spec(), submission_token="form-2").id
        untokened = [queue.submit(s, bare_spec()).id for _ in range(2)]
    assert again == first and other != first and len(set(untokened)) == 2
    assert count(Job) == 4


@pytest.mark.databases("sqlite", "postgres")
def test_same_token_from_two_threads_at_once_queues_one_job(studio_env, monkeypatch):
    def slow_check(session, spec):
        time.sleep(0.3)  # both submits pass their checks before either inserts

    monkeypatch.setattr(queue, "check_spec", slow_check)
    ids, start = [], threading.Barrier(2)

    def click():
        start.wait()
        with session_scope(write=True) as s:
            ids.append(queue.submit(s, bare_spec(), submission_token="double-click").id)

    threads = [threading.Thread(target=click) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(ids) == 2 and ids[0] == ids[1]
    assert count(Job) == 1
