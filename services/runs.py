"""Saved playground runs: read one back with its columns and scores, list them, export them.

A run is what ``services.compare`` saved (a ``playground_runs`` row and its ``completions`` rows);
``services.reward_scoring.score_run`` keeps scores in the run's ``meta["reward"]``, which ``get_run``
puts back on the completions.
"""

import csv
import io
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.db.lookup import get_or_raise
from backend.db.tables import Completion, PlaygroundRun
from backend.errors import StudioError
from backend.prompts.cot import extract_final_answer


def get_run(session: Session, run_id: int) -> dict[str, Any]:
    """A saved run with its columns and completions, as ``run_comparison`` returned it."""
    run = get_or_raise(session, PlaygroundRun, run_id, "playground run")
    rows = session.scalars(select(Completion).where(Completion.run_id == run_id).order_by(Completion.id)).all()
    columns = []
    for col in run.meta.get("columns", []):
        cot = bool(col.get("cot"))
        columns.append({**col, "completions": [
            {"id": c.id, "text": c.text, "completion_tokens": c.completion_tokens, "finish_reason": c.finish_reason,
             "seconds": round(c.seconds, 4), "answer": extract_final_answer(c.text) if cot else None}
            for c in rows if c.source_label == col["label"][:300]]})
    reward = run.meta.get("reward")  # scores from ``reward_scoring.score_run``, if the run was scored
    attach_scores(reward, columns)
    return {"id": run.id, "input": run.input, "created_at": run.created_at.isoformat(timespec="seconds"),
            "kind": run.meta.get("kind"), "rerun_of": run.meta.get("rerun_of"), "variants": run.variants,
            "columns": columns, **({"reward": {k: reward[k] for k in ("source", "best_of_n")}} if reward else {})}


def list_runs(session: Session, limit: int = 20) -> list[dict[str, Any]]:
    """Recent runs, newest first: id, time, input preview, columns."""
    runs = session.scalars(select(PlaygroundRun).order_by(PlaygroundRun.id.desc()).limit(limit))
    return [{"id": r.id, "created": r.created_at.strftime("%Y-%m-%d %H:%M:%S"), "kind": r.meta.get("kind"),
             "input": r.input[:120], "columns": [c["label"] for c in r.meta.get("columns", [])]} for r in runs]


def export_run(session: Session, run_id: int, fmt: str = "json") -> str:
    """A run as JSON (everything), JSONL or CSV (one row per completion with its settings and timings)."""
    data = get_run(session, run_id)
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False)
    if fmt == "jsonl":  # one line per completion, with its column's settings and timings
        lines = []
        for col in data["columns"]:
            for c in col["completions"]:
                lines.append(json.dumps({
                    "run_id": data["id"], "input": data["input"], "column": col["label"], "model": col["model"],
                    "template": col["prompt_label"], "prompt": col["prompt"], "decoding": col["decoding"],
                    "seed": col["decoding"].get("seed"), "latency_s": col["latency_s"],
                    "tokens_per_second": col["tokens_per_second"], "completion_id": c["id"], "text": c["text"],
                    "completion_tokens": c["completion_tokens"], "seconds": c["seconds"],
                    "finish_reason": c["finish_reason"], "answer": c["answer"],
                    **({"score": c["score"]} if "score" in c else {})}, ensure_ascii=False))
        return "".join(line + "\n" for line in lines)
    if fmt != "csv":
        raise StudioError("Export as 'json', 'jsonl' or 'csv'.")
    buffer = io.StringIO()
    fields = ["run_id", "column", "model", "template", "completion_id", "text", "completion_tokens", "seconds",
              "finish_reason", "seed", "latency_s", "tokens_per_second", "decoding", "input", "prompt"]
    fields += ["score"] if data.get("reward") else []
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    for col in data["columns"]:
        for c in col["completions"]:
            writer.writerow({"run_id": data["id"], "column": col["label"], "model": col["model"],
                             "template": col["prompt_label"], "completion_id": c["id"], "text": c["text"],
                             "completion_tokens": c["completion_tokens"], "seconds": c["seconds"],
                             "finish_reason": c["finish_reason"], "seed": col["decoding"].get("seed"),
                             "latency_s": col["latency_s"], "tokens_per_second": col["tokens_per_second"],
                             "decoding": json.dumps(col["decoding"]), "input": data["input"], "prompt": col["prompt"],
                             **({"score": c.get("score")} if data.get("reward") else {})})
    return buffer.getvalue()


def best_first(scores: list[float | None]) -> list[int]:
    """Indices of ``scores``, best first (ties keep generation order; unscored ones go last)."""
    return sorted(range(len(scores)), key=lambda i: (scores[i] is None, -(scores[i] or 0.0), i))


def attach_scores(reward: dict[str, Any] | None, columns: list[dict[str, Any]]) -> None:
    """Put a run's saved scores on its completions (in place); best-of-n runs get them ordered best first."""
    if not reward:
        return
    for col in columns:
        done = col["completions"]
        for n, c in enumerate(done, 1):
            c["n"], c["score"] = n, reward["scores"].get(str(c["id"]))
        scored = [c["score"] for c in done if c["score"] is not None]
        if reward.get("best_of_n"):
            done[:] = [done[i] for i in best_first([c["score"] for c in done])]
            if len(done) > 1 and done[0]["score"] is not None:
                done[0]["best"] = True
        col["reward"] = {"source": reward["source"], "best_of_n": bool(reward.get("best_of_n")),
                         "best": max(scored) if scored else None,
                         "mean": sum(scored) / len(scored) if scored else None}
