"""Labeling completions: make the K completions of every item of a campaign that still lacks them.

Each item's K completion slots are shared round-robin by the campaign's sources (model/adapter × decoding
settings); ``labeling.generation`` generates ``batch_size`` items at a time outside any transaction and
writes each batch in one short transaction, so annotators rank the first items while later ones are made.
Every completion records its provenance (model, decoding settings, seed, chat template, source label).
A cancelled or failed run resumes where it stopped: only items still missing completions are generated.

Logged metric keys: ``label/items_done``, ``label/items_total``, ``label/progress`` (share of items done),
``label/completions`` (rows written so far), ``label/failed`` (items a source could not complete).
Output: ``completions`` rows; no model is registered.
"""

from backend.db.engine import session_scope
from backend.errors import StudioError
from jobs.context import JobCancelled, JobContext
from jobs.specs import LabelCompletionsSpec
from labeling.generation import generate_campaign_completions


def run(ctx: JobContext) -> None:
    spec: LabelCompletionsSpec = ctx.spec

    def progress(done: int, total: int) -> None:
        ctx.log_metrics(done, {"label/items_done": done, "label/items_total": total,
                               "label/progress": done / total if total else 1.0})
        print(f"items {done}/{total}", flush=True)

    report = generate_campaign_completions(session_scope, spec.campaign_id, progress, ctx.should_cancel,
                                           batch_size=spec.batch_size, precision=spec.precision)
    ctx.log_metrics(report["done"], {"label/completions": report["completions"], "label/failed": len(report["failed"])})
    for failure in report["failed"]:
        print(f"item {failure['item_id']} failed: {failure['reason']}", flush=True)
    print(f"wrote {report['completions']} completions for {report['done']} of {report['total']} items", flush=True)
    if report["cancelled"]:
        raise JobCancelled()
    if report["total"] and len(report["failed"]) == report["total"]:
        raise StudioError(f"No item got its completions: {report['failed'][0]['reason']}")
