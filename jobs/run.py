"""Entry point of a job's child process: ``python -m jobs.run <job_id>``.

Loads the spec from the database, writes the resolved spec next to the outputs, runs the runner for
its kind, and records the final status. Any exception becomes a failed job with the reason shown to
the user; the traceback goes to the job log. An interrupt (Ctrl-C, or SIGTERM from the worker) is
recorded too before the process exits, so a job never stays ``running`` because its process died in
an orderly way. A job that asks for several processes (``resources.processes`` or ``gpus`` > 1) runs on ranks
that torchrun starts; this process then supervises them (``jobs.distributed``) and records their end.

Run by hand on a queued job (``python -m jobs.run 7``), it takes the job itself; a job that already
ended is left alone, and a job that is already running is refused (exit code 3): only the worker that
claimed it may start its process (the worker names itself in ``STUDIO_WORKER_ID``), once.
"""

import errno
import importlib
import os
import shutil
import signal
import socket
import sys
import traceback

from sqlalchemy import update

from backend.db.engine import session_scope
from backend.db.tables import Job, utcnow
from backend.errors import StudioError
from backend.settings import get_settings
from jobs import artifacts, distributed, queue
from jobs.artifacts import job_dir
from jobs.context import JobCancelled, JobContext, start_heartbeat, stop_reason
from jobs.registry import KINDS, parse_spec
from jobs.spec_files import spec_to_yaml

MAX_ERROR_CHARS = 2000
WORKER_ID_ENV = "STUDIO_WORKER_ID"  # set by the worker for the job process it starts
REFUSED = 3  # exit code: the job is already running elsewhere
LOW_DISK_BYTES = 16 * 2**20  # a write that failed with less than this left: reported as a full disk


def _take(job_id: int) -> tuple[dict | None, str]:
    """Load the job and make sure it is ours to run: returns (spec, status) with spec None when not."""
    now = utcnow()
    with session_scope(write=True) as s:
        job = s.get(Job, job_id)
        if job is None:
            return None, "missing"
        if job.status == "queued":  # run by hand, outside a worker
            s.execute(update(Job).where(Job.id == job_id, Job.status == "queued").values(
                status="running", worker_id=f"manual:{socket.gethostname()}:{os.getpid()}", started_at=now,
                heartbeat_at=now, pid=os.getpid()))
        elif job.status == "running":
            mine = (job.worker_id is not None and job.worker_id == os.environ.get(WORKER_ID_ENV)
                    and job.pid in (None, os.getpid()))
            if not mine:
                return None, (f"already running (worker {job.worker_id}, pid {job.pid}): a job runs once. Cancel it "
                              "(`studio job cancel`) or wait for it; a job whose worker died is failed by the next "
                              "worker and can then be resumed or resubmitted")
            s.execute(update(Job).where(Job.id == job_id).values(pid=os.getpid(), heartbeat_at=now))
        else:
            return None, job.status
        if job.cancel_requested:
            queue.finish(s, job_id, "cancelled")
            return None, "cancelled"
        return dict(job.spec), "running"


def _record(job_id: int, status: str, error: str | None, output_model_id: int | None) -> None:
    if error and len(error) > MAX_ERROR_CHARS:
        error = error[:MAX_ERROR_CHARS] + " …"
    with session_scope(write=True) as s:
        queue.finish(s, job_id, status, error, output_model_id)
    print(f"job {job_id} {status}" + (f": {error}" if error else ""), flush=True)


def _disk_full(job_id: int, exc: BaseException) -> str | None:
    """A readable reason when the job failed because its disk filled up (ENOSPC, or a writer's own error with
    almost no space left where the job writes), else None."""
    folder = job_dir(job_id)
    free = []
    for path in (folder / "checkpoints", folder, folder.parent):
        try:
            free.append((shutil.disk_usage(path).free, path))
        except OSError:
            continue
    nospace = any(isinstance(e, OSError) and e.errno == errno.ENOSPC for e in _chain(exc))
    if not free or not (nospace or min(free)[0] < LOW_DISK_BYTES):
        return None
    left, where = min(free)
    saved = artifacts.checkpoints(job_id)
    resume = (f"resume it from its last complete checkpoint ({saved[-1].name}) with resume_from_job: {job_id}"
              if saved else "run it again")
    return (f"The disk is full: {left:,} bytes left in {where} while the job wrote its files "
            f"({type(exc).__name__}: {str(exc)[:200]}). Free some space, then {resume}.")


def _chain(exc: BaseException | None):
    seen = 0
    while exc is not None and seen < 20:
        yield exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1


def _cancel_requested(job_id: int) -> bool:
    try:
        with session_scope() as s:
            return queue.is_cancel_requested(s, job_id)
    except Exception:  # noqa: BLE001
        return False


def main(job_id: int) -> int:
    """Run one job to its end; returns the process exit code (0 unless the job failed)."""
    spec_data, status = _take(job_id)
    if spec_data is None:
        print(f"job {job_id}: not run ({status})", file=sys.stderr, flush=True)
        return 2 if status == "missing" else REFUSED if status.startswith("already running") else 0
    settings = get_settings()
    if settings.job_threads:
        import torch

        torch.set_num_threads(settings.job_threads)
        print(f"job {job_id}: torch uses {settings.job_threads} CPU thread(s) (STUDIO_JOB_THREADS)", flush=True)
    beat = start_heartbeat(job_id, settings.heartbeat_seconds)
    output_model_id = None
    try:
        spec = parse_spec(spec_data)
        with session_scope() as s:
            artifacts.check_input_models(s, spec)
        out_dir = job_dir(job_id)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "job_spec.yaml").write_text(spec_to_yaml(spec), encoding="utf-8")
        print(f"job {job_id}: {spec.kind}\n{spec_to_yaml(spec)}", flush=True)
        ctx = JobContext(job_id, spec, out_dir)
        if distributed.world_size(spec) > 1:  # this process supervises the ranks torchrun starts
            output_model_id = distributed.supervise(ctx)
        else:
            output_model_id = importlib.import_module(KINDS[spec.kind].runner).run(ctx)
        status, error = "succeeded", None
    except JobCancelled:
        stopped = stop_reason(job_id)  # the row ended elsewhere or the worker is gone: not the user's cancel
        status, error = ("failed", f"The job stopped: {stopped}.") if stopped else ("cancelled", None)
    except queue.JobNotRunning as exc:  # reaped or ended meanwhile: its row keeps what it says
        status, error = "failed", str(exc)
    except (StudioError, distributed.RankFailed) as exc:
        status, error = "failed", str(exc)
    except Exception as exc:  # noqa: BLE001
        traceback.print_exc()
        status, error = "failed", _disk_full(job_id, exc) or f"{type(exc).__name__}: {exc}"
    except BaseException as exc:  # KeyboardInterrupt / SystemExit (SIGTERM): record the end, then exit
        beat.set()
        cancelled = _cancel_requested(job_id)
        _record(job_id, "cancelled" if cancelled else "failed",
                None if cancelled else f"The job process was interrupted ({type(exc).__name__}).", None)
        raise
    finally:
        beat.set()
    _record(job_id, status, error, output_model_id)
    return 0 if status != "failed" else 1


def _terminate(signum, _frame) -> None:
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _terminate)
    sys.exit(main(int(sys.argv[1])))
