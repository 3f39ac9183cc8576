"""The launch forms' compute fields: instance type (the backend's list), count, volume, time limit
and managed spot, with what a job costs. Drawn inside a form; the backend checks the values when
the job starts."""

from __future__ import annotations

from collections.abc import Collection, Mapping

import streamlit as st

from app_pages._shared import show_error
from core.training import JobRunner
from core.training.compute import DEFAULT_MAX_RUNTIME_S, DEFAULT_VOLUME_SIZE_GB, Compute, InstanceType
from core.training.costs import TuningEstimate, describe_estimate, describe_tuning_estimate, estimate
from core.training.launch import job_hyperparameters

MAX_RUNTIME_MIN = 28 * 24 * 60  # SageMaker's longest MaxRuntimeInSeconds


def _instance_types(runner: JobRunner) -> list[InstanceType]:
    try:
        return runner.instance_types()
    except Exception as exc:  # the form still offers the default
        show_error(exc)
        return [InstanceType(runner.default_instance_type)]


def compute_fields(runner: JobRunner, key: str) -> Compute:
    """The fields, in an expander of the current form; returns what they say."""
    types = _instance_types(runner)
    names = [t.name for t in types]
    labels = {t.name: t.label for t in types}
    default = names.index(runner.default_instance_type) if runner.default_instance_type in names else 0
    with st.expander("Compute: instance type and count, storage, time limit, managed spot"):
        instance_type = st.selectbox("Instance type", names, index=default, format_func=labels.__getitem__,
                                     key=f"{key}_instance_type")
        c1, c2, c3 = st.columns(3)
        count = c1.number_input("Instance count", 1, 100, 1, key=f"{key}_instance_count",
                                help="Data-parallel training: every batch is split across the instances (and "
                                     "across the GPUs of each), which average their gradients. Locally, "
                                     "each instance is a training process on this machine")
        volume = c2.number_input("Volume (GB)", 1, 16_384, DEFAULT_VOLUME_SIZE_GB, key=f"{key}_volume",
                                 help="Each instance's storage: the dataset, checkpoints and the model")
        max_run = c3.number_input("Max run time (min)", 1, MAX_RUNTIME_MIN, DEFAULT_MAX_RUNTIME_S // 60,
                                  key=f"{key}_max_run", help="The job is stopped after this long")
        s1, s2 = st.columns([2, 1])
        use_spot = s1.checkbox("Managed spot training: spare capacity at a discount; an interrupted job "
                               "resumes from its last checkpoint (kept in S3 under the job's prefix)",
                               key=f"{key}_spot")
        max_wait = s2.number_input("Max wait, run time included (min)", 1, 2 * MAX_RUNTIME_MIN,
                                   2 * DEFAULT_MAX_RUNTIME_S // 60, key=f"{key}_max_wait",
                                   help="Spot only: how long to wait for capacity and run, in all")
    return Compute(instance_type=str(instance_type), instance_count=int(count), volume_size_gb=int(volume),
                   max_runtime_s=int(max_run) * 60, use_spot=bool(use_spot),
                   max_wait_s=int(max_wait) * 60 if use_spot else None)


def _price(runner: JobRunner, instance_type: str) -> tuple[float | None, str]:
    """(the price, or None with why not)."""
    try:
        return runner.price_per_hour(instance_type), ""
    except Exception as exc:  # the estimate goes on without a price
        return None, f"No price: {exc}"


def show_estimate(runner: JobRunner, compute: Compute, hyperparameters: Mapping[str, str | int | float],
                  dataset_uri: str, *, trials: tuple[int, int] | None = None, searched: Collection[str] = ()) -> None:
    """The expected time and cost of the job the form describes, and the batch size and workers it gets.

    trials: (max trials, at a time) of a tuning job, whose longest trial ``hyperparameters`` describe;
    searched: the hyperparameters the tuning job searches (a finished job with any value times it).
    """
    try:
        given = {key: value for key, value in job_hyperparameters(runner, hyperparameters, compute).items()
                 if key not in searched}
        price, why = _price(runner, compute.instance_type)
        expected = estimate(compute, given, dataset_uri, runner.list_jobs(), price)
    except Exception as exc:
        show_error(exc)
        return
    if trials is None:
        st.info(describe_estimate(expected, compute.instance_type))
    else:
        st.info(describe_tuning_estimate(TuningEstimate(expected, *trials), compute.instance_type))
    batch = given.get("batch-size", "searched")
    st.caption(f"Each job: batch size {batch}, {given['num-workers']} DataLoader workers per process.")
    if why:
        st.caption(why)


def job_prices(runner: JobRunner, instance_types: set[str]) -> dict[str, float | None]:
    """Each type's price; a price list that cannot be read is said once, and its costs stay blank."""
    prices, failures = {}, set()
    for instance_type in sorted(instance_types):
        prices[instance_type], why = _price(runner, instance_type)
        if why:
            failures.add(why)
    for why in sorted(failures):
        st.caption(f"Costs left blank. {why}")
    return prices
