"""Debugger: a job's losses, gradients, weights and rule findings, live while it runs."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app_pages._rule_actions import show_fired_rules, show_rule_actions
from app_pages._shared import JOB_QUERY_PARAM, backend, deploy_link, job_and_analysis, job_picker, show_error
from core.debugger import DebugStore, RuleStatus, charts, views
from core.entities import TrainingJob
from core.types import JobStatus

POLL_SECONDS = 3
_LEVELS = {"info": st.info, "warning": st.warning, "error": st.error}
_ICONS = {RuleStatus.ISSUES_FOUND: ":material/report:", RuleStatus.ERROR: ":material/error:"}

st.title("Debugger")
be = backend()


@st.cache_resource(show_spinner=False)
def _store(database: str) -> DebugStore:
    return DebugStore(be.store)


store = _store(str(be.store.path))


@st.cache_data(max_entries=16, show_spinner=False)
def _loss_curves(name: str, updated_at: float) -> pd.DataFrame:
    """Loss curves, read once per evaluator pass (the evaluator sets updated_at after adding rows)."""
    return views.loss_curves(store, name)


@st.cache_data(max_entries=16, show_spinner=False)
def _heatmap(name: str, updated_at: float, reduction: str) -> pd.DataFrame:
    """The gradient heatmap, read once per evaluator pass and reduction."""
    return views.heatmap(store, name, collection="gradients", reduction=reduction)


show_rule_actions(be.rule_actions)
jobs = be.runner.list_jobs()
if not jobs:
    st.info("No training job yet: start one on the Training jobs page.")
    st.page_link("app_pages/training.py", label="Go to Training jobs", icon=":material/model_training:")
    st.stop()

selected = job_picker([j.name for j in jobs], key="debug_job")
_job, _analysis = job_and_analysis(selected)
follow = not _job.status.is_terminal or _analysis.debugger_reading


def _rules(name: str, job: TrainingJob) -> None:
    rules = store.rules(name)
    if not rules:
        st.caption("No rule configured for this job yet.")
        return
    st.dataframe(views.rules_table(rules), hide_index=True, key=f"debug_rules_{name}", width="stretch")
    st.caption(f"{views.rules_summary(rules)}. Choose the rules and their StopTraining action when you start a job "
               "(Training jobs, Debugger section), or with the hyperparameter debug-rules, e.g. "
               "`LossNotDecreasing:stop,VanishingGradient`. With rule actions deployed, StopTraining goes through "
               "EventBridge and the action function.")
    for rule in rules:
        if rule.status in (RuleStatus.ISSUES_FOUND, RuleStatus.ERROR):
            with st.expander(f"{rule.rule}: {rule.status.value}", icon=_ICONS[rule.status]):
                if rule.message:
                    st.markdown(f"**Finding:** {rule.message}" + (f" (step {rule.step})" if rule.step is not None else ""))
                st.markdown(f"**What it means:** {rule.meaning}")
                st.markdown(f"**What to try:** {rule.advice}")
                st.caption(f"Parameters: {', '.join(f'{k}={v}' for k, v in rule.parameters.items()) or 'defaults'}")
    _service_rules(name)
    show_fired_rules(be.rule_actions, store, name, rules)


def _service_rules(name: str) -> None:
    try:
        own = be.analysis.service_rule_results(name)
    except Exception as exc:
        show_error(exc)
        return
    if own:
        st.markdown("**SageMaker Debugger's own rule evaluations**")
        st.dataframe(views.rules_table(own)[["rule", "status", "finding"]], hide_index=True, key=f"sm_rules_{name}")


def _notifications(name: str) -> None:
    notes = store.notifications(name, limit=20)
    if not notes:
        return
    with st.expander(f"Notifications ({len(notes)})", expanded=any(n.action == "StopTraining" for n in notes)):
        for note in notes:
            when = pd.Timestamp(note.created_at, unit="s").strftime("%H:%M:%S")
            _LEVELS.get(note.level, st.info)(f"{when} · {note.message}")


def _charts(name: str, updated_at: float) -> None:
    loss_tab, gradient_tab, weight_tab = st.tabs(["Loss", "Gradients", "Weights"])
    with loss_tab:
        curves = _loss_curves(name, updated_at)
        if curves.empty:
            st.caption("No loss saved yet.")
        else:
            st.plotly_chart(charts.loss_figure(curves), key=f"debug_loss_{name}")
    with gradient_tab:
        reduction = st.radio("Reduction", ["l2", "abs_mean", "max", "zero_fraction"], horizontal=True,
                             key="debug_grad_reduction")
        matrix = _heatmap(name, updated_at, reduction)
        if matrix.empty:
            st.caption("No gradient saved yet (gradients are saved every debug-save-interval training steps).")
        else:
            st.plotly_chart(charts.heatmap_figure(matrix, title=f"Gradient {reduction} per layer over steps",
                                                  log=reduction != "zero_fraction"), key=f"debug_heat_{name}")
    with weight_tab:
        _weights(name)


def _weights(name: str) -> None:
    collection = st.radio("Collection", ["weights", "biases", "gradients"], horizontal=True, key="debug_collection")
    tensors = [t for t, _ in store.tensors(name, collection)]
    if not tensors:
        st.caption(f"No {collection} saved yet.")
        return
    labels = {views.layer_name(t): t for t in tensors}
    layer = st.selectbox("Layer", list(labels), key=f"debug_layer_{collection}")
    stats = views.tensor_stats(store, name, collection, labels[layer])
    left, right = st.columns(2)
    left.plotly_chart(charts.stats_figure(stats, title=f"{layer}: distribution over steps"), key=f"debug_stats_{name}")
    norms = ["l2", "abs_mean"] + (["update_ratio"] if "update_ratio" in stats.columns else [])
    right.plotly_chart(charts.line_figure(stats, norms, title=f"{layer}: norms", log=True), key=f"debug_norm_{name}")
    profile = views.layer_profile(store, name, collection)
    if not profile.empty:
        st.plotly_chart(charts.profile_figure(profile, title=f"All {collection} at step {int(profile['step'].iloc[0])}"),
                        key=f"debug_profile_{name}")


@st.fragment(run_every=POLL_SECONDS if follow else None)
def debugger_view(name: str) -> None:
    job = be.runner.describe(name)
    analysis = be.analysis.ensure_analysed(job)
    if analysis.debugger:
        st.caption(analysis.debugger)
    if follow and job.status.is_terminal and not analysis.debugger_reading:
        st.rerun()  # stop polling once the job ended and its trial is read
    trial = store.trial(name)
    c1, c2, c3 = st.columns(3)
    c1.metric("Job status", job.status.value)
    c2.metric("Steps read", trial.steps if trial else 0)
    c3.metric("Evaluator", trial.state.value if trial else "–")
    c1, c2 = st.columns(2)
    c1.page_link("app_pages/profiler.py", label=f"Profiler view of {name}", icon=":material/speed:",
                 query_params={JOB_QUERY_PARAM: name})
    if job.status is JobStatus.COMPLETED and job.model_uri:
        deploy_link(name, column=c2)
    message = views.banner(trial, job_running=not job.status.is_terminal, reading=analysis.debugger_reading)
    if message:
        _LEVELS[message.level](message.text)
    _notifications(name)
    st.subheader("Rules")
    _rules(name, job)
    if trial and trial.steps:
        _charts(name, trial.updated_at)


try:
    debugger_view(selected)
except Exception as exc:
    show_error(exc)
