"""Profiler: utilisation, cores, I/O, step durations, data loading vs compute, operators and findings of a job."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app_pages._kernels import show_kernels
from app_pages._shared import JOB_QUERY_PARAM, backend, deploy_link, job_and_analysis, job_picker, show_error
from app_pages._timeline import clicked_time, show_timeline
from core.profiler import ProfilerStore
from core.profiler.charts import build_figures
from core.profiler.views import ProfileView, load_profile, no_data_message
from core.types import JobStatus

POLL_SECONDS = 5

st.title("Profiler")
be = backend()


@st.cache_resource(show_spinner=False)
def _store(database: str) -> ProfilerStore:
    return ProfilerStore(be.store)


@st.cache_resource(max_entries=16, show_spinner=False)
def _prepared(name: str, updated_at: float | None, _store: ProfilerStore) -> tuple[ProfileView | None, dict]:
    """The view and its figures, computed once per analysis pass (updated_at is the cache key).

    Shared, not copied (cache_data would unpickle the hour-long figures on every rerun, which costs
    more than building them); nothing mutates them: st.plotly_chart serialises a copy.
    """
    view = load_profile(_store, name)
    return view, (build_figures(view) if view is not None and view.has_data else {})


jobs = be.runner.list_jobs()
if not jobs:
    st.info("No training job yet: start one on the Training jobs page; it is profiled while it runs.")
    st.page_link("app_pages/training.py", label="Go to Training jobs", icon=":material/model_training:")
    st.stop()

selected = job_picker([j.name for j in jobs], key="profiler_job")
store = _store(str(be.store.path))
_job, _analysis = job_and_analysis(selected)
follow = not _job.status.is_terminal or _analysis.profiler_reading


def _findings(view: ProfileView) -> None:
    fired = view.fired
    if fired:
        for finding in fired:
            st.warning(f"**{finding.rule}**: {finding.message}\n\n{finding.recommendation}", icon=":material/warning:")
    else:
        st.success("No rule found an issue.", icon=":material/check_circle:")
    with st.expander("All rules (ProfilerReport names and default thresholds)", expanded=not fired):
        st.dataframe(pd.DataFrame(view.findings_rows()), hide_index=True, key="profiler_findings")


def _overview(view: ProfileView) -> None:
    summary, steps = view.summary, view.steps
    c = st.columns(5)
    c[0].metric("Analysis", "live" if view.is_collecting else "final")
    interval = summary.get("interval_s")
    c[1].metric("Samples", f"{summary.get('samples', 0)}", help=f"every {1000 * interval:.0f} ms" if interval else None)
    c[2].metric("Training steps", f"{summary.get('steps', 0)}")
    c[3].metric("Images/s", f"{steps.get('images_per_s', 0):.1f}" if steps.get("count") else "–")
    c[4].metric("Mean step", f"{1000 * steps['mean_s']:.0f} ms" if steps.get("count") else "–")
    for error in view.errors:
        st.caption(f"⚠ {error}")


@st.fragment(run_every=POLL_SECONDS if follow else None)
def profile(name: str) -> None:
    job = be.runner.describe(name)
    analysis = be.analysis.ensure_analysed(job)
    if analysis.profiler:
        st.caption(analysis.profiler)
    if follow and job.status.is_terminal and not analysis.profiler_reading:
        st.rerun()  # a last full render with the final pass, then no more polling
    try:
        view, figures = _prepared(name, store.updated_at(name), store)
    except Exception as exc:
        show_error(exc)
        return
    c1, c2 = st.columns(2)
    c1.page_link("app_pages/debugger.py", label=f"Debugger view of {name}", icon=":material/bug_report:",
                 query_params={JOB_QUERY_PARAM: name})
    if job.status is JobStatus.COMPLETED and job.model_uri:
        deploy_link(name, column=c2)
    message = no_data_message(job, view, reading=analysis.profiler_reading)
    if message or view is None:
        st.info(message, icon=":material/speed:")
        return
    _overview(view)
    _findings(view)
    c1, c2 = st.columns([3, 1])
    report = store.report_html(name)
    if report:
        c1.download_button("Download the profiler report (HTML)", report, file_name=f"{name}-profiler-report.html",
                           mime="text/html", icon=":material/download:", key=f"profiler_report_{name}")
    if not job.status.is_terminal and c2.button("Stop job", icon=":material/stop_circle:", key=f"profiler_stop_{name}"):
        try:
            be.runner.stop(name)
        except Exception as exc:
            show_error(exc)
    tabs = st.tabs(["Utilisation", "Cores", "I/O", "Steps", "Data vs compute", "Operators", "Kernels", "System usage"])
    with tabs[0]:
        st.plotly_chart(figures["utilisation"], key=f"profiler_util_{name}")
        st.plotly_chart(figures["time_split"], key=f"profiler_split_{name}")
    with tabs[1]:
        st.plotly_chart(figures["cores"], key=f"profiler_cores_{name}")
    with tabs[2]:
        st.plotly_chart(figures["io"], key=f"profiler_io_{name}")
    with tabs[3]:
        if view.steps.get("count"):
            st.plotly_chart(figures["histogram"], key=f"profiler_hist_{name}")
            event = st.plotly_chart(figures["step_timeline"], key=f"profiler_steps_{name}", on_select="rerun",
                                    selection_mode="points")
            st.markdown("**Timeline** of the torch.profiler window (click a point above to open it at that step)")
            show_timeline(name, view, clicked_time(event))
            st.caption(f"Last {len(view.steps.get('recent', []))} steps")
            st.dataframe(pd.DataFrame(view.steps.get("recent", [])).drop(columns=["start"], errors="ignore"),
                         hide_index=True, key=f"profiler_recent_{name}")
        else:
            st.info("No training step timed yet.")
    with tabs[4]:
        if view.steps.get("count"):
            st.plotly_chart(figures["phase_split"], key=f"profiler_phases_{name}")
            st.dataframe(pd.DataFrame(view.epoch_rows()), hide_index=True, key=f"profiler_epochs_{name}")
        else:
            st.info("No training step timed yet.")
    with tabs[5]:
        windows = view.operators.get("windows", [])
        if not windows:
            st.info("No torch.profiler window recorded (profile-window off, or the job stopped before it).")
        for window in windows:
            st.caption(f"torch.profiler window: {window.get('steps')} step(s) from step {window.get('first_step')}, "
                       f"{', '.join(window.get('activities') or [])}; trace `{window.get('trace')}` "
                       "(its timeline: the Steps tab; its kernels: the Kernels tab)")
        if windows:
            st.markdown("**CPU operators by self time**")
            st.dataframe(pd.DataFrame(view.operator_rows("cpu")), hide_index=True, key=f"profiler_ops_cpu_{name}")
            if view.operator_rows("gpu"):
                st.markdown("**GPU operators by self time**")
                st.dataframe(pd.DataFrame(view.operator_rows("gpu")), hide_index=True, key=f"profiler_ops_gpu_{name}")
    with tabs[6]:
        show_kernels(name, view)
    with tabs[7]:
        st.dataframe(pd.DataFrame(view.usage_rows()), hide_index=True, key=f"profiler_usage_{name}")


profile(selected)
