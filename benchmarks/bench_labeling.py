"""Labeling workbench latency with many rankings (a benchmark, not a test).

    .venv/bin/python benchmarks/bench_labeling.py [--rankings 100000] [--k 3] [--per-item 4]

Seeds a throw-away SQLite database (in a temp data dir) with a synthetic campaign holding ``--rankings``
rankings, then times what the pages call on every action: next task (fresh annotator; an annotator
halfway through; worst case = campaign almost complete), submit-and-next, undo, own progress, campaign
list, campaign progress, annotator progress, the quality report (first and cached), the export and the
Agreement page. Prints the median of ``--repeat`` runs in milliseconds, and the query plan of the next-item
query.
"""

import argparse
import os
import statistics
import tempfile
import time


def timed(fn, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - began) * 1000)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rankings", type=int, default=100_000)
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--per-item", type=int, default=4, help="annotators per item (8 annotators rotate)")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    os.environ["STUDIO_DATA_DIR"] = tempfile.mkdtemp(prefix="studio-bench-")
    os.environ.pop("STUDIO_DATABASE_URL", None)

    from sqlalchemy import func, select

    from backend.db.engine import get_engine, session_scope, upgrade_database
    from backend.db.tables import Ranking
    from labeling import campaigns, export, quality, synthetic, workbench
    from services import completion_jobs

    upgrade_database()
    n_items = args.rankings // args.per_item
    began = time.perf_counter()
    with session_scope(write=True) as s:
        # overlap = per_item: every item is complete; one more annotator-slot stays open on the last items
        c = synthetic.seed_campaign(s, "bench", n_items=n_items, k=args.k, overlap=args.per_item,
                                    annotators=[f"ann-{i}" for i in range(8)], per_item=args.per_item, seed=1)
        cid = c.id
        s.execute(Ranking.__table__.delete().where(Ranking.item_id == s.scalar(
            select(func.max(Ranking.item_id)))))  # the last item needs judgements again: worst case for next_item
        fresh = workbench.get_or_create_user(s, "fresh").id
        half = workbench.get_or_create_user(s, "ann-0").id
    with session_scope() as s:
        total = s.scalar(select(func.count(Ranking.id)))
    print(f"seeded {total} rankings over {n_items} items (K={args.k}) in {time.perf_counter() - began:.1f} s")

    def read(fn):
        def run():
            with session_scope() as s:
                fn(s)
        return run

    results = {
        "next_task (worst case: only the last item is open)": read(lambda s: workbench.next_task(s, cid, fresh)),
        "my_progress": read(lambda s: workbench.my_progress(s, fresh, cid)),
        "campaigns_for_annotator": read(lambda s: workbench.campaigns_for_annotator(s, fresh)),
        "list_campaigns": read(lambda s: campaigns.list_campaigns(s)),
        "my_history (10 latest)": read(lambda s: workbench.my_history(s, half, cid, limit=10)),
        "completion job status": read(lambda s: completion_jobs.active_job(s, cid)),
        "campaign_progress": read(lambda s: campaigns.campaign_progress(s, cid)),
        "annotator_progress": read(lambda s: campaigns.annotator_progress(s, cid)),
    }
    for name, fn in results.items():
        print(f"{timed(fn, args.repeat):9.1f} ms  {name}")

    with session_scope(write=True) as s:
        campaigns.update_campaign(s, cid, overlap=args.per_item + 1)  # every item open again
    print(f"{timed(read(lambda s: workbench.next_task(s, cid, fresh)), args.repeat):9.1f} ms  next_task (typical)")
    print(f"{timed(read(lambda s: workbench.next_task(s, cid, half)), args.repeat):9.1f} ms  "
          "next_task (annotator who judged half the items)")

    def submit_then_undo():
        with session_scope(write=True) as s:
            task = workbench.next_task(s, cid, fresh)
            ranks = {c["id"]: i + 1 for i, c in enumerate(task.completions)}
            workbench.submit_and_next(s, task.item_id, fresh, ranks, seconds_spent=3.0)
        with session_scope(write=True) as s:
            workbench.undo_last(s, fresh, cid)
    print(f"{timed(submit_then_undo, args.repeat):9.1f} ms  submit_and_next + undo_last")

    page_timings(args.repeat, fresh)

    for name, fn in {"quality_report (first: reads every ranking)": read(lambda s: quality.quality_report(s, cid)),
                     "quality_report (again, no new ranking: cached)": read(lambda s: quality.quality_report(s, cid)),
                     "export rows (all pairs)": read(lambda s: export.campaign_rows(s, cid))}.items():
        print(f"{timed(fn, 1):9.1f} ms  {name}")
    agreement_page_timings(args.repeat, cid)

    engine = get_engine()
    stmt = workbench.next_item_statement(cid, fresh, args.per_item + 1, args.k, ready_only=True)
    sql = str(stmt.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
    with engine.connect() as conn:
        plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql).all()
    print("next_item query plan:")
    for row in plan:
        print("   ", row[-1])


def page_timings(repeat: int, user_id: int) -> None:
    """The workbench page itself (Streamlit's AppTest, in process): a first visit, then submit → next item."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    page = str(Path(__file__).resolve().parent.parent / "app" / "page_labeling.py")
    at = AppTest.from_file(page, default_timeout=120)
    at.session_state["user"] = {"id": user_id, "name": "fresh", "role": "annotator"}
    began = time.perf_counter()
    at.run()
    print(f"{(time.perf_counter() - began) * 1000:9.1f} ms  workbench page, first run (imports included)")
    visits, submits = [], []
    for _ in range(repeat):
        began = time.perf_counter()
        at.run()
        visits.append((time.perf_counter() - began) * 1000)
        controls = [c for c in at.segmented_control if c.label.startswith("Rank of response")]
        for rank, control in enumerate(controls, start=1):
            control.set_value(str(rank))
        next(b for b in at.button if b.label == "Submit ranking").click()
        began = time.perf_counter()
        at.run()  # stores the ranking and draws the next item (st.rerun included)
        submits.append((time.perf_counter() - began) * 1000)
        assert not at.exception and not at.error, [e.value for e in at.error]
    print(f"{statistics.median(visits):9.1f} ms  workbench page, rerun")
    print(f"{statistics.median(submits):9.1f} ms  workbench page, submit → next item shown")


def agreement_page_timings(repeat: int, campaign_id: int) -> None:
    """The Agreement page (admin) under AppTest: first open after a new ranking, then a rerun."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from backend.db.engine import session_scope
    from labeling import workbench

    with session_scope(write=True) as s:
        admin_id = workbench.get_or_create_user(s, "bench-admin", role="admin").id
        late = workbench.get_or_create_user(s, "late").id
    page = str(Path(__file__).resolve().parent.parent / "app" / "page_label_quality.py")
    at = AppTest.from_file(page, default_timeout=120)
    at.session_state["user"] = {"id": admin_id, "name": "bench-admin", "role": "admin"}
    began = time.perf_counter()
    at.run()
    print(f"{(time.perf_counter() - began) * 1000:9.1f} ms  agreement page, first run (imports included)")
    with session_scope(write=True) as s:  # a new ranking: the next run reads every ranking again
        task = workbench.next_task(s, campaign_id, late)
        workbench.submit_ranking(s, task.item_id, late, {c["id"]: i + 1 for i, c in enumerate(task.completions)})
    began = time.perf_counter()
    at.run()
    print(f"{(time.perf_counter() - began) * 1000:9.1f} ms  agreement page after a new ranking (report computed)")
    assert not at.exception and not at.error, [e.value for e in at.error]
    print(f"{timed(at.run, repeat):9.1f} ms  agreement page, rerun (report cached)")


if __name__ == "__main__":
    main()
