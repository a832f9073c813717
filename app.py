"""riskdesk: the Streamlit entry point (navigation and sidebar state)."""
from pathlib import Path

import streamlit as st

from ui import dataset_picker, language_picker, model_picker, restore_session, sign_in_gate, signed_in_box, tr

# a local icon: a Material icon as favicon would be fetched from a public font host
st.set_page_config(page_title="riskdesk", page_icon=str(Path(__file__).resolve().parent / "assets" / "riskdesk.png"),
                   layout="wide")

language_picker()

pages = [
    # the default page lives at "/"; server.py sends its own address (/data) there
    st.Page("pages/data.py", title=tr("nav.data"), icon=":material/database:", url_path="data", default=True),
    st.Page("pages/explore.py", title=tr("nav.explore"), icon=":material/query_stats:", url_path="explore"),
    st.Page("pages/rules.py", title=tr("nav.rules"), icon=":material/rule:", url_path="rules"),
    st.Page("pages/compare.py", title=tr("nav.compare"), icon=":material/leaderboard:", url_path="compare"),
    st.Page("pages/monitor.py", title=tr("nav.monitor"), icon=":material/monitor_heart:", url_path="monitor"),
    st.Page("pages/queue.py", title=tr("nav.queue"), icon=":material/checklist:", url_path="queue"),
    st.Page("pages/case.py", title=tr("nav.case"), icon=":material/search:", url_path="case"),
    st.Page("pages/audit.py", title=tr("nav.audit"), icon=":material/history:", url_path="audit"),
    st.Page("pages/people.py", title=tr("nav.people"), icon=":material/group:", url_path="people"),
]
# the page is resolved before signing in, so that a deep link (/compare) opens after it
navigation = st.navigation(pages, position="sidebar" if restore_session() else "hidden")
sign_in_gate()
st.sidebar.title(tr("app.title"))
st.sidebar.caption(tr("app.tagline"))
signed_in_box()
model_picker(dataset_picker())
navigation.run()
