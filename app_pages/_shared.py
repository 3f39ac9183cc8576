"""What every page shares: the configured backend (cached), error display, the links between pages
and the newcomer's path."""

from __future__ import annotations

import logging
from typing import NoReturn

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from core.analysis import AnalysisNotes
from core.backend import Backend, get_backend
from core.config import Settings, load_settings
from core.entities import TrainingJob
from core.errors import ConsoleError
from core.journey import JourneyStep, Step, journey_steps


@st.cache_resource(show_spinner=False)
def _backend_for(key: str, _settings: Settings) -> Backend:
    return get_backend(_settings)


def backend() -> Backend:
    """The backend of the current settings (one instance per distinct settings)."""
    settings = load_settings()
    return _backend_for(repr(settings), settings)


def forget_backend() -> None:
    """Builds the backend afresh on next use: new credentials or settings are then picked up."""
    _backend_for.clear()


def show_error(exc: Exception) -> None:
    """Shows a console error as it is; anything else as an unexpected failure."""
    if isinstance(exc, ConsoleError) and str(exc):
        st.error(str(exc), icon=":material/error:")
    else:
        detail = str(exc) or "it gave no message; the app's log has the traceback"
        st.error(f"Unexpected error ({type(exc).__name__}): {detail}", icon=":material/report:")
        logging.getLogger(__name__).error("unexpected error shown on a page", exc_info=exc)


def job_and_analysis(name: str) -> tuple[TrainingJob, AnalysisNotes]:
    """The job as described now, with its Debugger and Profiler analysis started where it must be;
    on an error, says it and stops the page."""
    be = backend()
    try:
        job = be.runner.describe(name)
        return job, be.analysis.ensure_analysed(job)
    except Exception as exc:
        show_error(exc)
        st.stop()


JOB_QUERY_PARAM = "job"
"""Links between pages carry the training job they are about as ``?job=NAME``."""
TUNING_QUERY_PARAM = "tuning"
"""... the tuning job whose best trial they are about as ``?tuning=NAME``."""
ENDPOINT_QUERY_PARAM = "endpoint"
"""... and the endpoint as ``?endpoint=NAME``."""

JOURNEY_PAGES = {
    Step.DATASET: ("app_pages/data.py", ":material/folder_open:"),
    Step.MODEL: ("app_pages/tuning.py", ":material/tune:"),
    Step.ENDPOINT: ("app_pages/deploy.py", ":material/rocket_launch:"),
    Step.FUNCTION: ("app_pages/lambda_fn.py", ":material/functions:"),
    Step.SPOT: ("app_pages/spot.py", ":material/savings:"),
}
"""The page that does each step of the newcomer's path, and its icon."""


def take_linked_choice(param: str, names: list[str], key: str) -> bool:
    """Starts the widget ``key`` on the item a link named as ``?param=``; True if it did.

    The parameter is read once and removed, so the user's own choice sticks afterwards.
    """
    linked = st.query_params.pop(param, None)
    if linked in names:
        st.session_state[key] = linked
        return True
    return False


def job_picker(names: list[str], key: str) -> str:
    """A training-job selectbox that starts on the job a link named, else the job last chosen."""
    if not take_linked_choice(JOB_QUERY_PARAM, names, key) and st.session_state.get(key) not in names:
        chosen = st.session_state.get("selected_job")
        st.session_state[key] = chosen if chosen in names else names[0]
    return st.selectbox("Training job", names, key=key)


def job_views_links(name: str, *, deployable: bool = False) -> None:
    """Links to the Debugger and Profiler views of one training job, and to deploying its model."""
    columns = st.columns(3 if deployable else 2)
    columns[0].page_link("app_pages/debugger.py", label=f"Debugger view of {name}", icon=":material/bug_report:",
                         query_params={JOB_QUERY_PARAM: name})
    columns[1].page_link("app_pages/profiler.py", label=f"Profiler view of {name}", icon=":material/speed:",
                         query_params={JOB_QUERY_PARAM: name})
    if deployable:
        deploy_link(name, column=columns[2])


def deploy_link(job_name: str, *, column: DeltaGenerator | None = None) -> None:
    """A link to the Deploy page with this training job's model chosen."""
    (column or st).page_link("app_pages/deploy.py", label=f"Deploy the model of {job_name}",
                             icon=":material/rocket_launch:", query_params={JOB_QUERY_PARAM: job_name})


@st.cache_data(ttl=3, show_spinner=False)
def _journey_for(key: str, _backend: Backend) -> list[JourneyStep]:
    return journey_steps(_backend)


def journey() -> list[JourneyStep]:
    """The workspace's progress along the newcomer's path. Every page shows the next step, so where
    each listing is an API call (AWS) it is listed at most every 3 s; where listing is cheap (a few
    SQLite queries) it is always current, so the step moves on as soon as an action finishes."""
    be = backend()
    if be.lists_cheaply:
        return journey_steps(be)
    return _journey_for(repr(be.settings), be)


def rerun_after_change() -> NoReturn:
    """Reruns the script after an action created, deleted or settled a resource, with the journey
    listed afresh: the sidebar is drawn before the page, so without this its next step would lag
    behind the action by one interaction (and by the 3 s cache on AWS)."""
    _journey_for.clear()
    st.rerun()


def next_step_link(step: JourneyStep) -> None:
    page, icon = JOURNEY_PAGES[step.step]
    st.page_link(page, label=f"Next: {step.title}", icon=icon, help=step.hint)


def journey_checklist(steps: list[JourneyStep]) -> None:
    """The newcomer's path as a checklist, each step linking to its page."""
    for number, step in enumerate(steps, start=1):
        page, icon = JOURNEY_PAGES[step.step]
        mark = "✅" if step.done else ("◻️ (optional)" if step.optional else "◻️")
        st.page_link(page, label=f"{number}. {step.title} {mark}", icon=icon)
        if not step.done:
            st.caption(step.hint)
