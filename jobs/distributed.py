"""Several processes (ranks) for one job: ``torchrun`` launches them, ``jobs.run`` supervises, rank 0 writes.

A training job whose ``resources`` ask for ``processes > 1`` (or ``gpus > 1``: one process per GPU) runs
data-parallel. The job process (``python -m jobs.run <id>``) keeps the job's heartbeat and becomes the
supervisor: it starts ``python -m torch.distributed.run --standalone --nproc_per_node N -m jobs.distributed
<id>`` in a process group of its own, echoes rank 0's output into the job log, and

- on cancel (or when the job must stop) writes a stop file; every rank reads it at the same step boundary (an
  all-reduce of the flag, so no rank waits forever in a collective the others left) and stops as a single
  process would; ranks still running after ``STOP_GRACE_SECONDS`` are killed with their whole process group;
- when a rank fails, fails the job with *that* rank's error: each rank writes its outcome to
  ``<job dir>/ranks/rank-<r>.json``, the earliest failure wins (a peer's "connection closed" comes later), and a
  rank killed without a word is named from torchrun's summary with the tail of its log;
- when the supervisor itself is stopped (the worker's SIGTERM), takes the process group down with it; a rank
  whose supervisor disappeared (SIGKILL) stops at its next step.

Ranks: the process group is initialised here (gloo on CPU, nccl on CUDA, one GPU per local rank) before the
runner runs, so transformers' Trainer and our PPO loop both use it. The runner gets a ``RankContext``: on ranks
other than 0 metric rows, registration and the runners' own files are skipped; their output goes to
``ranks/rank-<r>.log``. Trainer-based runners add ``trainer_arguments(ctx, device)`` to their config (the DDP
backend; FSDP when asked); our own loops use ``average_gradients`` / ``mean_across_ranks`` /
``broadcast_parameters``.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from jobs.context import JobCancelled, JobContext
from jobs.distributed_checks import DISTRIBUTED_KINDS, TRAINER_KINDS, world_size  # noqa: F401 (re-exported)

RANK_JOB_ENV = "STUDIO_RANK_OF_JOB"  # set for the rank processes: the job they belong to
SUPERVISOR_PID_ENV = "STUDIO_RANK_SUPERVISOR_PID"  # the job process that launched the ranks
RANKS_DIR = "ranks"
STOP_FILE = "stop"
STOP_GRACE_SECONDS = 30.0  # after the stop file, this long for the ranks to stop by themselves
KILL_GRACE_SECONDS = 5.0  # after SIGTERM to the ranks' process group, this long before SIGKILL
POLL_SECONDS = 0.5
TAIL_LINES = 12


def is_rank_process() -> bool:
    return RANK_JOB_ENV in os.environ


def ranks_dir(out_dir: Path) -> Path:
    return out_dir / RANKS_DIR


# --- the supervisor (inside ``python -m jobs.run``) ---------------------------------------------------------------


def _threads_per_rank(n: int) -> int:
    from backend.settings import get_settings

    threads = get_settings().job_threads or os.cpu_count() or 1
    return max(1, threads // n)


def launch_command(job_id: int, n: int) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}", "--max_restarts=0",
            "-m", "jobs.distributed", str(job_id)]


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGTERM the ranks' process group (torchrun and every rank), then SIGKILL what is left after a grace."""
    for sig, wait in ((signal.SIGTERM, KILL_GRACE_SECONDS), (signal.SIGKILL, KILL_GRACE_SECONDS)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    try:  # ranks that outlived torchrun are still in the group
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def supervise(ctx: JobContext) -> int | None:
    """Run the job's runner on ``world_size(spec)`` ranks; returns rank 0's output model id.

    Raises ``JobCancelled`` when the job was cancelled (or must stop), and ``RankFailed`` with the failing rank's
    error when a rank failed.
    """
    n = world_size(ctx.spec)
    folder = ranks_dir(ctx.out_dir)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    env = {**os.environ, RANK_JOB_ENV: str(ctx.job_id), SUPERVISOR_PID_ENV: str(os.getpid()),
           "OMP_NUM_THREADS": str(_threads_per_rank(n)), "PYTHONUNBUFFERED": "1"}
    print(f"job {ctx.job_id}: {n} processes ({ctx.spec.resources.strategy}) through torchrun", flush=True)
    proc = subprocess.Popen(launch_command(ctx.job_id, n), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=env, start_new_session=True, text=True, errors="replace")
    tail: deque[str] = deque(maxlen=200)
    echo = threading.Thread(target=_echo, args=(proc, tail), daemon=True, name=f"job-{ctx.job_id}-ranks")
    echo.start()
    stop_sent = None
    try:
        while proc.poll() is None:
            now = time.monotonic()
            if stop_sent is None and ctx.should_cancel():
                (folder / STOP_FILE).touch()
                stop_sent = now
                print(f"job {ctx.job_id}: stopping the {n} ranks at their next step", flush=True)
            elif stop_sent is not None and now - stop_sent > STOP_GRACE_SECONDS:
                print(f"job {ctx.job_id}: ranks still running {STOP_GRACE_SECONDS:g} s after the stop: killing them",
                      flush=True)
                _kill_group(proc)
            try:
                proc.wait(timeout=POLL_SECONDS)
            except subprocess.TimeoutExpired:
                pass
    except BaseException:  # the job process is stopping (SIGTERM, Ctrl-C): no rank may outlive it
        _kill_group(proc)
        raise
    finally:
        echo.join(timeout=5)
    _kill_group(proc)  # ranks torchrun left behind, if any
    return _outcome(ctx, n, proc.returncode, list(tail), cancelled=stop_sent is not None)


def _echo(proc: subprocess.Popen, tail: deque) -> None:
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        tail.append(line)


class RankFailed(Exception):
    """A rank failed: the message names the rank and carries its error."""


def _read_outcomes(folder: Path) -> dict[int, dict]:
    out = {}
    for path in folder.glob("rank-*.json"):
        try:
            row = json.loads(path.read_text(encoding="utf-8"))
            out[int(row["rank"])] = row
        except (OSError, ValueError, KeyError):
            continue
    return out


def _log_tail(folder: Path, rank: int, launcher_tail: list[str]) -> str:
    if rank == 0:
        lines = launcher_tail
    else:
        try:
            lines = (folder / f"rank-{rank}.log").read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            lines = []
    lines = [line.rstrip() for line in lines if line.strip()][-TAIL_LINES:]
    return " | ".join(lines)[-800:]


def _silent_death(launcher_tail: list[str], n: int) -> tuple[int, str]:
    """The rank torchrun reports as failed, and how it ended (from its ``ChildFailedError`` summary)."""
    text = "".join(launcher_tail)
    found = re.findall(r"rank\s*:\s*(\d+).*?exitcode\s*:\s*(-?\d+)", text, flags=re.DOTALL)
    if not found:
        return -1, "the launcher ended without a report"
    rank, code = int(found[0][0]), int(found[0][1])
    if code < 0:
        try:
            return rank, f"killed by {signal.Signals(-code).name}" + (" (out of memory?)" if code == -9 else "")
        except ValueError:
            return rank, f"killed by signal {-code}"
    return rank, f"exited with code {code}"


def _outcome(ctx: JobContext, n: int, code: int, launcher_tail: list[str], cancelled: bool) -> int | None:
    folder = ranks_dir(ctx.out_dir)
    outcomes = _read_outcomes(folder)
    failed = sorted((row for row in outcomes.values() if row["status"] == "failed"), key=lambda row: row["at"])
    if failed:
        first = failed[0]
        if len(failed) == n and len({row["error"] for row in failed}) == 1:  # the same problem everywhere (the data)
            raise RankFailed(first["error"])
        where = "the job log" if first["rank"] == 0 else f"{RANKS_DIR}/rank-{first['rank']}.log"
        raise RankFailed(f"Rank {first['rank']} of {n} failed: {first['error']} (its traceback: {where})")
    if cancelled or any(row["status"] == "cancelled" for row in outcomes.values()):
        raise JobCancelled()
    if code != 0 or len(outcomes) < n:
        rank, how = _silent_death(launcher_tail, n)
        missing = sorted(set(range(n)) - set(outcomes))
        rank = rank if rank >= 0 else (missing[0] if missing else 0)
        tail = _log_tail(folder, rank, launcher_tail)
        raise RankFailed(f"Rank {rank} of {n} {how} without reporting an error (torchrun exit code {code})"
                         + (f"; its last lines: {tail}" if tail else "") + ".")
    digests = {row.get("weights_digest") for row in outcomes.values()}
    if len(digests) > 1:
        print(f"WARNING: the {n} ranks ended with different weights (digests {sorted(map(str, digests))}); "
              "rank 0's were saved", flush=True)
    return outcomes[0].get("output_model_id")


# --- a rank (``python -m jobs.distributed <job id>`` under torchrun) -------------------------------------------------


@dataclass
class RankContext(JobContext):
    """A runner's context on one rank: only rank 0 writes metric rows; cancel checks agree across ranks."""

    supervisor_pid: int | None = None
    notes: dict = field(default_factory=dict)  # what this rank ended with (``record_weights``): in its outcome
    _stopped: bool = field(default=False, repr=False)

    def should_cancel(self) -> bool:
        """True once the supervisor asked the ranks to stop (or is gone), on every rank at the same call.

        Every rank calls this at the same points (each step boundary), so the flag is all-reduced: the ranks stop
        together instead of one waiting forever in a collective the others left.
        """
        import torch
        import torch.distributed as dist

        if self._stopped:
            return True
        local = (ranks_dir(self.out_dir) / STOP_FILE).exists() or not _alive(self.supervisor_pid)
        flag = torch.tensor([1.0 if local else 0.0], device=_collective_device())
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        self._stopped = bool(flag.item())
        return self._stopped


def _alive(pid: int | None) -> bool:
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _collective_device() -> str:
    import torch.distributed as dist

    return "cuda" if dist.get_backend() == "nccl" else "cpu"


def _redirect_output(path: Path) -> None:
    """Send this process's stdout and stderr (Python's and native code's) to ``path``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _write_outcome(folder: Path, rank: int, status: str, error: str | None = None, output_model_id: int | None = None,
                   notes: dict | None = None) -> None:
    row = {"rank": rank, "status": status, "error": error, "output_model_id": output_model_id, "at": time.time(),
           **(notes or {})}
    tmp = folder / f".rank-{rank}.json.tmp"
    tmp.write_text(json.dumps(row), encoding="utf-8")
    tmp.replace(folder / f"rank-{rank}.json")


def _init_process_group(local_rank: int) -> str:
    """Join the ranks' process group (gloo on CPU, nccl on CUDA); returns the device this rank trains on."""
    from datetime import timedelta

    import torch
    import torch.distributed as dist

    from backend.models.loader import resolve_device

    device = resolve_device()
    if device == "cuda":
        if local_rank >= torch.cuda.device_count():
            from backend.errors import StudioError

            raise StudioError(f"Process {local_rank} has no GPU of its own: this worker has "
                              f"{torch.cuda.device_count()}. Set resources.gpus to the number of processes, or "
                              "devices: cpu.")
        torch.cuda.set_device(local_rank)  # "cuda" now means this rank's GPU
    dist.init_process_group(backend="nccl" if device == "cuda" else "gloo", timeout=timedelta(minutes=30))
    return device


def rank_main(job_id: int) -> int:
    """One rank: run the job's runner under the process group; write this rank's outcome for the supervisor."""
    import importlib

    import torch.distributed as dist

    from backend.db.engine import session_scope
    from backend.db.tables import Job
    from backend.errors import StudioError
    from jobs.artifacts import job_dir
    from jobs.registry import KINDS, parse_spec

    rank, world, local_rank = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    out_dir = job_dir(job_id)
    folder = ranks_dir(out_dir)
    if rank != 0:  # the job log shows rank 0; the others keep their own
        _redirect_output(folder / f"rank-{rank}.log")
    (folder / f"rank-{rank}.pid").write_text(str(os.getpid()), encoding="utf-8")
    raw_pid = os.environ.get(SUPERVISOR_PID_ENV, "")
    try:
        _init_process_group(local_rank)
        with session_scope() as s:
            spec = parse_spec(dict(s.get(Job, job_id).spec))
        ctx = RankContext(job_id, spec, out_dir, rank=rank, world_size=world,
                          supervisor_pid=int(raw_pid) if raw_pid.isdigit() else None)
        output_model_id = importlib.import_module(KINDS[spec.kind].runner).run(ctx)
        _write_outcome(folder, rank, "succeeded", output_model_id=output_model_id if rank == 0 else None,
                       notes=ctx.notes)
    except JobCancelled:
        _write_outcome(folder, rank, "cancelled")
    except StudioError as exc:
        _write_outcome(folder, rank, "failed", str(exc))
        return 1
    except Exception as exc:  # noqa: BLE001 - the supervisor reports it as this rank's error
        traceback.print_exc()
        _write_outcome(folder, rank, "failed", f"{type(exc).__name__}: {exc}")
        return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


# --- helpers for runners --------------------------------------------------------------------------------------------


def trainer_arguments(ctx: JobContext, device: str) -> dict:
    """Extra ``TrainingArguments`` for a Trainer-based runner: the DDP backend, or FSDP when the spec asks."""
    if ctx.world_size == 1:
        return {}
    args: dict = {"ddp_backend": "nccl" if device == "cuda" else "gloo"}
    if uses_fsdp(ctx):
        # FSDP2 wraps each decoder layer (the model's _no_split_modules); a full state dict is gathered to rank 0
        # for saving, so the output folder is an ordinary model folder.
        args.update(fsdp=True, fsdp_config={"version": 2, "state_dict_type": "FULL_STATE_DICT"})
    return args


def record_weights(ctx: JobContext, model, **state: float) -> None:
    """Note a digest of the trained parameters (and any ``state`` that must agree, e.g. PPO's β) in the rank's
    outcome: every rank must end with the same weights (the supervisor warns when they differ; tests compare)."""
    if not isinstance(ctx, RankContext) or uses_fsdp(ctx):  # (FSDP: each rank holds other shards by design)
        return
    import hashlib

    import torch

    digest = hashlib.sha256()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad:
                digest.update(name.encode())
                digest.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    ctx.notes.update(weights_digest=digest.hexdigest(), **state)


def save_trained_policy(ctx: JobContext, trainer, tokenizer, start, peft: str, meta: dict):
    """Save a TRL trainer's policy and register it (the end of the DPO and GRPO runners); returns the model id,
    or None on ranks other than 0.

    LoRA on a base model saves the adapter alone; LoRA on a merged SFT adapter (``start.kind == "adapter"``) saves
    the merged whole model, as does full fine-tuning. Under FSDP every rank takes part in the save (the full
    weights are gathered to rank 0, which writes); otherwise rank 0 alone writes."""
    from jobs.rl.loading import register_output

    record_weights(ctx, trainer.model)
    out = ctx.out_dir / "model"
    as_adapter = peft == "lora" and start.kind != "adapter"
    if uses_fsdp(ctx):
        trainer.save_model(str(out))
    elif ctx.is_main:
        (trainer.model if as_adapter or peft == "none" else trainer.model.merge_and_unload()).save_pretrained(str(out))
    if not ctx.is_main:
        return None
    tokenizer.save_pretrained(str(out))
    return register_output(ctx, start, str(out), "adapter" if as_adapter else "full", meta)


def uses_fsdp(ctx: JobContext) -> bool:
    return ctx.world_size > 1 and ctx.spec.resources.strategy == "fsdp"


def average_gradients(parameters) -> None:
    """All-reduce the gradients of ``parameters`` and divide by the world size (what DDP does), in one bucket."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    parameters = list(parameters)
    for p in parameters:  # a parameter no loss reached still takes part, so every rank sends the same bucket
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    grads = [p.grad for p in parameters]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def broadcast_parameters(parameters) -> None:
    """Copy rank 0's values of ``parameters`` to every rank (random initialisations must agree)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        for p in parameters:
            dist.broadcast(p.data, src=0)


def mean_across_ranks(values: dict[str, float]) -> dict[str, float]:
    """The mean of each value over the ranks (each rank's value being a mean over an equal share of the data)."""
    import torch
    import torch.distributed as dist

    if not values or not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return values
    keys = list(values)
    flat = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(flat)
    return {k: v / dist.get_world_size() for k, v in zip(keys, flat.tolist(), strict=True)}


if __name__ == "__main__":
    # Through the imported module, not this ``__main__`` copy: the runners' ``RankContext`` must be the same class.
    import importlib

    sys.exit(importlib.import_module("jobs.distributed").rank_main(int(sys.argv[1])))
