"""Faults survived, with real processes on the tiny model: a worker or a job process killed outright, two workers on
one database, a disk that fills up while a checkpoint is written, a job started twice by hand, a job reaped while
it still runs. Each ends with a readable status in the database and nothing half-registered."""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from factories import job_row, lora_sft_spec, write_dialogues
from sqlalchemy import func, select, update

from backend.db.engine import session_scope
from backend.db.tables import Job, ModelRecord, Worker, utcnow
from jobs import artifacts, queue
from jobs.specs import SFTSpec

REPO = Path(__file__).resolve().parent.parent
HEARTBEAT = 0.5


@pytest.fixture
def fault_env(tiny_model, studio_env, monkeypatch):
    """Quick heartbeats, one torch thread per job; the environment the worker and job processes inherit."""
    from backend.settings import reset_settings_cache

    monkeypatch.setenv("STUDIO_HEARTBEAT_SECONDS", str(HEARTBEAT))
    monkeypatch.setenv("STUDIO_JOB_THREADS", "1")
    reset_settings_cache()
    return studio_env


def sft_spec(data: Path, max_steps: int, save_steps: int = 2, **overrides) -> SFTSpec:
    return lora_sft_spec(data, max_steps, save_steps, **{"name": "fault", **overrides})


def submit(spec) -> int:
    with session_scope(write=True) as s:
        return queue.submit(s, spec).id


def dataset(data_dir: Path) -> Path:
    return write_dialogues(data_dir / "uploads" / "faults", {"train": 8, "test": 4})


def wait_for(predicate, timeout: float = 180.0, every: float = 0.05, what: str = "a condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (value := predicate()):
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def pid_alive(pid: int | None) -> bool:
    return queue._pid_alive(pid)


def start_worker(log: Path, *args: str) -> subprocess.Popen:
    with log.open("ab") as fh:
        return subprocess.Popen([sys.executable, "-m", "jobs.worker", "--poll", "0.2", *args], cwd=REPO,
                                stdout=fh, stderr=subprocess.STDOUT, env=dict(os.environ))


def checkpoint_steps(job_id: int) -> list[int]:
    return [int(p.name.rsplit("-", 1)[-1]) for p in artifacts.checkpoints(job_id)]


def models_of(job_id: int) -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(ModelRecord).where(ModelRecord.job_id == job_id))


@pytest.fixture
def reaper():
    """Processes a test started: killed at the end whatever happened."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if pid and pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


# --- reaping: only when the worker and the process are gone ----------------------------------------------------

def set_job(job_id: int, **values) -> None:
    with session_scope(write=True) as s:
        s.execute(update(Job).where(Job.id == job_id).values(**values))


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_reap_only_when_worker_and_process_are_gone_and_silent_past_the_busy_timeout(fault_env, monkeypatch):
    from backend.db.engine import BUSY_TIMEOUT_SECONDS
    from backend.settings import get_settings

    assert queue.reap_after_seconds() >= 2 * BUSY_TIMEOUT_SECONDS > get_settings().stale_after_seconds
    ids = [submit(sft_spec(dataset(fault_env), 1)) for _ in range(4)]
    host, now = __import__("socket").gethostname(), utcnow()
    with session_scope(write=True) as s:
        s.add_all([Worker(id=f"{host}:1", host=host, pid=os.getpid(), heartbeat_at=now - timedelta(seconds=600)),
                   Worker(id="elsewhere:7", host="elsewhere", pid=7, heartbeat_at=now),
                   Worker(id=f"{host}:2", host=host, pid=dead_pid(), heartbeat_at=now - timedelta(seconds=600))])
    old = now - timedelta(seconds=45)  # past the 30 s stale limit, not past twice the busy timeout
    set_job(ids[0], status="running", worker_id=f"{host}:2", heartbeat_at=old)
    with session_scope(write=True) as s:
        assert queue.reap_stale(s) == []  # a writer blocked by a lock that long is slow, not dead
    ancient = now - timedelta(seconds=600)
    set_job(ids[0], heartbeat_at=ancient)  # silent, worker row stale, worker pid gone: reaped
    set_job(ids[1], status="running", worker_id=f"{host}:1", heartbeat_at=ancient)  # worker process still here
    set_job(ids[2], status="running", worker_id="elsewhere:7", heartbeat_at=ancient)  # worker still beating
    set_job(ids[3], status="running", worker_id=f"manual:{host}:1", pid=os.getpid(), heartbeat_at=ancient)
    monkeypatch.setattr(queue, "_process_started", lambda pid: ancient - timedelta(hours=1))  # this test's process
    with session_scope(write=True) as s:
        assert queue.reap_stale(s) == [ids[0]]
    reaped = job_row(ids[0])
    assert reaped.status == "failed" and "worker and process are gone" in reaped.error
    assert [job_row(i).status for i in ids[1:]] == ["running"] * 3
    # the job's pid now belongs to a process started after the job's last heartbeat: the system reused it
    monkeypatch.setattr(queue, "_process_started", lambda pid: utcnow())
    with session_scope(write=True) as s:
        assert queue.reap_stale(s) == [ids[3]]
    assert [job_row(i).status for i in ids[1:3]] == ["running"] * 2  # worker {host}:1 started before its row


# --- a job runs once, and stops when its row says it ended -------------------------------------------------------

def test_jobs_run_refuses_a_job_that_is_already_running(fault_env):
    job_id = submit(sft_spec(dataset(fault_env), 1))
    with session_scope(write=True) as s:
        assert queue.claim(s, "some-worker") == job_id
    done = subprocess.run([sys.executable, "-m", "jobs.run", str(job_id)], check=False, cwd=REPO, capture_output=True,
                          text=True, timeout=240, env={k: v for k, v in os.environ.items() if k != "STUDIO_WORKER_ID"})
    assert done.returncode == 3, done.stderr[-2000:]
    assert "already running" in done.stderr and "some-worker" in done.stderr and "Traceback" not in done.stderr
    job = job_row(job_id)
    assert (job.status, job.worker_id, job.pid) == ("running", "some-worker", None)  # untouched
    assert not artifacts.checkpoints(job_id)


def test_a_job_whose_row_ended_meanwhile_stops_and_registers_nothing(fault_env, monkeypatch):
    from jobs.run import main as run_job

    job_id = submit(sft_spec(dataset(fault_env), max_steps=400, save_steps=0))

    def reap_when_training():
        wait_for(lambda: any(m["key"] == "loss" for m in metrics(job_id)), what="the first loss")
        with session_scope(write=True) as s:
            queue.finish(s, job_id, "failed", "reaped by test")

    t = threading.Thread(target=reap_when_training)
    t.start()
    started = time.monotonic()
    code = run_job(job_id)
    t.join()
    assert code == 1 and time.monotonic() - started < 120
    job = job_row(job_id)
    assert (job.status, job.error, job.output_model_id) == ("failed", "reaped by test", None)
    assert models_of(job_id) == 0
    assert max(m["step"] for m in metrics(job_id)) < 400  # it stopped, did not train to the end


def metrics(job_id: int) -> list[dict]:
    with session_scope() as s:
        return queue.job_metrics(s, job_id)


# --- processes killed outright -----------------------------------------------------------------------------------

def test_worker_killed_mid_training_fails_the_job_within_two_heartbeats_and_it_resumes(fault_env, tmp_path, reaper):
    from jobs.run import main as run_job

    data = dataset(fault_env)
    job_id = submit(sft_spec(data, max_steps=2000, save_steps=2))
    worker = start_worker(tmp_path / "worker.log", "--max-jobs", "1")
    reaper.append(worker.pid)
    wait_for(lambda: len(checkpoint_steps(job_id)) >= 1 and job_row(job_id).pid, what="a first checkpoint")
    child = job_row(job_id).pid
    reaper.append(child)
    os.kill(worker.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    worker.wait(30)
    wait_for(lambda: job_row(job_id).status != "running", timeout=30, every=0.02, what="the job to be marked")
    took = time.monotonic() - killed_at
    job = job_row(job_id)
    assert job.status == "failed" and "worker running this job" in job.error and "was killed" in job.error
    assert took <= 2 * HEARTBEAT + 1.0, f"marked failed {took:.2f} s after the kill (heartbeat {HEARTBEAT} s)"
    wait_for(lambda: not pid_alive(child), timeout=60, what="the orphaned job process to stop")
    assert models_of(job_id) == 0 and job.output_model_id is None
    last = checkpoint_steps(job_id)[-1]
    assert last < 2000

    resumed = submit(sft_spec(data, max_steps=last + 2, save_steps=2, resume_from_job=job_id))
    assert run_job(resumed) == 0
    done = job_row(resumed)
    assert done.status == "succeeded", done.error
    with session_scope() as s:
        meta = s.get(ModelRecord, done.output_model_id).meta
    assert meta["resumed_from"].endswith(f"checkpoint-{last}") and meta["global_step"] == last + 2
    assert sorted({m["step"] for m in metrics(resumed) if m["key"] == "loss"}) == [last + 1, last + 2]


def test_job_process_killed_is_recorded_and_the_worker_runs_the_next_job(fault_env, tmp_path, reaper):
    data = dataset(fault_env)
    first = submit(sft_spec(data, max_steps=2000, save_steps=0))
    second = submit(sft_spec(data, max_steps=1, save_steps=0, name="next"))
    worker = start_worker(tmp_path / "worker.log", "--max-jobs", "2")
    reaper.append(worker.pid)
    wait_for(lambda: any(m["key"] == "loss" for m in metrics(first)), what="the first job to train")
    child = job_row(first).pid
    os.kill(child, signal.SIGKILL)
    assert worker.wait(240) == 0, (tmp_path / "worker.log").read_text()[-3000:]
    killed = job_row(first)
    assert killed.status == "failed" and "SIGKILL" in killed.error
    nxt = job_row(second)
    assert nxt.status == "succeeded", nxt.error
    assert nxt.worker_id == killed.worker_id


def test_two_workers_on_one_database_claim_each_job_once(fault_env, tmp_path, reaper):
    ids = []
    with session_scope(write=True) as s:  # jobs whose spec fails at once in the job process: cheap to run
        for i in range(4):
            job = Job(kind="sft", name=f"cheap {i}", spec={"kind": "sft", "no_such_field": i}, status="queued")
            s.add(job)
            s.flush()
            ids.append(job.id)
    logs = [tmp_path / "w1.log", tmp_path / "w2.log"]
    workers = [start_worker(log, "--idle-exit", "4") for log in logs]
    reaper.extend(w.pid for w in workers)
    for w in workers:
        assert w.wait(300) == 0
    out = "".join(log.read_text() for log in logs)
    for job_id in ids:
        assert out.count(f"running job {job_id}\n") == 1, out[-3000:]
        job = job_row(job_id)
        assert job.status == "failed" and "no_such_field" in job.error
        assert artifacts.log_path(job_id).read_text().count(f"job {job_id} failed") == 1


# --- disk full while a checkpoint is written -----------------------------------------------------------------

def can_mount_tmpfs() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                            "mount -t tmpfs -o size=64k tmpfs /tmp"], check=False, capture_output=True)
    return probe.returncode == 0


def checkpoint_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


INJECT_ENOSPC = """
import errno, sys
import torch
real_save = torch.save
def save(obj, f, *args, **kwargs):  # the disk fills up during the second checkpoint
    if "checkpoint-4" in str(f):
        raise OSError(errno.ENOSPC, "No space left on device", str(f))
    return real_save(obj, f, *args, **kwargs)
torch.save = save
from jobs.run import main
sys.exit(main(int(sys.argv[1])))
"""


def test_disk_full_during_a_checkpoint_fails_readably_keeps_the_last_checkpoint(fault_env, tmp_path):
    """The job process writes its checkpoints to a tmpfs with room for one checkpoint and a half, mounted in its own
    user+mount namespace, so the second save hits ENOSPC for real. Where such a mount is not allowed, the job
    process's ``torch.save`` raises ENOSPC during the second checkpoint instead (the same error, injected)."""
    from jobs.run import main as run_job

    data = dataset(fault_env)
    job_id = submit(sft_spec(data, max_steps=40, save_steps=2))
    folder = artifacts.job_dir(job_id) / "checkpoints"
    folder.mkdir(parents=True)
    if can_mount_tmpfs():
        probe = submit(sft_spec(data, max_steps=1, save_steps=1, name="probe"))  # how big one checkpoint is
        assert run_job(probe) == 0
        one = checkpoint_bytes(artifacts.checkpoints(probe)[0])
        size_kb = int(one * 1.5) // 1024 + 1
        kept = tmp_path / "kept"  # what the tmpfs held when the job ended, copied out before the namespace goes
        script = (f'mount -t tmpfs -o size={size_kb}k tmpfs "{folder}" && "$0" -m jobs.run {job_id}; code=$?; '
                  f'cp -a "{folder}" "{kept}"; exit $code')
        command = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, sys.executable]
    else:
        kept, command = folder, [sys.executable, "-c", INJECT_ENOSPC, str(job_id)]
    done = subprocess.run(command, check=False, cwd=REPO, capture_output=True, text=True, timeout=300)
    job = job_row(job_id)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert job.status == "failed" and "disk is full" in job.error and "Traceback" not in job.error, job.error
    assert "resume it from its last complete checkpoint (checkpoint-2)" in job.error
    assert job.output_model_id is None and models_of(job_id) == 0  # no half-written model registered
    assert not (artifacts.job_dir(job_id) / "model").exists()
    complete = sorted(p.name for p in kept.glob("checkpoint-*") if (p / "trainer_state.json").is_file())
    assert complete == ["checkpoint-2"], sorted(p.name for p in kept.iterdir())

    if kept != folder:
        shutil.rmtree(folder)
        shutil.copytree(kept, folder)  # put back what the tmpfs held (the namespace and its mount are gone)
    resumed = submit(sft_spec(data, max_steps=3, save_steps=0, resume_from_job=job_id))  # the intact one resumes
    assert run_job(resumed) == 0
    job = job_row(resumed)
    assert job.status == "succeeded", job.error
    with session_scope() as s:
        assert s.get(ModelRecord, job.output_model_id).meta["resumed_from"].endswith(f"job-{job_id}/checkpoints/"
                                                                                      "checkpoint-2")


def test_worker_stops_a_child_that_runs_on_after_its_row_ended(fault_env, monkeypatch):
    """A job process stuck outside a step boundary does not see its row end: its worker terminates it."""
    from jobs import worker

    monkeypatch.setattr(worker, "child_command", lambda job_id: [sys.executable, "-c", "import time; time.sleep(60)"])
    with session_scope(write=True) as s:
        job = Job(kind="eval", name="stuck", spec={"kind": "eval"}, status="queued")
        s.add(job)
        s.flush()
        job_id = job.id
        assert queue.claim(s, "test-worker") == job_id
    threading.Timer(0.5, lambda: set_job(job_id, status="failed", error="ended elsewhere")).start()
    began = time.monotonic()
    assert worker.run_job_process(job_id, "test-worker", cancel_grace=0.5) == -signal.SIGTERM
    assert time.monotonic() - began < 15
    assert (job_row(job_id).status, job_row(job_id).error) == ("failed", "ended elsewhere")
    assert "its process still runs" in artifacts.read_log_tail(job_id)
