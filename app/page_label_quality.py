"""Agreement & quality (admin): how much annotators agree, who is an outlier, which source wins, time per item.

The report reads every ranking of the campaign (seconds with 100,000 rankings), so it is computed on a button
and kept in session state with the number of rankings it saw.
"""

import streamlit as st

from app.auth import is_admin
from app.common import user_errors
from app.components import labeling_charts as charts
from app.components.safe_text import escape_markdown
from backend.db.engine import session_scope
from labeling import campaigns, quality

st.title(":material/handshake: Agreement")
if not is_admin():
    st.error("Only an admin can see agreement statistics.")
    st.stop()

with session_scope() as s:
    rows = {c["id"]: c for c in campaigns.list_campaigns(s)}
if not rows:
    st.info("No campaign yet: create one on the Campaigns page.")
    st.stop()
campaign_id = st.selectbox("Campaign", list(rows), key="lq-campaign",
                           format_func=lambda i: f"{rows[i]['name']} ({rows[i]['status']}, {rows[i]['rankings']} "
                                                 "judgements)")
campaign = rows[campaign_id]
cached = st.session_state.setdefault("lq-reports", {}).get(campaign_id)
stale = cached is not None and cached["seen"] != campaign["rankings"]
c1, c2 = st.columns([1, 3], vertical_alignment="center")
compute = c1.button("Recompute" if cached else "Compute agreement", type="primary", key="lq-compute",
                    icon=":material/calculate:")
if stale:
    c2.caption(f"Computed at {cached['seen']} judgements; there are {campaign['rankings']} now.")
if compute:
    with user_errors(), st.spinner("Reading every ranking of the campaign…"), session_scope() as s:
        report = quality.quality_report(s, campaign_id)
        report["annotators"] = quality.flag_outliers(report["annotators"])
        cached = st.session_state["lq-reports"][campaign_id] = {"seen": campaign["rankings"], "report": report}
if cached is None:
    st.info("Press **Compute agreement** to read the campaign's rankings.")
    st.stop()

report = cached["report"]
if not report["rankings"]:
    st.info("No rankings yet in this campaign.")
    st.stop()
m = st.columns(4)
m[0].metric("Krippendorff's α (ordinal)", "–" if report["alpha"] is None else f"{report['alpha']:.3f}",
            help="1 = perfect agreement, 0 = chance level; computed over items ranked by at least two annotators. "
                 "Above 0.667 is usually taken as acceptable for tentative conclusions.")
m[1].metric("Items ranked", report["items_judged"])
m[2].metric("Items shared", report["items_shared"], help="Ranked by two or more annotators.")
m[3].metric("Rankings", report["rankings"])
outliers = [a for a in report["annotators"] if a["outlier"]]
for a in outliers:
    st.warning(f"**{escape_markdown(a['annotator'])}** may have misunderstood the instructions: {a['why']}.", icon=":material/flag:")
if not report["items_shared"]:
    st.info("No item has been ranked by two annotators yet: agreement needs an overlap of at least 2.")

left, right = st.columns(2)
with left:
    if report["items_shared"]:
        charts.agreement_chart(report["annotators"], f"lq-{campaign_id}")
    charts.time_chart(report["times"], f"lq-{campaign_id}")
with right:
    if report["source_ranks"]:
        charts.source_chart(report["source_ranks"], f"lq-{campaign_id}")
charts.tables(report)
