"""Entry point of a job's child process: ``python -m jobs.run <job_id>``.

Loads the spec from the database, writes the resolved spec next to the outputs, runs the runner for
its kind, and records the final status. Any exception becomes a failed job with the reason shown to
the user; the traceback goes to the job log.
"""

import importlib
import sys
import traceback

from backend.db.engine import session_scope
from backend.db.tables import Job
from backend.errors import StudioError
from backend.settings import get_settings
from jobs import queue
from jobs.context import JobCancelled, JobContext, start_heartbeat
from jobs.specs import parse_spec, spec_to_yaml

RUNNERS = {"sft": "jobs.runners.sft", "eval": "jobs.runners.evaluate"}


def main(job_id: int) -> int:
    with session_scope() as s:
        job = s.get(Job, job_id)
        if job is None:
            print(f"no job {job_id}", file=sys.stderr)
            return 2
        spec_data = job.spec
    beat = start_heartbeat(job_id, get_settings().heartbeat_seconds)
    try:
        spec = parse_spec(spec_data)
        out_dir = queue.job_dir(job_id)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "job_spec.yaml").write_text(spec_to_yaml(spec), encoding="utf-8")
        print(f"job {job_id}: {spec.kind}\n{spec_to_yaml(spec)}", flush=True)
        runner = importlib.import_module(RUNNERS[spec.kind])
        output_model_id = runner.run(JobContext(job_id, spec, out_dir))
        status, error = "succeeded", None
    except JobCancelled:
        status, error, output_model_id = "cancelled", None, None
    except StudioError as exc:
        status, error, output_model_id = "failed", str(exc), None
    except Exception as exc:
        traceback.print_exc()
        status, error, output_model_id = "failed", f"{type(exc).__name__}: {exc}", None
    finally:
        beat.set()
    with session_scope(write=True) as s:
        queue.finish(s, job_id, status, error, output_model_id)
    print(f"job {job_id} {status}" + (f": {error}" if error else ""), flush=True)
    return 0 if status != "failed" else 1


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
