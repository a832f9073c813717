"""Streamlit helpers shared by app.py and the pages: the database handle, language, datasets,
and the progress panel for background jobs. UI only; all logic lives in core."""
from __future__ import annotations

import streamlit as st

from core import jobs
from core.i18n import DEFAULT, LANGUAGES, t
from core.store import Store, open_store


@st.cache_resource(show_spinner=False)
def _store_for(home: str) -> Store:
    return open_store(home)


def store() -> Store:
    """The one shared database handle of this server process (per workspace)."""
    from core import config
    return _store_for(str(config.home()))


def lang() -> str:
    return st.session_state.get("lang") or st.session_state.get("ui_lang") or DEFAULT


def tr(key: str, **values) -> str:
    return t(key, lang(), **values)


def language_picker() -> None:
    if "lang" not in st.session_state and st.session_state.get("ui_lang"):
        st.session_state["lang"] = st.session_state["ui_lang"]
    st.sidebar.selectbox(tr("sidebar.language"), list(LANGUAGES), key="lang", format_func=LANGUAGES.get)
    # A plain copy survives runs in which the sidebar widget is not drawn.
    st.session_state["ui_lang"] = st.session_state["lang"]


def dataset_picker() -> dict | None:
    """Sidebar choice of the active dataset; returns its catalogue entry."""
    from core.datasets import list_datasets
    items = list_datasets(store())
    if not items:
        st.sidebar.caption(tr("sidebar.no_datasets"))
        st.session_state.pop("dataset", None)
        return None
    names = [d["name"] for d in items]
    requested = st.session_state.pop("dataset_request", None)
    if requested in names:
        st.session_state["dataset"] = requested
    if st.session_state.get("dataset") not in names:
        st.session_state["dataset"] = names[0]
    st.sidebar.selectbox(tr("sidebar.dataset"), names, key="dataset")
    # A plain copy survives runs in which the sidebar widget is not drawn.
    st.session_state["active_dataset"] = st.session_state["dataset"]
    return next(d for d in items if d["name"] == st.session_state["dataset"])


def active_dataset() -> dict | None:
    """The catalogue entry of the sidebar's active dataset, or None."""
    from core.datasets import get_dataset
    from core.errors import RiskdeskError
    from core.datasets import list_datasets
    name = st.session_state.get("dataset") or st.session_state.get("active_dataset")
    if name:
        try:
            return get_dataset(store(), name)
        except RiskdeskError:
            pass
    items = list_datasets(store())
    return get_dataset(store(), items[0]["name"]) if items else None


def select_dataset(name: str | None) -> None:
    """Ask the sidebar to make `name` the active dataset on the next run."""
    st.session_state["dataset_request"] = name


def job_progress(state_key: str) -> jobs.Job | None:
    """Show the job whose id is in session_state[state_key]; poll while it runs.

    Returns the job when it has finished (done or failed), else None."""
    job = jobs.get(st.session_state.get(state_key))
    if job is None:
        return None
    if not job.running:
        return job

    @st.fragment(run_every=0.5)
    def _poll():
        current = jobs.get(st.session_state.get(state_key))
        if current is None or not current.running:
            st.rerun()
        st.progress(current.progress, text=tr("common.progress", label=current.label,
                                              message=current.message or "…"))
    _poll()
    return None
