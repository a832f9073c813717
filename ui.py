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
    return st.session_state.get("lang", DEFAULT)


def tr(key: str, **values) -> str:
    return t(key, lang(), **values)


def language_picker() -> None:
    st.sidebar.selectbox(tr("sidebar.language"), list(LANGUAGES), key="lang",
                         format_func=LANGUAGES.get)


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
    return next(d for d in items if d["name"] == st.session_state["dataset"])


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
