"""Runs: every playground and compare run, with its settings and timings — reopen, rerun, export, send to labeling."""

import pandas as pd
import streamlit as st

from app.common import user_errors
from app.components.playground_results import reopen_in_playground, send_to_labeling, show_run
from backend.db.engine import session_scope
from services import compare, runs

st.title(":material/history: Runs")
st.caption("Every run is kept with its model, template, decoding settings, seed, output and timings.")

with session_scope() as s:
    saved = runs.list_runs(s, limit=200)
if not saved:
    st.info("No runs yet: generate something on the Playground or Compare page.")
    st.stop()

st.dataframe(pd.DataFrame(saved), hide_index=True, width="stretch", height=220,
             column_order=["id", "created", "kind", "input", "columns"])
by_id = {r["id"]: r for r in saved}
run_id = st.selectbox("Run", list(by_id), key="runs-pick",
                      format_func=lambda i: f"#{i} · {by_id[i]['created']} · {by_id[i]['input'][:60]}")
with session_scope() as s:
    run = runs.get_run(s, run_id)

st.markdown(f"**Input** · {run['kind']} run of {run['created_at']}"
            + (f" · rerun of #{run['rerun_of']}" if run.get("rerun_of") else ""))
st.text(run["input"][:2000])
show_run(run)

st.divider()
reopen, again, export = st.columns(3)
with reopen:
    st.markdown("**Reopen in the Playground**")
    column = st.selectbox("Variant", range(len(run["columns"])), key="runs-reopen-col",
                          format_func=lambda i: run["columns"][i]["label"])
    if st.button("Reopen", key="runs-reopen", icon=":material/open_in_new:"):
        reopen_in_playground(run, column)
with again:
    st.markdown("**Rerun**")
    seed = st.number_input("Seed override (0 = the saved seeds)", 0, 2**31 - 1, 0, key="runs-seed",
                           help="The saved settings with the same seed reproduce the run; another seed draws anew.")
    rerun_clicked = st.button("Rerun", key="runs-rerun", icon=":material/replay:")
with export:
    st.markdown("**Export**")
    with session_scope() as s:
        files = {fmt: runs.export_run(s, run_id, fmt) for fmt in ("json", "jsonl", "csv")}
    mime = {"json": "application/json", "jsonl": "application/jsonl", "csv": "text/csv"}
    for fmt, data in files.items():
        st.download_button(f"Download {fmt.upper()}", data, file_name=f"run-{run_id}.{fmt}", mime=mime[fmt],
                           key=f"runs-dl-{fmt}", icon=":material/download:")

if rerun_clicked:
    with user_errors(), st.spinner("Generating…"), session_scope(write=True) as s:
        fresh = compare.rerun(s, run_id, seed=int(seed) or None)
        st.success(f"Saved as run #{fresh['id']}: pick it above to reopen or send it.")
        show_run(fresh)

send_to_labeling(run, "runs")
