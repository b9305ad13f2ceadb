"""Small builders shared by the job tests: a dialogue-summary dataset on disk and a job's row."""

import json
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
