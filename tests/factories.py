"""Small builders shared by the tests: a dialogue-summary dataset on disk, a job's row, a claimed job, a tiny LoRA
SFT spec, and the `studio` command run in-process."""

import io
import json
import sys
from pathlib import Path

from backend.db.engine import session_scope
from backend.db.tables import Job


def write_dialogues(folder: Path, sizes: dict[str, int]) -> Path:
    """One JSONL file per split (``{"train": 8, "test": 8}``) of numbered dialogue → summary rows."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in sizes.items():
        rows = [{"dialogue": f"#Person1#: hello booking {i}\n#Person2#: thanks refund {i}",
                 "summary": f"Person1 greets Person2 about booking {i}."} for i in range(n)]
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return folder


def job_row(job_id: int) -> Job:
    """The job's row, read in its own session (detached: read its columns, not its relations)."""
    with session_scope() as s:
        return s.get(Job, job_id)


def claimed_job(name: str, spec: dict) -> int:
    """A job row with ``spec`` (not validated), queued and then claimed by ``test-worker``; returns its id."""
    from jobs import queue

    with session_scope(write=True) as s:
        job = Job(kind="eval", name=name, spec=spec, status="queued")
        s.add(job)
        s.flush()
        assert queue.claim(s, "test-worker") == job.id
        return job.id


def lora_sft_spec(data: Path, max_steps: int, save_steps: int, **overrides):
    """A LoRA SFT spec on the tiny model that trains in seconds and checkpoints every ``save_steps``."""
    from jobs.specs import SFTSpec

    values = {"name": "sft", "base_model": "tiny", "dataset": str(data),
              "train": {"max_steps": max_steps, "batch_size": 2, "learning_rate": 1e-2, "warmup_ratio": 0.0,
                        "max_length": 64, "logging_steps": 1, "save_steps": save_steps, "save_total_limit": 2},
              "lora": {"r": 4, "alpha": 8, "dropout": 0.0}, "max_eval_examples": 0}
    values.update(overrides)
    return SFTSpec.model_validate(values)


def run_cli(args: list[str], capsys, stdin: str | None = None, monkeypatch=None) -> tuple[int, str, str]:
    """``studio ARGS`` in this process (optionally with ``stdin``): its exit code, stdout and stderr."""
    from cli.main import main

    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = 0
    try:
        main(args)
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err
