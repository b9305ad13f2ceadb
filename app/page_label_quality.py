"""Agreement & quality (admin): how much annotators agree, who is an outlier, which source wins, time per item.

The report is computed as the page opens: on arrays it takes about a second at 100,000 rankings, and it is kept
(in ``labeling.quality``) until a ranking is added or undone, so coming back is instant.
"""

import streamlit as st

from app.auth import require_admin
from app.common import campaigns_or_stop, user_errors
from app.components import labeling_charts as charts
from app.components.safe_text import escape_markdown
from backend.db.engine import session_scope
from labeling import gold, quality

st.title(":material/handshake: Agreement")
require_admin("see agreement statistics")

rows = campaigns_or_stop()
campaign_id = st.selectbox("Campaign", list(rows), key="lq-campaign",
                           format_func=lambda i: f"{rows[i]['name']} ({rows[i]['status']}, {rows[i]['rankings']} "
                                                 "judgements)")
report = None
with user_errors(), st.spinner("Reading every ranking of the campaign…"), session_scope() as s:
    report = quality.quality_report(s, campaign_id)
    report["annotators"] = quality.flag_outliers(report["annotators"])
if report is None:  # the campaign went away meanwhile: user_errors said so
    st.stop()
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

st.subheader("Gold items and speed")
threshold = st.slider("Flag an annotator whose gold accuracy is below", 0.0, 1.0, gold.GOLD_THRESHOLD, 0.05,
                      key="lq-gold-threshold", help=f"Needs at least {gold.MIN_GOLD} gold judgements. Mark gold "
                      "items and set their rate on the Campaigns page (Quality checks).")
with user_errors(), session_scope() as s:
    checks = gold.annotator_checks(s, campaign_id, threshold=threshold)
    for a in checks:
        if a["below_threshold"]:
            st.warning(f"**{escape_markdown(a['annotator'])}** picked the known best on {a['gold_accuracy']:.0%} of "
                       f"{a['gold_judged']} gold items (below {threshold:.0%}).", icon=":material/flag:")
    st.dataframe([{
        "annotator": a["annotator"], "gold judged": a["gold_judged"],
        "gold accuracy": "–" if a["gold_accuracy"] is None else
        f"{a['gold_accuracy']:.0%} [{a['gold_low']:.0%}, {a['gold_high']:.0%}]",
        "flagged": "below threshold" if a["below_threshold"] else "", "judgements": a["judgements"],
        "too fast": a["too_fast"], "too fast share": a["too_fast_share"]} for a in checks],
        hide_index=True, width="stretch",
        column_config={"too fast share": st.column_config.NumberColumn(format="percent")})
    st.caption("Gold accuracy: the known best completion ranked alone at the top; the interval resamples gold items. "
               "Too fast: under the campaign's seconds per completion.")
