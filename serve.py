"""Start the riskdesk app: `python serve.py [streamlit options]`.

Equivalent to `streamlit run app.py`, except that Streamlit is told up front that app.py
uses st.navigation. Otherwise, because a `pages/` folder exists, the first request after a
server start that deep-links to a page (e.g. /data) runs that page file on its own, without
app.py's sidebar (Streamlit's legacy multipage mode).
"""
import sys
from pathlib import Path

from streamlit.runtime.pages_manager import PagesManager
from streamlit.web import cli

PagesManager.uses_pages_directory = False
sys.argv = ["streamlit", "run", str(Path(__file__).resolve().parent / "app.py"), *sys.argv[1:]]
sys.exit(cli.main())
