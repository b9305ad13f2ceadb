"""The worker: real job child processes (eval on the tiny model) end succeeded / failed / cancelled with logs;
fake children exercise the fallbacks (a child that dies silently, ignores SIGTERM, or outlives a stopping worker)."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from factories import claimed_job, job_row, write_dialogues
from sqlalchemy import select

from backend.db.engine import session_scope
from backend.db.tables import EvalResult, EvalRun, Job, Worker
from jobs import artifacts, queue, worker
from jobs.specs import EvalSpec

pytestmark = pytest.mark.databases("sqlite", "postgres")  # tests/conftest.py: one variant per backend


@pytest.fixture
def fast_env(monkeypatch, studio_env):
    """Quick heartbeats so the worker notices a child's end (and cancels) within a fraction of a second."""
    from backend.settings import reset_settings_cache

    monkeypatch.setenv("STUDIO_HEARTBEAT_SECONDS", "0.2")
    reset_settings_cache()
    return studio_env


def write_dataset(folder, n_test=6):
    return write_dialogues(folder, {"train": 4, "test": n_test})


def submit_eval(**values) -> int:
    spec = EvalSpec.model_validate({"model": "tiny", "batch_size": 4, "max_examples": 6,
                                    "decoding": {"max_new_tokens": 8}, **values})
    with session_scope(write=True) as s:
        return queue.submit(s, spec).id


def wait_for(predicate, timeout=90.0, every=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    raise AssertionError("timed out waiting")


def has_metric(job_id: int, key: str) -> bool:
    with session_scope() as s:
        return any(m["key"] == key for m in queue.job_metrics(s, job_id))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie still answers kill(0): check its state
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# --- real jobs -----------------------------------------------------------------------------------------

def test_worker_runs_failing_then_good_eval(tiny_model, fast_env, tmp_path):
    data = str(write_dataset(tmp_path / "data"))
    bad = submit_eval(dataset=data, target_field="headline", name="bad")
    good = submit_eval(dataset=data, name="good")
    worker.run_worker(poll_seconds=0.1, max_jobs=2)

    failed = job_row(bad)
    assert failed.status == "failed"
    assert "headline" in failed.error and "Traceback" not in failed.error
    assert failed.worker_id and failed.pid and failed.finished_at

    job = job_row(good)
    assert job.status == "succeeded", job.error
    log = artifacts.log_path(good).read_text(encoding="utf-8")
    assert f"job {good} succeeded" in log and "generated 6/6" in log
    assert f"job {bad} failed" in artifacts.log_path(bad).read_text(encoding="utf-8")
    with session_scope() as s:
        run = s.scalar(select(EvalRun).where(EvalRun.job_id == good))
        assert run is not None and run.n_examples == 6
        assert {"rouge1", "rouge2", "rougeL", "bleu", "toxicity", "length_words"} <= set(run.metrics)
        assert len(s.scalars(select(EvalResult).where(EvalResult.eval_run_id == run.id)).all()) == 6
        (w,) = s.scalars(select(Worker)).all()
        assert w.stopped_at is not None and job.worker_id == w.id


def test_cancel_running_eval(tiny_model, fast_env, tmp_path):
    data = str(write_dataset(tmp_path / "data", n_test=3000))
    job_id = submit_eval(dataset=data, max_examples=3000, batch_size=2,
                         decoding={"max_new_tokens": 24, "min_new_tokens": 24})
    thread = threading.Thread(target=worker.run_worker, kwargs={"poll_seconds": 0.1, "max_jobs": 1}, daemon=True)
    thread.start()
    wait_for(lambda: has_metric(job_id, "eval/progress"))
    assert job_row(job_id).status == "running"
    with session_scope(write=True) as s:
        assert queue.request_cancel(s, job_id) == "running"
    thread.join(60)
    assert not thread.is_alive()
    job = job_row(job_id)
    assert job.status == "cancelled" and job.error is None
    assert f"job {job_id} cancelled" in artifacts.log_path(job_id).read_text(encoding="utf-8")
    with session_scope() as s:
        assert s.scalar(select(EvalRun).where(EvalRun.job_id == job_id)) is None
        progress = max(m["value"] for m in queue.job_metrics(s, job_id) if m["key"] == "eval/progress")
    assert progress < 1.0


def test_worker_process_sigterm_stops_its_job(tiny_model, fast_env, tmp_path):
    """`python -m jobs.worker` stopped with SIGTERM takes its job process down and records the job."""
    data = str(write_dataset(tmp_path / "data", n_test=3000))
    job_id = submit_eval(dataset=data, max_examples=3000, batch_size=2,
                         decoding={"max_new_tokens": 24, "min_new_tokens": 24})
    proc = subprocess.Popen([sys.executable, "-m", "jobs.worker", "--poll", "0.1", "--max-jobs", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:  # stop it once the job process runs its spec (its SIGTERM handler is installed by then)
        wait_for(lambda: f"job {job_id}: eval" in artifacts.read_log_tail(job_id))
        child_pid = job_row(job_id).pid
        assert child_pid and pid_alive(child_pid)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, out.decode()
    wait_for(lambda: not pid_alive(child_pid), timeout=10)
    job = job_row(job_id)
    assert job.status == "failed"
    assert "interrupted" in job.error or "worker" in job.error
    log = artifacts.read_log_tail(job_id)
    assert "the worker is stopping (SystemExit)" in log
    with session_scope() as s:
        assert all(w.stopped_at is not None for w in s.scalars(select(Worker)))
        assert s.scalar(select(EvalRun).where(EvalRun.job_id == job_id)) is None


# --- fallbacks, with fake job processes ----------------------------------------------------------------

def fake_child(monkeypatch, code: str) -> None:
    monkeypatch.setattr(worker, "child_command", lambda job_id: [sys.executable, "-c", code])


def test_child_dying_silently_is_failed(fast_env, monkeypatch):
    fake_child(monkeypatch, "import sys; print('partial output'); sys.exit(3)")
    job_id = claimed_job("fake", {"kind": "eval"})
    assert worker.run_job_process(job_id, "test-worker") == 3
    job = job_row(job_id)
    assert job.status == "failed" and "code 3" in job.error
    assert "partial output" in artifacts.read_log_tail(job_id)


def test_child_killed_is_failed_with_signal(fast_env, monkeypatch):
    fake_child(monkeypatch, "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    job_id = claimed_job("fake", {"kind": "eval"})
    assert worker.run_job_process(job_id, "test-worker") == -signal.SIGKILL
    assert "SIGKILL" in job_row(job_id).error


def test_cancel_ignored_escalates_to_kill(fast_env, monkeypatch):
    fake_child(monkeypatch, "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                            "print('up', flush=True); time.sleep(60)")
    monkeypatch.setattr(worker, "KILL_GRACE_SECONDS", 0.5)
    job_id = claimed_job("fake", {"kind": "eval"})
    with session_scope(write=True) as s:
        queue.request_cancel(s, job_id)
    began = time.monotonic()
    assert worker.run_job_process(job_id, "test-worker", cancel_grace=0.3) == -signal.SIGKILL
    assert time.monotonic() - began < 10
    assert job_row(job_id).status == "cancelled"
    log = artifacts.read_log_tail(job_id)
    assert "terminating the job process" in log and "killing it" in log


def test_worker_interrupted_stops_child(fast_env, monkeypatch):
    """Ctrl-C in the worker while a job runs: the child is stopped (no orphan) and the job ends failed."""
    fake_child(monkeypatch, "import time; time.sleep(60)")
    job_id = claimed_job("fake", {"kind": "eval"})
    previous = signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    signal.setitimer(signal.ITIMER_REAL, 0.8)
    try:
        with pytest.raises(KeyboardInterrupt):
            worker.run_job_process(job_id, "test-worker")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    job = job_row(job_id)
    assert job.status == "failed" and "worker" in job.error
    assert job.pid and not pid_alive(job.pid)


def test_worker_survives_a_job_it_cannot_start(fast_env, monkeypatch):
    def broken(job_id):
        raise OSError("no such interpreter")

    monkeypatch.setattr(worker, "child_command", broken)
    with session_scope(write=True) as s:
        s.add_all([Job(kind="eval", name=f"j{i}", spec={"kind": "eval"}) for i in range(2)])
    worker.run_worker(poll_seconds=0.05, max_jobs=2)
    with session_scope() as s:
        jobs = s.scalars(select(Job)).all()
    assert [j.status for j in jobs] == ["failed", "failed"]
    assert all("no such interpreter" in j.error for j in jobs)


def test_worker_idle_exit_and_reregistration(fast_env):
    worker.run_worker(poll_seconds=0.05, idle_exit=0.1)
    worker.run_worker(poll_seconds=0.05, idle_exit=0.1)  # same host:pid id: registered afresh, stopped again
    with session_scope() as s:
        (w,) = s.scalars(select(Worker)).all()
        assert w.stopped_at is not None
        assert queue.alive_workers(s) == []
