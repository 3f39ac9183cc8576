"""Navigation and the backend status in the sidebar; every page lives in app_pages/."""

from __future__ import annotations

import streamlit as st

from core.config import Settings
from core.errors import ConfigError, ConsoleError
from core.health import BackendHealth, check_health
from core.journey import next_step
from core.types import BackendKind
from app_pages._shared import backend, journey, next_step_link

st.set_page_config(page_title="SageMaker image-classifier console", page_icon=":material/pets:", layout="wide")


@st.cache_data(ttl=60, show_spinner=False)
def _health(key: str, _settings: Settings) -> BackendHealth:
    """The backend's health, checked at most once a minute (on AWS it is an STS call)."""
    return check_health(_settings)


navigation = st.navigation(
    [
        st.Page("app_pages/data.py", title="Data", icon=":material/folder_open:", default=True),
        st.Page("app_pages/training.py", title="Training jobs", icon=":material/model_training:"),
        st.Page("app_pages/tuning.py", title="Tuning", icon=":material/tune:"),
        st.Page("app_pages/debugger.py", title="Debugger", icon=":material/bug_report:"),
        st.Page("app_pages/profiler.py", title="Profiler", icon=":material/speed:"),
        st.Page("app_pages/deploy.py", title="Deploy", icon=":material/rocket_launch:"),
        st.Page("app_pages/spot.py", title="EC2 Spot", icon=":material/savings:"),
        st.Page("app_pages/lambda_fn.py", title="Lambda", icon=":material/functions:"),
    ]
)

with st.sidebar:
    try:
        settings = backend().settings
    except ConfigError as exc:
        st.error(f"Settings: {exc}")
        st.stop()
    health = _health(repr(settings), settings)
    st.markdown(f"**Backend:** `{settings.backend.value}`")
    (st.success if health.ok else st.error)(health.title)
    for line in health.details:
        st.caption(line)
    if health.ok:
        try:
            step = next_step(journey())
        except ConsoleError as exc:
            st.caption(f"Next step unknown: {exc}")
        else:
            if step is not None:
                next_step_link(step)

if settings.backend is BackendKind.AWS and not health.ok:
    # Every page lists AWS resources: without credentials, a bucket or a reachable API each would
    # fail with a traceback, so the app says once what is wrong and how to fix it instead.
    st.error(f"{health.title}: the pages need a working AWS backend.", icon=":material/cloud_off:")
    for line in health.details:
        st.markdown(f"- {line}")
    st.markdown("Fix the settings (profile, region, bucket and role: see the README), or start the app on the "
                "local backend with `SMC_BACKEND=local`.")
    if st.button("Check again", key="health_recheck"):
        _health.clear()
        st.rerun()
    st.stop()

navigation.run()
