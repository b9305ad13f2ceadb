"""Loop Studio: the entry script (`streamlit run app/studio_app.py`, or `studio run`)."""

import streamlit as st

from app.common import startup

st.set_page_config(page_title="Loop Studio", page_icon="🔁", layout="wide")
startup()

pages = {
    "Experiment": [st.Page("page_playground.py", title="Playground", icon="💬", default=True)],
    "Label": [st.Page("page_labeling.py", title="Labeling", icon="🏷️")],
    "Train & evaluate": [
        st.Page("page_jobs.py", title="Jobs", icon="⚙️"),
        st.Page("page_evaluation.py", title="Evaluation", icon="📊"),
    ],
}
st.navigation(pages).run()
