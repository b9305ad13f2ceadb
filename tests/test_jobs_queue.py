"""The job queue on a temp SQLite database: submit checks, atomic claim (threads and processes), cancel,
finish, stale-heartbeat reaping, metrics and logs."""

import json
import multiprocessing as mp
import queue as stdqueue
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from backend.db.engine import session_scope
from backend.db.tables import Job, JobMetric, utcnow
from backend.errors import StudioError
from jobs import artifacts, queue
from jobs.specs import EvalSpec, SFTSpec

pytestmark = pytest.mark.databases("sqlite", "postgres")  # tests/conftest.py: one variant per backend


def write_dataset(folder, n=4, splits=("train", "test")):
    folder.mkdir(parents=True, exist_ok=True)
    for split in splits:
        rows = [{"dialogue": f"#Person1#: hello {i}\n#Person2#: thanks {i}", "summary": f"They greet {i}."}
                for i in range(n)]
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return folder


def add_jobs(n: int, kind: str = "eval") -> list[int]:
    """Insert queued rows directly (the claim tests do not need real specs)."""
    with session_scope(write=True) as s:
        jobs = [Job(kind=kind, name=f"j{i}", spec={"kind": kind}, status="queued") for i in range(n)]
        s.add_all(jobs)
        s.flush()
        return [j.id for j in jobs]


def get(job_id: int) -> Job:
    with session_scope() as s:
        return s.get(Job, job_id)


def count_jobs() -> int:
    with session_scope() as s:
        return s.scalar(select(func.count(Job.id)))


def set_status(job_id: int, **values) -> None:
    with session_scope(write=True) as s:
        s.execute(update(Job).where(Job.id == job_id).values(**values))


# --- submit ----------------------------------------------------------------------------------------

def test_submit_queues(tiny_model, tmp_path):
    data = write_dataset(tmp_path / "data")
    with session_scope(write=True) as s:
        job = queue.submit(s, EvalSpec(model="tiny", dataset=str(data), name="my eval"))
        job_id = job.id
    job = get(job_id)
    assert (job.status, job.kind, job.name) == ("queued", "eval", "my eval")
    assert job.spec["model"] == "tiny" and job.spec["kind"] == "eval"
    assert not job.cancel_requested and job.started_at is None


@pytest.mark.parametrize(("spec", "match"), [
    (lambda d: EvalSpec(model="no-such-model", dataset=d), "Unknown model 'no-such-model'"),
    (lambda d: EvalSpec(model="tiny", dataset=d + "/nope"), "not found"),
    (lambda d: EvalSpec(model="tiny", dataset=d, split="validation"), "no 'validation' split"),
    (lambda d: SFTSpec(base_model="missing-base", dataset=d), "Unknown model"),
    (lambda d: SFTSpec(base_model="tiny", dataset="demo:nothing"), "no demo dataset"),
])
def test_submit_rejects_and_writes_nothing(tiny_model, tmp_path, spec, match):
    data = str(write_dataset(tmp_path / "data"))
    with pytest.raises(StudioError, match=match), session_scope(write=True) as s:
        queue.submit(s, spec(data))
    assert count_jobs() == 0


# --- claim -----------------------------------------------------------------------------------------

def test_claim_oldest_first_then_none(studio_env):
    ids = add_jobs(3)
    with session_scope(write=True) as s:
        claimed = [queue.claim(s, "w1") for _ in range(4)]
    assert claimed == ids + [None]
    job = get(ids[0])
    assert job.status == "running" and job.worker_id == "w1"
    assert job.started_at is not None and job.heartbeat_at is not None


def test_claim_skips_non_queued(studio_env):
    a, b, _ = add_jobs(3)
    with session_scope(write=True) as s:
        queue.request_cancel(s, a)
    with session_scope(write=True) as s:
        assert queue.claim(s, "w") == b


def _claim_all(worker_id: str, url: str | None, start, results, write: bool = True) -> None:
    start.wait(30)
    mine = []
    while True:
        with session_scope(write=write, url=url) as s:
            job_id = queue.claim(s, worker_id)
        if job_id is None:
            break
        mine.append(job_id)
    results.put((worker_id, mine))


def _assert_partition(results: dict[str, list[int]], ids: list[int]) -> None:
    claimed = [j for mine in results.values() for j in mine]
    assert sorted(claimed) == sorted(ids), "every job claimed exactly once"
    assert len(set(claimed)) == len(claimed)
    with session_scope() as s:
        rows = s.execute(select(Job.id, Job.status, Job.worker_id)).all()
    assert all(status == "running" for _, status, _ in rows)
    assert {job_id: wid for job_id, _, wid in rows} == {j: w for w, mine in results.items() for j in mine}


@pytest.mark.parametrize("write", [True, False], ids=["begin-immediate", "deferred"])
def test_claim_is_atomic_across_threads(studio_env, write):
    """Also with plain (deferred) transactions: the single UPDATE … RETURNING is atomic by itself."""

    ids = add_jobs(60)
    start, results = threading.Event(), stdqueue.Queue()
    threads = [threading.Thread(target=_claim_all, args=(f"t{i}", None, start, results, write)) for i in range(4)]
    for t in threads:
        t.start()
    start.set()
    for t in threads:
        t.join(60)
    got = dict(results.get_nowait() for _ in threads)
    _assert_partition(got, ids)


def test_claim_is_atomic_across_processes(studio_env):
    from backend.settings import get_settings

    ids = add_jobs(60)
    url = get_settings().url
    ctx = mp.get_context("spawn")  # fresh interpreters: no SQLite connection inherited through fork
    start, results = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_claim_all, args=(f"p{i}", url, start, results)) for i in range(3)]
    for p in procs:
        p.start()
    start.set()
    got = {}
    deadline = time.monotonic() + 180  # spawned interpreters start slowly on a loaded CPU
    while len(got) < len(procs):
        assert time.monotonic() < deadline, f"claimers did not report in 180 s: exit codes {[p.exitcode for p in procs]}"
        try:
            got.update([results.get(timeout=1)])
        except stdqueue.Empty:
            dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            assert not dead, f"a claimer process died before reporting (exit codes {dead})"
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    _assert_partition(got, ids)


# --- cancel / finish / heartbeat / reap --------------------------------------------------------------

def test_cancel_queued_is_immediate(studio_env):
    (job_id,) = add_jobs(1)
    with session_scope(write=True) as s:
        assert queue.request_cancel(s, job_id) == "cancelled"
    job = get(job_id)
    assert job.status == "cancelled" and job.finished_at is not None
    with session_scope(write=True) as s:  # idempotent
        assert queue.request_cancel(s, job_id) == "cancelled"
        assert queue.claim(s, "w") is None


def test_cancel_running_requests(studio_env):
    (job_id,) = add_jobs(1)
    with session_scope(write=True) as s:
        queue.claim(s, "w")
    with session_scope() as s:
        assert not queue.is_cancel_requested(s, job_id)
    with session_scope(write=True) as s:
        assert queue.request_cancel(s, job_id) == "running"
    job = get(job_id)
    assert job.status == "running" and job.cancel_requested and job.finished_at is None
    with session_scope() as s:
        assert queue.is_cancel_requested(s, job_id)


def test_cancel_finished_or_unknown_raises(studio_env):
    (job_id,) = add_jobs(1)
    set_status(job_id, status="succeeded")
    with pytest.raises(StudioError, match="already succeeded"), session_scope(write=True) as s:
        queue.request_cancel(s, job_id)
    assert get(job_id).status == "succeeded"
    with pytest.raises(StudioError, match="no job 999"), session_scope(write=True) as s:
        queue.request_cancel(s, 999)


def test_finish_keeps_first_final_status(studio_env):
    (job_id,) = add_jobs(1)
    with session_scope(write=True) as s:
        queue.claim(s, "w")
        queue.finish(s, job_id, "failed", "boom")
    with session_scope(write=True) as s:
        queue.finish(s, job_id, "succeeded")
        queue.finish(s, job_id, "cancelled")
    job = get(job_id)
    assert (job.status, job.error) == ("failed", "boom")
    with pytest.raises(ValueError), session_scope(write=True) as s:
        queue.finish(s, job_id, "running")


def test_heartbeat_only_touches_running(studio_env):
    a, b = add_jobs(2)
    with session_scope(write=True) as s:
        queue.claim(s, "w")
    old = utcnow() - timedelta(minutes=5)
    set_status(a, heartbeat_at=old)
    with session_scope(write=True) as s:
        queue.heartbeat_job(s, a, pid=1234)
        queue.heartbeat_job(s, b, pid=99)
    assert get(a).heartbeat_at > old and get(a).pid == 1234
    assert get(b).heartbeat_at is None and get(b).pid is None


def test_reap_stale(studio_env):
    stale, fresh, waiting = add_jobs(3)
    with session_scope(write=True) as s:
        queue.claim(s, "dead-worker")
        queue.claim(s, "live-worker")
    set_status(stale, heartbeat_at=utcnow() - timedelta(seconds=120))
    with session_scope(write=True) as s:
        assert queue.reap_stale(s, stale_after=30) == [stale]
    job = get(stale)
    assert job.status == "failed" and "heartbeat" in job.error and job.finished_at is not None
    assert get(fresh).status == "running"
    assert get(waiting).status == "queued"
    with session_scope(write=True) as s:  # nothing left to reap; default threshold from settings
        assert queue.reap_stale(s) == []


# --- metrics and logs --------------------------------------------------------------------------------

def test_metrics_round_trip(studio_env):
    (job_id,) = add_jobs(1)
    with session_scope(write=True) as s:
        queue.log_metrics(s, job_id, 0, {"trainable_params": 1000})
        queue.log_metrics(s, job_id, 1, {"loss": 2.5, "grad_norm": float("nan"), "lr": float("inf")})
        queue.log_metrics(s, job_id, 2, {"loss": 2.0})
    with session_scope() as s:
        rows = queue.job_metrics(s, job_id)
        assert s.scalar(select(func.count(JobMetric.id))) == 3
    assert rows == [{"step": 0, "key": "trainable_params", "value": 1000.0},
                    {"step": 1, "key": "loss", "value": 2.5},
                    {"step": 2, "key": "loss", "value": 2.0}]


def test_log_tail(studio_env):
    (job_id,) = add_jobs(1)
    assert artifacts.read_log_tail(job_id) == ""
    path = artifacts.log_path(job_id)
    path.parent.mkdir(parents=True)
    path.write_text("start\n" + "x" * 100 + "\nend\n", encoding="utf-8")
    assert artifacts.read_log_tail(job_id).startswith("start")
    assert artifacts.read_log_tail(job_id, max_bytes=4) == "end\n"


def test_list_and_get(studio_env):
    ids = add_jobs(3)
    with session_scope() as s:
        assert [j.id for j in queue.list_jobs(s)] == ids[::-1]
        assert queue.get_job(s, ids[0]).name == "j0"
        with pytest.raises(StudioError):
            queue.get_job(s, 12345)


# --- CLI: studio job submit | list | cancel | logs ---------------------------------------------------

def cli(capsys, *argv) -> tuple[int, str, str]:
    from cli.main import main

    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_job_flow(tiny_model, tmp_path, capsys):
    data = write_dataset(tmp_path / "data")
    spec = tmp_path / "eval.yaml"
    spec.write_text(f"kind: eval\nname: cli eval\nmodel: tiny\ndataset: {data}\nmax_examples: 2\n", encoding="utf-8")
    code, out, err = cli(capsys, "job", "submit", str(spec))
    assert code == 0 and out.strip() == "queued job 1 (eval)", err
    assert get(1).status == "queued"

    code, out, _ = cli(capsys, "job", "list")
    assert code == 0
    (line,) = out.strip().splitlines()
    assert line.split()[:3] == ["1", "eval", "queued"] and "cli eval" in line

    artifacts.log_path(1).parent.mkdir(parents=True)
    artifacts.log_path(1).write_text("loading model\ngenerated 2/2\n", encoding="utf-8")
    code, out, _ = cli(capsys, "job", "logs", "1")
    assert code == 0 and out == "loading model\ngenerated 2/2\n"

    code, out, _ = cli(capsys, "job", "cancel", "1")
    assert code == 0 and out.strip() == "job 1: cancelled"
    assert get(1).status == "cancelled"
    code, out, _ = cli(capsys, "job", "list")
    assert "cancelled" in out


def test_cli_cancel_running_job(studio_env, capsys):
    (job_id,) = add_jobs(1)
    with session_scope(write=True) as s:
        queue.claim(s, "w")
    code, out, _ = cli(capsys, "job", "cancel", str(job_id))
    assert code == 0 and "cancel requested" in out
    assert get(job_id).cancel_requested


@pytest.mark.parametrize(("content", "expect"), [
    ("kind: sft\nlora: {r: 0}\n", "lora.r"),
    ("kind: eval\ndecoding: {num_return_sequences: 4}\n", "num_return_sequences"),
    ("kind: telepathy\n", "unknown job kind"),
    ("kind: sft\nlora: {r: [\n", "not valid YAML"),
    ("kind: eval\nmodel: no-such-model\n", "Unknown model"),
    (None, "No spec file"),
])
def test_cli_bad_spec_exits_2_with_one_line(studio_env, tmp_path, capsys, content, expect):
    spec = tmp_path / "spec.yaml"
    if content is not None:
        spec.write_text(content, encoding="utf-8")
    code, out, err = cli(capsys, "job", "submit", str(spec))
    assert code == 2
    assert out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and expect in err
    assert "Traceback" not in err
    assert count_jobs() == 0


def test_cli_unknown_job(studio_env, capsys):
    for cmd in ("cancel", "logs"):
        code, _, err = cli(capsys, "job", cmd, "42")
        assert code == 2 and "no job 42" in err


def test_cli_cancel_finished_job(studio_env, capsys):
    (job_id,) = add_jobs(1)
    set_status(job_id, status="failed")
    code, _, err = cli(capsys, "job", "cancel", str(job_id))
    assert code == 2 and "already failed" in err


def test_reap_stale_honours_a_pending_cancel(studio_env):
    a, b = add_jobs(2)
    with session_scope(write=True) as s:
        queue.claim(s, "w")
        queue.claim(s, "w")
        queue.request_cancel(s, a)
    set_status(a, heartbeat_at=utcnow() - timedelta(minutes=5))
    set_status(b, heartbeat_at=utcnow() - timedelta(minutes=5))
    with session_scope(write=True) as s:
        assert queue.reap_stale(s, stale_after=30) == [a, b]
    assert (get(a).status, get(a).error) == ("cancelled", None)
    assert get(b).status == "failed"
