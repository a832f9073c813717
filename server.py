"""The one server: the Streamlit UI and the REST API (/api/v1, with its OpenAPI document at
/api/v1/openapi.json) in one process, sharing one database handle per workspace."""
from pathlib import Path

import streamlit as st
from starlette.routing import Mount

from api import api

app = st.App(str(Path(__file__).resolve().parent / "app.py"), routes=[Mount("/api/v1", app=api)])
