"""Navigation and the backend status in the sidebar; every page lives in app_pages/."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app_pages._shared import backend, forget_backend, journey, next_step_link
from core.backend import Backend
from core.errors import ConsoleError
from core.health import BackendHealth
from core.job_environment import JobEnvironmentPhase, read_state
from core.journey import next_step

# Served by the app itself: a ":material/…:" icon would make every page fetch it from the internet.
FAVICON = Path(__file__).parent / "app_pages" / "assets" / "favicon.png"

st.set_page_config(page_title="SageMaker image-classifier console", page_icon=str(FAVICON), layout="wide")


@st.cache_data(ttl=60, show_spinner=False)
def _health(key: str, _backend: Backend) -> BackendHealth:
    """The backend's health, checked at most once a minute (on AWS it is an STS call)."""
    return _backend.health()


# Session State: the phase the sidebar last showed (a change reruns the page, so its buttons follow),
# and whether this session saw the install (it then says when it is ready).
JOB_ENVIRONMENT_PHASE = "job_environment_phase"
JOB_ENVIRONMENT_WATCHED = "job_environment_watched"
JOB_ENVIRONMENT_POLL = "3s"


def _job_environment(job_python: Path) -> None:
    """The job environment's install while it runs or after it failed (scripts/start builds it in
    the background); when it ends the whole app reruns, so pages enable their job-side actions."""
    state = read_state(job_python)
    seen = st.session_state.get(JOB_ENVIRONMENT_PHASE)
    st.session_state[JOB_ENVIRONMENT_PHASE] = state.phase.value
    if seen is not None and seen != state.phase.value:
        _health.clear()  # its "Job environment" line too
        st.rerun()
    if state.phase is not JobEnvironmentPhase.READY:
        st.session_state[JOB_ENVIRONMENT_WATCHED] = True
    if state.phase is JobEnvironmentPhase.READY and st.session_state.get(JOB_ENVIRONMENT_WATCHED):
        st.success(f"Job environment ready (installed in {state.elapsed()}).", icon=":material/check_circle:")
    elif state.phase is JobEnvironmentPhase.INSTALLING:
        st.info(f"Job environment installing ({state.elapsed()} so far): training, tuning, spot runs, "
                "endpoints and functions wait for it.", icon=":material/downloading:")
        st.caption(state.log_tail(1))
    elif state.phase is JobEnvironmentPhase.FAILED:
        st.error(f"Job environment failed to install: {state.reason}. Run `scripts/setup` to retry.",
                 icon=":material/error:")
        with st.expander("Installer log"):
            st.code(state.log_tail(), language=None)
            st.caption(str(state.log))


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
        be = backend()
    except ConsoleError as exc:
        st.error(f"Settings: {exc}")
        st.stop()
    settings = be.settings
    health = _health(repr(settings), be)
    st.markdown(f"**Backend:** `{settings.backend.value}`")
    (st.success if health.ok else st.error)(health.title)
    for line in health.details:
        st.caption(line)
    installing = read_state(settings.job_python).phase is JobEnvironmentPhase.INSTALLING
    st.fragment(_job_environment, run_every=JOB_ENVIRONMENT_POLL if installing else None)(settings.job_python)
    if health.ok:
        try:
            step = next_step(journey())
        except ConsoleError as exc:
            st.caption(f"Next step unknown: {exc}")
        else:
            if step is not None:
                next_step_link(step)

if health.pages_need_it and not health.ok:
    # Every page lists remote resources: without credentials, a bucket or a reachable API each would
    # fail, so the app says once what is wrong and how to fix it instead.
    st.error(f"{health.title}: the pages need a working AWS backend.", icon=":material/cloud_off:")
    for line in health.details:
        st.markdown(f"- {line}")
    st.markdown("Fix the settings (profile, region, bucket and role: see the README), or start the app on the "
                "local backend with `SMC_BACKEND=local`.")
    if st.button("Check again", key="health_recheck"):  # with fresh credentials, if they were replaced
        _health.clear()
        forget_backend()
        st.rerun()
    st.stop()

navigation.run()
