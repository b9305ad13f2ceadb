"""What a worker offers and what a job needs: the match that decides who may claim a job, and why a job waits.

A worker registers its offer at start-up (host, CPU cores, RAM, the CUDA devices it may use, its labels). A job's
spec carries a ``resources`` block (``jobs.specs.ResourcesArgs``). ``unmet`` says what a worker lacks for a job
(None = it can run it); ``waiting_reason`` turns that into the sentence the Jobs page and ``studio job list`` show
for a queued job that no live worker can run.

``devices: auto`` asks for a GPU when any live worker has one (and the CPU otherwise), so the same preset runs on a
laptop and on a GPU box; it is resolved when the job is claimed.
"""

import fcntl
import os
import re
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend.errors import StudioError

LABELS_ENV = "STUDIO_WORKER_LABELS"
# Test and demo hook: pretend these CUDA devices exist ("name:GiB,name:GiB"), instead of asking nvidia-smi.
FAKE_GPUS_ENV = "STUDIO_FAKE_GPUS"
LABEL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")
MAX_LABELS = 16


@dataclass(frozen=True)
class Offer:
    """What one worker can give a job."""

    host: str = ""
    cpu_count: int = 0
    ram_gb: float = 0.0
    devices: list[dict[str, Any]] = field(default_factory=list)  # [{"index", "name", "memory_gb"}]
    labels: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, worker: Any) -> "Offer":
        """The offer recorded in a ``Worker`` row (older rows: CPU only, no labels)."""
        return cls(host=worker.host, cpu_count=worker.cpu_count or 0, ram_gb=worker.ram_gb or 0.0,
                   devices=list(worker.devices or []), labels=list(worker.labels or []))

    def describe(self) -> str:
        gpus = ", ".join(f"{d['name']} {d['memory_gb']:g} GiB" for d in self.devices) or "cpu only"
        return f"{self.host} ({gpus}; labels: {', '.join(self.labels) or '-'})"


@dataclass(frozen=True)
class Need:
    """A job's resources block, with ``auto`` resolved."""

    devices: str  # "cpu" | "cuda"
    gpus: int  # CUDA devices on one worker (0 for cpu)
    min_gpu_memory_gb: float | None
    labels: tuple[str, ...]

    def describe(self) -> str:
        parts = [f"{self.gpus} GPU{'s' if self.gpus != 1 else ''}" if self.devices == "cuda" else "a CPU"]
        if self.devices == "cuda" and self.min_gpu_memory_gb:
            parts.append(f"≥ {self.min_gpu_memory_gb:g} GiB each")
        if self.labels:
            parts.append(f"label{'s' if len(self.labels) > 1 else ''} {', '.join(self.labels)}")
        return " with ".join(parts[:1]) + (f" ({'; '.join(parts[1:])})" if parts[1:] else "")


def parse_labels(text: str | None) -> list[str]:
    """``STUDIO_WORKER_LABELS``: comma-separated names of letters, digits, ``.``, ``_`` and ``-``."""
    labels = [part.strip() for part in (text or "").split(",") if part.strip()]
    bad = [label for label in labels if not LABEL_PATTERN.match(label)]
    if bad:
        raise StudioError(f"{LABELS_ENV}: {bad[0]!r} is not a label: use letters, digits, '.', '_' and '-' "
                          "(up to 40 characters), separated by commas, e.g. gpu-a100,us-east.")
    if len(labels) > MAX_LABELS:
        raise StudioError(f"{LABELS_ENV}: {len(labels)} labels; at most {MAX_LABELS}.")
    return sorted(set(labels))


def parse_gpu_list(text: str | None) -> list[int] | None:
    """``--gpus 0,1`` / ``CUDA_VISIBLE_DEVICES``: device indices, or None when not given ("" = no GPU)."""
    if text is None:
        return None
    try:
        return sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise StudioError(f"--gpus {text!r}: give GPU indices separated by commas, e.g. 0,1 (or '' for none)."
                          ) from None


def discover_gpus() -> list[dict[str, Any]]:
    """The CUDA devices of this host, from ``nvidia-smi`` (no torch import in the worker); [] without one."""
    fake = os.environ.get(FAKE_GPUS_ENV)
    if fake is not None:
        devices = []
        for index, part in enumerate(p for p in fake.split(",") if p.strip()):
            name, _, memory = part.rpartition(":")
            devices.append({"index": index, "name": name or "GPU", "memory_gb": float(memory)})
        return devices
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index,name,memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    devices = []
    for line in out.strip().splitlines():
        index, name, memory_mib = (part.strip() for part in line.split(","))
        devices.append({"index": int(index), "name": name, "memory_gb": round(float(memory_mib) / 1024, 1)})
    return devices


def ram_gb() -> float:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        return 0.0


def choose_gpus(found: list[dict[str, Any]], asked: list[int] | None, taken: set[int]) -> list[dict[str, Any]]:
    """The devices this worker offers: the ones asked for (``--gpus``; default all found) not already offered by
    another live worker on this host. Asking for a device that does not exist, or that another worker holds, is
    an error: two workers sharing a GPU would run out of memory together."""
    by_index = {d["index"]: d for d in found}
    if asked is None:
        return [d for d in found if d["index"] not in taken]
    missing = [i for i in asked if i not in by_index]
    if missing:
        have = ", ".join(str(i) for i in by_index) or "none"
        raise StudioError(f"--gpus {','.join(map(str, asked))}: this host has no GPU {missing[0]} (GPUs: {have}).")
    busy = [i for i in asked if i in taken]
    if busy:
        raise StudioError(f"--gpus: GPU {busy[0]} is already offered by another worker on this host; give each "
                          "worker its own GPUs (e.g. --gpus 0 and --gpus 1).")
    return [by_index[i] for i in asked]


def gpu_lock(data_dir: Path):
    """An exclusive lock held while a worker on this host picks its GPUs, so two starting workers never pick the
    same one. Returns the open file (closing it releases the lock)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = (data_dir / f"gpus-{socket.gethostname()}.lock").open("w")
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def job_need(spec: dict[str, Any], gpu_worker_alive: bool) -> Need:
    """The resources a stored spec asks for; ``auto`` = cuda when a live worker has a GPU."""
    block = spec.get("resources") or {}
    devices = block.get("devices", "auto")
    gpus = int(block.get("gpus") or 0)
    if devices == "auto":  # QLoRA's 4/8-bit kernels (bitsandbytes) run on CUDA only
        quantized = spec.get("quantization", "none") != "none"
        devices = "cuda" if gpus or gpu_worker_alive or quantized else "cpu"
    if devices == "cuda":
        gpus = max(gpus, 1)
    else:
        gpus = 0
    return Need(devices=devices, gpus=gpus, min_gpu_memory_gb=block.get("min_gpu_memory_gb"),
                labels=tuple(block.get("labels") or ()))


def unmet(need: Need, offer: Offer) -> str | None:
    """What ``offer`` lacks for ``need`` (a short phrase), or None when the worker can run the job."""
    missing = [label for label in need.labels if label not in offer.labels]
    if missing:
        return f"label {missing[0]}"
    if need.devices == "cpu":
        return None
    usable = [d for d in offer.devices
              if not need.min_gpu_memory_gb or d["memory_gb"] >= need.min_gpu_memory_gb]
    if len(usable) < need.gpus:
        return f"{need.gpus} GPU{'s' if need.gpus > 1 else ''}" + (
            f" of ≥ {need.min_gpu_memory_gb:g} GiB" if need.min_gpu_memory_gb else "")
    return None


def assigned_gpus(need: Need, offer: Offer) -> list[int]:
    """The device indices a claimed job gets on this worker (the first ``need.gpus`` that fit)."""
    usable = [d["index"] for d in offer.devices
              if not need.min_gpu_memory_gb or d["memory_gb"] >= need.min_gpu_memory_gb]
    return usable[:need.gpus]


def waiting_reason(spec: dict[str, Any], offers: list[Offer]) -> str | None:
    """Why a queued job cannot start yet, or None when some live worker can run it (it is next in line)."""
    if not offers:
        return "no worker is running — start one with `studio worker` (the studio starts one on this machine)"
    need = job_need(spec, any(o.devices for o in offers))
    if any(unmet(need, offer) is None for offer in offers):
        return None
    if need.devices == "cuda" and not any(o.devices for o in offers):
        return f"waiting for a worker with {need.describe()} — none registered (live workers: cpu only)"
    return (f"waiting for a worker with {need.describe()} — live workers: "
            + "; ".join(offer.describe() for offer in offers[:4]) + (" …" if len(offers) > 4 else ""))


def alive_workers(session) -> list:
    """Workers with a fresh heartbeat that did not stop (``Worker`` rows)."""
    from datetime import timedelta

    from sqlalchemy import select

    from backend.db.tables import Worker, utcnow
    from backend.settings import get_settings

    limit = utcnow() - timedelta(seconds=get_settings().stale_after_seconds)
    return list(session.scalars(select(Worker).where(Worker.stopped_at.is_(None), Worker.heartbeat_at >= limit)))
