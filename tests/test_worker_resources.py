"""Workers that know their devices, jobs that ask for them: registration, the claim's matching, GPU splitting on one
host, and the reason a queued job waits (Jobs page and `studio job list`)."""

import os
import socket
from datetime import timedelta

import pytest

from backend.db.engine import session_scope
from backend.db.tables import Job, Worker, utcnow
from backend.errors import StudioError
from jobs import queue, resources, worker
from jobs.resources import Need, Offer

A100 = {"name": "A100", "memory_gb": 80.0}
T4 = {"name": "T4", "memory_gb": 16.0}


def add_worker(worker_id: str, devices=(), labels=(), host: str = "box", age: float = 0.0) -> None:
    with session_scope(write=True) as s:
        s.add(Worker(id=worker_id, host=host, pid=1, heartbeat_at=utcnow() - timedelta(seconds=age), cpu_count=8,
                     ram_gb=64.0, devices=[{"index": i, **d} for i, d in enumerate(devices)], labels=list(labels)))


def add_job(resources_block: dict | None = None, name: str = "j") -> int:
    spec = {"kind": "sft"} | ({"resources": resources_block} if resources_block is not None else {})
    with session_scope(write=True) as s:
        job = Job(kind="sft", name=name, spec=spec, status="queued")
        s.add(job)
        s.flush()
        return job.id


def claim(worker_id: str) -> int | None:
    with session_scope(write=True) as s:
        return queue.claim(s, worker_id)


# --- matching ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("block, offer, lacks", [
    ({"devices": "cpu"}, Offer(), None),
    ({"devices": "cpu"}, Offer(devices=[{"index": 0, **A100}]), None),  # a GPU worker runs CPU jobs too
    ({"devices": "cuda"}, Offer(), "1 GPU"),
    ({"devices": "cuda", "gpus": 2}, Offer(devices=[{"index": 0, **A100}]), "2 GPUs"),
    ({"devices": "cuda", "gpus": 2}, Offer(devices=[{"index": 0, **A100}, {"index": 1, **A100}]), None),
    ({"devices": "cuda", "min_gpu_memory_gb": 40}, Offer(devices=[{"index": 0, **T4}]), "1 GPU of ≥ 40 GiB"),
    ({"devices": "cuda", "min_gpu_memory_gb": 40}, Offer(devices=[{"index": 0, **T4}, {"index": 1, **A100}]), None),
    ({"devices": "cpu", "labels": ["us-east"]}, Offer(labels=["eu"]), "label us-east"),
    ({"devices": "cpu", "labels": ["us-east"]}, Offer(labels=["eu", "us-east"]), None),
])
def test_unmet_names_what_a_worker_lacks(block, offer, lacks):
    assert resources.unmet(resources.job_need({"resources": block}, gpu_worker_alive=False), offer) == lacks


def test_auto_asks_for_a_gpu_only_when_a_live_worker_has_one():
    assert resources.job_need({}, gpu_worker_alive=False) == Need("cpu", 0, None, ())
    assert resources.job_need({}, gpu_worker_alive=True) == Need("cuda", 1, None, ())
    assert resources.job_need({"resources": {"gpus": 2}}, gpu_worker_alive=False).gpus == 2  # gpus implies cuda
    need = Need("cuda", 1, 40, ())
    assert resources.assigned_gpus(need, Offer(devices=[{"index": 3, **T4}, {"index": 5, **A100}])) == [5]


# --- the claim ---------------------------------------------------------------------------------------------------

def test_claim_takes_the_oldest_job_this_worker_can_run(studio_env):
    add_worker("cpu-box")
    gpu_job = add_job({"devices": "cuda"}, "needs-gpu")
    cpu_job = add_job({"devices": "cpu"}, "cpu")
    auto_job = add_job(None, "auto")
    assert claim("cpu-box") == cpu_job  # the GPU job is passed over, not blocking the queue
    assert claim("cpu-box") == auto_job  # no live GPU worker: auto means the CPU
    assert claim("cpu-box") is None
    add_worker("gpu-box", devices=[A100])
    assert claim("gpu-box") == gpu_job
    with session_scope() as s:
        assert queue.placement(s, gpu_job, "gpu-box") == ("cuda", [0])
        assert queue.placement(s, cpu_job, "gpu-box") == ("cpu", [])


def test_auto_jobs_wait_for_the_gpu_worker_when_one_is_alive(studio_env):
    add_worker("cpu-box")
    add_worker("gpu-box", devices=[A100])
    job = add_job(None)
    assert claim("cpu-box") is None
    assert claim("gpu-box") == job


def test_labels_route_jobs(studio_env):
    add_worker("eu", labels=["eu"])
    add_worker("us", labels=["us-east", "gpu-a100"])
    job = add_job({"devices": "cpu", "labels": ["us-east"]})
    assert claim("eu") is None
    assert claim("us") == job


# --- why a job waits ---------------------------------------------------------------------------------------------

def reasons() -> dict[int, str]:
    with session_scope() as s:
        return queue.waiting_reasons(s, queue.list_jobs(s))


def test_waiting_reasons(studio_env):
    two_gpus = add_job({"devices": "cuda", "gpus": 2})
    assert "no worker is running" in reasons()[two_gpus]
    add_worker("cpu-box", host="cpu-host")
    labelled = add_job({"devices": "cpu", "labels": ["gpu-a100"]})
    runnable = add_job({"devices": "cpu"})
    why = reasons()
    assert why[two_gpus] == "waiting for a worker with 2 GPUs — none registered (live workers: cpu only)"
    assert why[labelled].startswith("waiting for a worker with a CPU (label gpu-a100) — live workers: cpu-host")
    assert runnable not in why  # next in line, nothing to explain
    add_worker("stale", devices=[A100, A100], age=3600)  # a dead worker's GPUs do not count
    assert "none registered" in reasons()[two_gpus]


def test_studio_job_list_shows_the_reason(studio_env, capsys):
    from tests.factories import run_cli

    add_worker("cpu-box")
    add_job({"devices": "cuda", "gpus": 2}, "big")
    code, out, _ = run_cli(["job", "list"], capsys)
    assert code == 0 and "waiting for a worker with 2 GPUs — none registered" in out


def test_jobs_page_shows_workers_and_why_a_job_waits(studio):
    from tests.page_support import page

    add_worker("gpu-less", host="laptop", labels=["home"])
    job = add_job({"devices": "cuda", "gpus": 1}, "wants-a-gpu")
    at = page("page_jobs.py")
    assert not at.exception
    warnings = " ".join(w.value for w in at.warning)
    assert f"Job #{job}: waiting for a worker with 1 GPU — none registered" in warnings
    frames = [df.value for df in at.dataframe]
    assert any("gpu-less" in set(df.get("worker", [])) for df in frames)


# --- registration: what a worker offers -------------------------------------------------------------------------

def test_register_records_cores_ram_gpus_and_labels(studio_env, monkeypatch):
    monkeypatch.setenv(resources.FAKE_GPUS_ENV, "A100:80,A100:80,T4:16")
    monkeypatch.setenv(resources.LABELS_ENV, "gpu-a100, us-east")
    offer = worker._register("box:1", gpus=[0, 2])
    assert [d["index"] for d in offer.devices] == [0, 2] and offer.labels == ["gpu-a100", "us-east"]
    with session_scope() as s:
        row = s.get(Worker, "box:1")
        assert row.cpu_count == os.cpu_count() and row.ram_gb > 0
        assert [d["name"] for d in row.devices] == ["A100", "T4"]


def test_workers_on_one_host_split_its_gpus(studio_env, monkeypatch):
    monkeypatch.setenv(resources.FAKE_GPUS_ENV, "A100:80,A100:80,A100:80")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    first = worker._register(f"{socket.gethostname()}:1", gpus=[0, 1])
    second = worker._register(f"{socket.gethostname()}:2")  # takes what is left
    assert [d["index"] for d in first.devices] == [0, 1] and [d["index"] for d in second.devices] == [2]
    with pytest.raises(StudioError, match="GPU 1 is already offered by another worker"):
        worker._register(f"{socket.gethostname()}:3", gpus=[1])
    with pytest.raises(StudioError, match="no GPU 7"):
        worker._register(f"{socket.gethostname()}:4", gpus=[7])


def test_cuda_visible_devices_limits_the_offer(studio_env, monkeypatch):
    monkeypatch.setenv(resources.FAKE_GPUS_ENV, "A100:80,A100:80")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert [d["index"] for d in worker._register("box:9").devices] == [1]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert worker._register("box:10").devices == []


@pytest.mark.parametrize("labels", ["a b", "x,<script>", "ü"])
def test_bad_worker_labels_are_one_clear_line(studio_env, monkeypatch, capsys, labels):
    monkeypatch.setenv(resources.LABELS_ENV, labels)
    with pytest.raises(SystemExit) as exit_info:
        worker.main(["--max-jobs", "0"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: STUDIO_WORKER_LABELS:") and "\n" not in err


def test_bad_gpu_list_is_refused():
    with pytest.raises(StudioError, match="GPU indices separated by commas"):
        resources.parse_gpu_list("first")
    assert resources.parse_gpu_list("") == [] and resources.parse_gpu_list(None) is None


# --- artifacts on shared storage ---------------------------------------------------------------------------------

def test_job_outputs_are_stored_relative_to_the_data_dir(studio_env, monkeypatch, tmp_path):
    import shutil

    from backend.models import store
    from backend.settings import get_settings

    out = studio_env / "artifacts" / "job-7" / "model"
    out.mkdir(parents=True)
    (out / "config.json").write_text("{}")
    own = tmp_path / "my-folder"
    own.mkdir()
    with session_scope(write=True) as s:
        store.register_model(s, "made-by-job", str(out), kind="full", source="job")
        store.register_model(s, "mine", str(own), source="local")
        store.register_model(s, "hub-one", "org/model", source="hub")
    with session_scope() as s:
        stored = {r.name: r.path for r in s.query(store.ModelRecord)}
        assert stored["made-by-job"] == "artifacts/job-7/model"  # relative: the same on every host
        assert stored["mine"] == str(own) and stored["hub-one"] == "org/model"
        assert store.resolve(s, "made-by-job").path == str(out)
    # another host mounts the shared data dir elsewhere: the same rows find the files there
    moved = tmp_path / "mounted-elsewhere"
    shutil.copytree(studio_env, moved)
    monkeypatch.setenv("STUDIO_DATA_DIR", str(moved))
    get_settings.cache_clear()
    with session_scope() as s:
        assert store.resolve(s, "made-by-job").path == str(moved / "artifacts" / "job-7" / "model")


def test_a_worker_without_the_input_model_fails_the_job_naming_the_path(studio_env):
    from backend.models import store
    from jobs import run

    with session_scope(write=True) as s:
        store.register_model(s, "elsewhere", str(studio_env / "artifacts" / "job-3" / "model"), kind="full",
                             source="job")
        job = Job(kind="eval", name="needs-elsewhere", status="queued",
                  spec={"kind": "eval", "model": "elsewhere", "dataset": "demo:dialogsum"})
        s.add(job)
        s.flush()
        job_id = job.id
    assert run.main(job_id) == 1
    with session_scope() as s:
        row = s.get(Job, job_id)
        assert row.status == "failed"
        assert f"files are missing at {studio_env / 'artifacts' / 'job-3' / 'model'}" in row.error
        assert "same data dir" in row.error
