"""What every page shares: the configured backend (cached) and error display."""

from __future__ import annotations

import streamlit as st

from core.backend import Backend, get_backend
from core.config import Settings, load_settings
from core.errors import ConsoleError


@st.cache_resource(show_spinner=False)
def _backend_for(key: str, _settings: Settings) -> Backend:
    return get_backend(_settings)


def backend() -> Backend:
    """The backend of the current settings (one instance per distinct settings)."""
    settings = load_settings()
    return _backend_for(repr(settings), settings)


def show_error(exc: Exception) -> None:
    """Shows a console error as it is; anything else as an unexpected failure."""
    if isinstance(exc, ConsoleError):
        st.error(str(exc), icon=":material/error:")
    else:
        st.error(f"Unexpected error ({type(exc).__name__}): {exc}", icon=":material/report:")


JOB_QUERY_PARAM = "job"
"""Links between pages carry the training job they are about as ``?job=NAME``."""


def job_picker(names: list[str], key: str) -> str:
    """A training-job selectbox that starts on the job a link named, else the job last chosen.

    The link's ``?job=`` parameter is read once and removed, so the user's own choice sticks.
    """
    linked = st.query_params.pop(JOB_QUERY_PARAM, None)
    if linked in names:
        st.session_state[key] = linked
    elif st.session_state.get(key) not in names:
        chosen = st.session_state.get("selected_job")
        st.session_state[key] = chosen if chosen in names else names[0]
    return st.selectbox("Training job", names, key=key)


def job_views_links(name: str) -> None:
    """Links to the Debugger and Profiler views of one training job."""
    left, right = st.columns(2)
    with left:
        st.page_link("app_pages/debugger.py", label=f"Debugger view of {name}", icon=":material/bug_report:",
                     query_params={JOB_QUERY_PARAM: name})
    with right:
        st.page_link("app_pages/profiler.py", label=f"Profiler view of {name}", icon=":material/speed:",
                     query_params={JOB_QUERY_PARAM: name})
