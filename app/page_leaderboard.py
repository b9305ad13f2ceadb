"""Leaderboard (admin): which completion source wins — Bradley–Terry ratings with 95 % intervals from every pairwise
outcome, the win-rate matrix between sources, and the loop's rounds (round 1 → round 2)."""

import pandas as pd
import streamlit as st

from app.auth import require_admin
from app.common import campaigns_or_stop, user_errors
from app.components.leaderboard_charts import ratings_chart, win_matrix_chart
from backend.db.engine import session_scope
from labeling import leaderboard

ALL = 0

st.title(":material/emoji_events: Leaderboard")
require_admin("see the leaderboard")

rows = campaigns_or_stop()
choice = st.selectbox("Campaign", [ALL, *rows], key="lbd-campaign",
                      format_func=lambda i: "All campaigns, by round" if i == ALL else
                      f"{rows[i]['name']} (round {rows[i]['round']}, {rows[i]['rankings']} judgements)",
                      help="All campaigns together put every source on one scale; a source ranked in two campaigns "
                           "links them.")
board = None
with user_errors(), st.spinner("Fitting ratings and their intervals…"), session_scope() as s:
    board = leaderboard.leaderboard(s, None if choice == ALL else rows[choice]["name"])
if board is None:  # no comparison yet, or the campaign went away: user_errors said so
    st.stop()

m = st.columns(3)
m[0].metric("Sources", len(board["sources"]))
m[1].metric("Comparisons", f"{board['comparisons']:,}", help="Pairs of completions from different sources within "
            "one judgement; a tie counts half a win for each.")
m[2].metric("Items", f"{board['items']:,}", help="The bootstrap resamples items: their comparisons move together.")
table = pd.DataFrame([{"source": r["source"], "rating": round(r["rating"]),
                       "95 % interval": f"[{r['low']:.0f}, {r['high']:.0f}]", "comparisons": r["comparisons"],
                       "win rate": r["win_rate"]} for r in board["sources"]])
st.dataframe(table, hide_index=True, width="stretch",
             column_config={"win rate": st.column_config.NumberColumn(format="percent")})
st.caption(f"{board['method']}. Two sources whose intervals overlap are not separated by these judgements: their "
           "order is noise.")
ratings_chart(board["sources"], "lbd")
win_matrix_chart([r["source"] for r in board["sources"]], board["matrix"], "lbd")
if board["rounds"]:
    st.subheader("Rounds of the loop")
    st.caption("A campaign made from evaluated models (Evaluation → send to labeling) is one round after the latest "
               "campaign that ranked those models or the models they were trained from.")
    st.dataframe(pd.DataFrame([{
        "round": r["round"], "campaigns": ", ".join(r["campaigns"]), "made from": ", ".join(r["parent_models"]) or "–",
        "best source": r["best_source"] or "–",
        "its rating": "–" if r["best_rating"] is None else
        f"{r['best_rating']:.0f} [{r['best_low']:.0f}, {r['best_high']:.0f}]"} for r in board["rounds"]]),
        hide_index=True, width="stretch")
