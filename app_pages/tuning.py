"""Tuning: search hyperparameters over a dataset, follow the trials live, train or deploy the best."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import pandas as pd
import streamlit as st

from app_pages._compute import compute_fields, show_estimate
from app_pages._shared import TUNING_QUERY_PARAM, backend, job_views_links, rerun_after_change, show_error
from core.catalog import list_datasets
from core.entities import DatasetRecord
from core.job_environment import waiting_notice
from core.training import JobRunner
from core.training.launch import MODELS, instance_defaults, new_job_name, start_training
from core.training.spec import DEFAULT_METRIC_DEFINITIONS
from core.tuning import EarlyStopping, ObjectiveType, Strategy, Trial, TrialStatus, TuningJob, TuningJobSpec
from core.tuning.charts import importance_bar, learning_curves_figure, objective_over_time, parallel_coordinates
from core.tuning.form import (
    DEFAULT_RANGE_ROWS,
    RANGE_TYPES,
    build_ranges,
    fixed_hyperparameters,
    full_training_hyperparameters,
    longest_trial,
)
from core.tuning.importance import parameter_importance
from core.tuning.spec import TUNABLE_HYPERPARAMETERS, Scaling
from core.tuning.views import leaderboard, learning_curves

POLL_SECONDS = 2
RANGE_ROWS = 5
NAME_OPTIONS = ["", *sorted(TUNABLE_HYPERPARAMETERS)]
METRICS = [m.name for m in DEFAULT_METRIC_DEFINITIONS]
IMAGE_SIZES = [32, 64, 96, 128, 224]
FINISHED = {s.value for s in TrialStatus if s.is_terminal}
T = TypeVar("T")


def _or_error(call: Callable[[], T], fallback: T) -> T:
    """call's answer; if it fails, the error is shown and fallback stands in, so the rest of the page renders."""
    try:
        return call()
    except Exception as exc:
        show_error(exc)
        return fallback


st.title("Tuning")
be = backend()
datasets = _or_error(lambda: list_datasets(be), [])
listed: list[TuningJob] | None = _or_error(be.tuner.list_tuning_jobs, None)
tuning_jobs = listed or []


def _range_rows() -> list[dict[str, object]]:
    """One row of widgets per range; the first rows hold the defaults, the others are empty."""
    rows = []
    for i in range(RANGE_ROWS):
        default = DEFAULT_RANGE_ROWS[i] if i < len(DEFAULT_RANGE_ROWS) else {}
        labels = "visible" if i == 0 else "collapsed"
        c = st.columns([2, 1.6, 1.2, 1.2, 1.8, 1.6])
        rows.append({
            "name": c[0].selectbox("Hyperparameter", NAME_OPTIONS, NAME_OPTIONS.index(default.get("name", "")),
                                   format_func=lambda v: v or "— (unused)", key=f"tune_range_{i}_name",
                                   label_visibility=labels),
            "type": c[1].selectbox("Type", RANGE_TYPES, RANGE_TYPES.index(default.get("type", "Continuous")),
                                   key=f"tune_range_{i}_type", label_visibility=labels),
            "min": c[2].text_input("Min", default.get("min", ""), key=f"tune_range_{i}_min", label_visibility=labels),
            "max": c[3].text_input("Max", default.get("max", ""), key=f"tune_range_{i}_max", label_visibility=labels),
            "values": c[4].text_input("Values (categorical)", default.get("values", ""), key=f"tune_range_{i}_values",
                                      placeholder="a, b, c", label_visibility=labels),
            "scaling": c[5].selectbox("Scaling", [s.value for s in Scaling],
                                      [s.value for s in Scaling].index(default.get("scaling", "Auto")),
                                      key=f"tune_range_{i}_scaling", label_visibility=labels),
        })
    return rows


def _launch_form(datasets: list[DatasetRecord]) -> None:
    with st.form("new_tuning_job"):
        c1, c2 = st.columns(2)
        dataset_name = c1.selectbox("Dataset", [d.name for d in datasets], key="tune_dataset")
        name = c2.text_input("Tuning job name (empty: generated)", key="tune_name", max_chars=32,
                             placeholder=new_job_name("tune"))
        st.markdown("**Ranges** — numeric types use min and max, categorical uses the values")
        rows = _range_rows()
        st.markdown("**Objective and budget**")
        c1, c2, c3 = st.columns(3)
        metric = c1.selectbox("Objective metric", METRICS, METRICS.index("validation:accuracy"), key="tune_metric")
        objective_type = c2.radio("Goal", [o.value for o in ObjectiveType], horizontal=True, key="tune_goal")
        strategy = c3.selectbox("Strategy", [s.value for s in Strategy], key="tune_strategy")
        max_jobs = c1.number_input("Max trials", 1, 500, 6, key="tune_max_jobs")
        max_parallel = c2.number_input("Max parallel trials", 1, 500, 2, key="tune_max_parallel")
        early_stopping = c3.radio("Early stopping", [e.value for e in EarlyStopping], horizontal=True,
                                  key="tune_early_stopping", help="Auto stops trials whose objective lags the median")
        warm_start = st.multiselect("Warm start from", [j.name for j in tuning_jobs], key="tune_warm_start",
                                    help="Completed trials of these tuning jobs seed the search")
        st.markdown("**Fixed hyperparameters** (ignored where the same hyperparameter is tuned)")
        c1, c2, c3, c4 = st.columns(4)
        model = c1.selectbox("Model", MODELS, key="tune_model")
        image_size = c2.selectbox("Image size (px)", IMAGE_SIZES, IMAGE_SIZES.index(64), key="tune_image_size")
        epochs = c3.number_input("Epochs", 1, 200, 2, key="tune_epochs")
        max_steps = c4.number_input("Max steps per epoch (0: all)", 0, 100_000, 0, key="tune_max_steps")
        compute = compute_fields(be.runner, "tune")  # every trial's
        waiting = waiting_notice(be.runner)  # the trials are training jobs
        if waiting:
            st.caption(waiting)
        b1, b2 = st.columns([1, 4])
        launch = b1.form_submit_button("Launch tuning job", type="primary", disabled=bool(waiting))
        estimate = b2.form_submit_button("Estimate cost", help="Every trial's time and cost, timed by the newest "
                                         "finished job like the longest trial")
        dataset = next(d for d in datasets if d.name == dataset_name)
        fixed = {"model": model, "image-size": int(image_size), "epochs": int(epochs),
                 "max-steps-per-epoch": int(max_steps) or None}
        if estimate:
            try:
                ranges = build_ranges(rows)
            except Exception as exc:
                show_error(exc)
            else:
                show_estimate(be.runner, compute, longest_trial(ranges, fixed_hyperparameters(ranges, fixed)),
                              dataset.uri, trials=(int(max_jobs), int(max_parallel)),
                              searched={r.name for r in ranges if r.name != "epochs"})
        if launch:
            try:
                ranges = build_ranges(rows)
                static = fixed_hyperparameters(ranges, {**instance_defaults(be.runner, compute), **fixed})
                spec = TuningJobSpec(
                    name=name.strip() or new_job_name("tune"), ranges=ranges, inputs={"training": dataset.uri},
                    static_hyperparameters=static, objective_metric=metric,
                    objective_type=ObjectiveType(objective_type), strategy=Strategy(strategy),
                    max_jobs=int(max_jobs), max_parallel_jobs=int(max_parallel),
                    early_stopping=EarlyStopping(early_stopping), warm_start_from=tuple(warm_start),
                    **compute.spec_fields(),  # type: ignore[arg-type]
                )
                job = be.tuner.start(spec)
                st.session_state["selected_tuning_job"] = job.name
                st.success(f"Started {job.name}: {spec.max_jobs} trials, {spec.max_parallel_jobs} at a time")
            except Exception as exc:
                show_error(exc)


with st.expander("Launch a tuning job", expanded=not tuning_jobs):
    if not datasets:
        st.info("Ingest a dataset on the Data page first: every trial trains on it.")
        st.page_link("app_pages/data.py", label="Go to Data", icon=":material/folder_open:")
    else:
        _launch_form(datasets)

if listed is None:
    st.stop()  # the listing failed and says why above
tuning_jobs = _or_error(be.tuner.list_tuning_jobs, listed)  # again: the form may have started one
if not tuning_jobs:
    st.info("No tuning job yet: launch one above. The defaults search the learning rate (log scale), "
            "batch size and epochs over 6 trials, 2 at a time.")
    st.stop()


def _finished(job: TuningJob) -> int:
    """Trials that ended, from the counters (SageMaker adds objective counters: not trials)."""
    return sum(n for status, n in job.counts.items() if status in FINISHED)


def _job_row(job: TuningJob) -> dict[str, object]:
    return {
        "name": job.name,
        "status": job.status.value,
        "strategy": job.strategy,
        "objective": f"{job.objective_type} {job.objective_metric}",
        "trials done": _finished(job),
        "max trials": job.max_jobs,
        "best objective": job.best_objective,
        "created": pd.Timestamp(job.created_at, unit="s").strftime("%Y-%m-%d %H:%M:%S"),
    }


st.dataframe(pd.DataFrame([_job_row(j) for j in tuning_jobs]), hide_index=True, key="tuning_jobs_table")
names = [j.name for j in tuning_jobs]
if st.session_state.get("selected_tuning_job") not in names:
    st.session_state["selected_tuning_job"] = names[0]
selected = st.selectbox("Tuning job", names, key="selected_tuning_job")
is_active = not next(j for j in tuning_jobs if j.name == selected).status.is_terminal


@st.cache_data(show_spinner=False, max_entries=64)
def _importance(backend_key: str, name: str, completed: tuple[tuple[int, float | None], ...],
                _spec: TuningJobSpec, _trials: list[Trial]) -> dict[str, float]:
    """fANOVA over the completed trials, recomputed only when they change."""
    return parameter_importance(_spec, _trials)


@st.cache_data(show_spinner=False, ttl=30, max_entries=64)
def _curves(backend_key: str, name: str, metric: str, progress: tuple[tuple[int, str, int], ...],
            _runner: JobRunner, _trials: list[Trial]) -> pd.DataFrame:
    """Learning curves, read again when a trial reports an epoch (on AWS each read is a CloudWatch call)."""
    return learning_curves(_runner.metrics, _trials, metric)


def _highlight_best(row: pd.Series) -> list[str]:
    return ["background-color: rgba(46, 160, 67, 0.25)" if row["best"] else ""] * len(row)


def _charts(name: str, spec: TuningJobSpec, trials: list[Trial]) -> None:
    key = repr(be.settings)
    completed = tuple((t.number, t.objective) for t in trials if t.status is TrialStatus.COMPLETED)
    over_time, parallel, importance, curves = st.tabs(
        ["Objective over time", "Parallel coordinates", "Parameter importance", "Learning curves"])
    over_time.plotly_chart(objective_over_time(trials, spec), key="tune_chart_over_time")
    parallel.plotly_chart(parallel_coordinates(trials, spec), key="tune_chart_parallel")
    importance.plotly_chart(importance_bar(_importance(key, name, completed, spec, trials)),
                            key="tune_chart_importance")
    c1, c2 = curves.columns([3, 1])
    metric = c1.selectbox("Metric", METRICS, METRICS.index(spec.objective_metric), key="tune_curves_metric")
    log_y = c2.toggle("Log scale", key="tune_curves_log_y")
    progress = tuple((t.number, t.status.value, t.epochs_run) for t in trials)
    with curves:
        frame = _or_error(lambda: _curves(key, name, metric, progress, be.runner, trials), None)
    if frame is not None:
        curves.plotly_chart(learning_curves_figure(frame, log_y, metric=metric), key="tune_chart_curves")


def _dataset_of(spec: TuningJobSpec) -> DatasetRecord | None:
    uri = spec.inputs.get("training", "").rstrip("/")
    return next((d for d in list_datasets(be) if d.uri.rstrip("/") == uri), None)


def _best_panel(name: str, spec: TuningJobSpec) -> None:
    st.subheader("Best hyperparameters")
    try:
        best = be.tuner.best_trial(name)
    except Exception as exc:
        show_error(exc)
        return
    if best is None:
        st.info("No trial has completed yet: the best one shows here as soon as one has.")
        return
    st.metric(f"Best {spec.objective_metric}", f"{best.trial.objective:.4f}")
    st.markdown(f"Training job `{best.training_job.name}` (trial {best.trial.number + 1}), with these hyperparameters:")
    st.json(dict(best.hyperparameters))
    job_views_links(best.training_job.name)
    c1, c2, c3 = st.columns([1, 2, 2], vertical_alignment="bottom")
    epochs = c1.number_input("Epochs for the full run", 1, 200, int(best.hyperparameters.get("epochs", 2)),
                             key="tune_full_epochs", help="The full run also drops the trials' max steps per epoch")
    waiting = waiting_notice(be.runner)
    if c2.button("Train the best configuration in full", type="primary", key="tune_train_best",
                 disabled=bool(waiting), help=waiting):
        try:
            dataset = _dataset_of(spec)
            if dataset is None:
                st.error(f"The tuning job's dataset ({spec.inputs.get('training')}) is no longer in the catalog.")
            else:
                job = start_training(be, dataset, full_training_hyperparameters(best.hyperparameters, int(epochs)))
                st.session_state["selected_job"] = job.name
                st.session_state[f"tune_full_run_{name}"] = f"Started {job.name} on {dataset.name}"
        except Exception as exc:
            show_error(exc)
    if best.training_job.model_uri:
        c3.page_link("app_pages/deploy.py", label="Deploy the best model", icon=":material/rocket_launch:",
                     query_params={TUNING_QUERY_PARAM: name})
    started = st.session_state.get(f"tune_full_run_{name}")
    if started:  # kept in the session: the live fragment redraws every few seconds
        st.success(started)
        st.page_link("app_pages/training.py", label="Follow it on Training jobs", icon=":material/model_training:")


@st.fragment(run_every=POLL_SECONDS if is_active else None)
def tuning_details(name: str) -> None:
    """The job's counters and stop button, then its trials; a failed backend call shows its error
    and what does not need its answer still renders."""
    job = _or_error(lambda: be.tuner.describe(name), None)
    if job is None:
        return
    if is_active and job.status.is_terminal:
        rerun_after_change()  # refresh the job table and stop polling
    spec = _or_error(lambda: be.tuner.spec(name), None)
    counts = job.counts
    c = st.columns([1.6, 1, 1, 1, 1, 1.2])
    c[0].metric("Status", job.status.value)
    c[1].metric("Trials done", f"{_finished(job)} / {job.max_jobs}")
    c[2].metric("Running", counts.get(TrialStatus.IN_PROGRESS.value, 0))
    c[3].metric("Pruned", counts.get(TrialStatus.PRUNED.value, 0))
    c[4].metric("Failed", counts.get(TrialStatus.FAILED.value, 0))
    c[5].metric(f"Best ({job.objective_type.lower()})",
                f"{job.best_objective:.4f}" if job.best_objective is not None else "–")
    if spec is not None:
        st.caption(f"{spec.strategy.value} search of {spec.objective_metric}, "
                   f"early stopping {spec.early_stopping.value}, up to {spec.max_parallel_jobs} trials at a time")
    if job.failure_reason:
        st.error(job.failure_reason)
    if not job.status.is_terminal and st.button("Stop tuning job", key=f"tune_stop_{name}"):
        try:
            be.tuner.stop(name)
        except Exception as exc:
            show_error(exc)
    trials = None if spec is None else _or_error(lambda: be.tuner.trials(name), None)
    if spec is None or trials is None:
        return  # the leaderboard, charts and best trial need both
    if not trials:
        st.info("Waiting for the first trial to start…")
        return
    board = leaderboard(trials, spec)
    st.dataframe(board.style.apply(_highlight_best, axis=1), hide_index=True, key="tune_leaderboard",
                 column_config={"objective": st.column_config.NumberColumn(format="%.4f"),
                                "duration (s)": st.column_config.NumberColumn(format="%.0f"),
                                "best": st.column_config.CheckboxColumn("best")})
    failed = [t for t in trials if t.failure_reason and t.status is TrialStatus.FAILED]
    if failed:
        with st.expander(f"Why {len(failed)} trial(s) failed"):
            for t in failed:
                st.markdown(f"**{t.job_name}**: {t.failure_reason}")
    _charts(name, spec, trials)
    _best_panel(name, spec)


tuning_details(selected)
