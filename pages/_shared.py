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
