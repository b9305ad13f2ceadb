"""Loop Studio: the entry script (`streamlit run app/studio_app.py`, or `studio run`)."""

import streamlit as st

from app.common import startup

# Material icons ship with Streamlit's frontend; emoji need a system font many Linux servers lack.
st.set_page_config(page_title="Loop Studio", page_icon=":material/autorenew:", layout="wide")
startup()

pages = {
    "Experiment": [st.Page("page_playground.py", title="Playground", icon=":material/chat:", url_path="playground",
                           default=True)],
    "Label": [st.Page("page_labeling.py", title="Labeling", icon=":material/low_priority:", url_path="labeling")],
    "Train & evaluate": [
        st.Page("page_jobs.py", title="Jobs", icon=":material/model_training:", url_path="jobs"),
        st.Page("page_evaluation.py", title="Evaluation", icon=":material/leaderboard:", url_path="evaluation"),
    ],
}
st.navigation(pages).run()
