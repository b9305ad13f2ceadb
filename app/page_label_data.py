"""Preference data (admin): export a campaign's rankings as TRL preference pairs; import rankings made elsewhere."""

from pathlib import Path

import streamlit as st

from app.auth import current_user, require_admin
from app.common import user_errors
from backend.db.engine import session_scope
from backend.textfiles import decode_utf8
from labeling import accounts, campaigns, export, importer


def import_report_table(lines: list[dict]) -> list[dict]:
    """The import's per-line report, refused lines first: they are the ones to fix."""
    return [{"line": r["line"], "outcome": r["outcome"], "item": r["item_id"], "K": r["k"],
             "rankings of item": r["rankings"], "detail": r["detail"]}
            for r in sorted(lines, key=lambda r: (r["outcome"] != "refused", r["line"]))]


st.title(":material/compare_arrows: Preference data")
require_admin("export or import preference data")
user = current_user()
with session_scope() as s:
    rows = {c["name"]: c for c in campaigns.list_campaigns(s)}

tab_export, tab_import = st.tabs(["Export pairs", "Import rankings"])
with tab_export:
    if not rows:
        st.info("No campaign yet: create one on the Campaigns page, or import rankings.")
    else:
        name = st.selectbox("Campaign", list(rows), key="ld-campaign", format_func=lambda n: (
            f"{n} ({rows[n]['status']}, {rows[n]['rankings']} judgements)"))
        c1, c2 = st.columns(2)
        strategy = c1.radio("Pairs from each ranking", export.STRATEGIES, horizontal=True, key="ld-strategy",
                            help="all = every C(K,2) pair the ranking orders; best-vs-rest = the best against each "
                                 "other; best-vs-worst = one pair. Ties give no pair; flagged completions are "
                                 "dropped first.")
        fmt = c2.radio("Format", export.FORMATS, horizontal=True, key="ld-format")
        margin = c1.checkbox("Add a margin column (rank gap)", key="ld-margin",
                             help="TRL's reward trainer uses it in the loss: pairs far apart count more.")
        consensus = c1.checkbox("One consensus ranking per item", key="ld-consensus",
                                help="Off: every annotator's pairs are kept (a pair two annotators agree on counts "
                                     "twice). On: the annotators' ranks are averaged into one ranking first.")
        drop = c2.checkbox("Drop items whose annotators disagree", key="ld-drop")
        threshold = c2.slider("Largest disagreement kept", 0.0, 1.0, 0.5, 0.05, key="ld-threshold", disabled=not drop,
                              help="An item is dropped when its annotators disagree on more than this share of pairs.")
        test_size = c1.slider("Test share (split by prompt)", 0.0, 0.5, 0.1, 0.05, key="ld-test",
                              help="Pairs of one prompt never straddle train and test.")
        out_name = c2.text_input("Dataset name", export.safe_name(f"{name}-pairs"), key=f"ld-name-{name}",
                                 help="Written under the data dir's datasets/preferences/ folder.")
        if st.button("Export", type="primary", key="ld-export", icon=":material/download:"):
            st.session_state.pop("ld-result", None)
            with user_errors(), st.spinner("Expanding rankings into pairs…"), session_scope() as s:
                st.session_state["ld-result"] = export.export_to_data_dir(
                    s, name, out_name, fmt=fmt, strategy=strategy, margin=margin, consensus=consensus,
                    max_disagreement=threshold if drop else None, test_size=test_size)
        result = st.session_state.get("ld-result")
        if result:
            counts = ", ".join(f"{n} {part}" for part, n in result["rows"].items())
            st.success(f"{result['pairs']} pairs ({counts}) from {result['rankings']} rankings of {result['items']} "
                       f"items; {result['dropped_for_disagreement']} items dropped for disagreement.")
            st.markdown("Dataset for reward-model and DPO jobs:")
            st.code(result["dataset"], language="text")
            cols = st.columns(len(result["files"]))
            for col, (part, path) in zip(cols, result["files"].items(), strict=True):
                col.download_button(f"Download {part} ({Path(path).name})", Path(path).read_bytes(),
                                    file_name=Path(path).name, key=f"ld-download-{part}", icon=":material/download:")

with tab_import:
    st.markdown('One JSON object per line: `{"prompt": str, "completions": [str, …], "ranks": [int, …], '
                '"annotator": str}` — rank 1 = best, equal ranks = tie, optional `"flags": [bool, …]`, '
                '`"comment"`, `"seconds"`. Each row brings its own 2–9 completions. A flagged completion\'s rank is '
                'ignored and the other ranks re-densified. Each line is written whole or not at all: a refused line '
                'changes nothing and does not stop the others; the report below lists every line.')
    upload = st.file_uploader("Rankings file (JSONL)", type=["jsonl", "json"], key="ld-upload")
    target = st.text_input("Into campaign", key="ld-target", placeholder="an existing name, or a new one",
                           help="Created when it does not exist (its default K from the first good row; each "
                                "imported item keeps its own number of completions).")
    if st.button("Import", type="primary", key="ld-import", disabled=upload is None, icon=":material/upload:"):
        st.session_state.pop("ld-report", None)
        done = None
        with user_errors():
            lines = decode_utf8(upload.getvalue(), upload.name, "save it as UTF-8 JSONL",
                                max_bytes=importer.MAX_IMPORT_BYTES).splitlines()
            with session_scope(write=True) as s:
                accounts.require_admin(s, user["id"])
                done = importer.import_rankings(s, lines, target)
        st.session_state["ld-report"] = done  # set once the transaction has committed
    report = st.session_state.get("ld-report")
    if report:
        verb = "Created campaign" if report["created"] else "Campaign"
        st.success(f"{verb} '{report['campaign']}': {report['accepted']} ranking(s) imported, "
                   f"{len(report['rejected'])} rejected.")
        st.dataframe(import_report_table(report["lines"]), hide_index=True, width="stretch",
                     column_config={"detail": st.column_config.TextColumn("kept / why refused", width="large")})
