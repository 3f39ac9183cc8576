"""What training costs: a job's bill once it ran, and an estimate before it starts.

SageMaker bills ``BillableTimeInSeconds`` of every instance at the type's price. With managed
spot the billable time is shorter than the training time (``TrainingTimeInSeconds``), and
SageMaker states the saving as ``1 - billable / training``. Local jobs run on this machine at no
charge. An estimate times the new job by the newest finished job like it (same dataset, model,
image size, batch size and instance type), scaled by its epochs and instance count; a tuning job's,
by its longest trial, times the trials.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from core.entities import TrainingJob
from core.training.compute import Compute
from core.types import JobStatus

ACCURACY_METRIC = "test:accuracy"
SIMILAR_BY = ("model", "image-size", "batch-size")
"""The hyperparameters two jobs must share to time one by the other (with the dataset and instance type);
one a tuning job searches matches any value."""


def _cost(seconds: float | None, instances: int, price_per_hour: float | None) -> float | None:
    """USD for ``seconds`` of ``instances`` at ``price_per_hour``; None where either is unknown."""
    if seconds is None or price_per_hour is None:
        return None
    return seconds / 3600 * instances * price_per_hour


@dataclass(frozen=True)
class Bill:
    """What a finished (or running) job is billed; None where the backend could not say."""

    training_s: float | None
    billable_s: float | None
    instance_count: int
    price_per_hour: float | None

    @property
    def cost(self) -> float | None:
        """USD: billable seconds × instances × price."""
        return _cost(self.billable_s, self.instance_count, self.price_per_hour)

    @property
    def spot_savings(self) -> float | None:
        """The share of the training time not billed (managed spot), as SageMaker computes it."""
        if not self.training_s or self.billable_s is None:
            return None
        return max(0.0, 1 - self.billable_s / self.training_s)


def bill(job: TrainingJob, price_per_hour: float | None) -> Bill:
    return Bill(job.training_s, job.billable_s, job.instance_count, price_per_hour)


def cost_per_point(cost: float | None, accuracy: float | None) -> float | None:
    """USD per point of test accuracy (accuracy 0.93 is 93 points)."""
    if cost is None or not accuracy:
        return None
    return cost / (accuracy * 100)


@dataclass(frozen=True)
class Estimate:
    """A new job's expected training time and cost, and what they rest on."""

    seconds: float | None
    basis: str
    instance_count: int
    price_per_hour: float | None

    @property
    def cost(self) -> float | None:
        return _cost(self.seconds, self.instance_count, self.price_per_hour)


def similar_job(jobs: Iterable[TrainingJob], dataset_uri: str, hyperparameters: Mapping[str, object],
                instance_type: str) -> TrainingJob | None:
    """The first completed job of ``jobs`` (newest first, as runners list them) on the same dataset
    and instance type with the same ``SIMILAR_BY`` hyperparameters, and a known training time."""
    wanted = {key: str(hyperparameters[key]) for key in SIMILAR_BY if hyperparameters.get(key) is not None}
    for job in jobs:
        if (job.status is JobStatus.COMPLETED and job.training_s and job.instance_type == instance_type
                and job.inputs.get("training") == dataset_uri
                and all(job.hyperparameters.get(key) == value for key, value in wanted.items())):
            return job
    return None


def estimate(compute: Compute, hyperparameters: Mapping[str, object], dataset_uri: str,
             jobs: Iterable[TrainingJob], price_per_hour: float | None) -> Estimate:
    """The expected time and cost of a job of ``hyperparameters`` on ``compute``.

    The time is the similar job's, times the epochs ratio, divided by the instance-count ratio (the
    instances split every batch; the real gain is smaller: see benchmarks/bench_data_parallel.py).
    """
    like = similar_job(jobs, dataset_uri, hyperparameters, compute.instance_type)
    if like is None or like.training_s is None:
        return Estimate(None, f"no finished job of this dataset, {', '.join(SIMILAR_BY)} and instance type "
                              "to time it by", compute.instance_count, price_per_hour)
    epochs, like_epochs = float(str(hyperparameters.get("epochs", 1))), float(like.hyperparameters.get("epochs", 1))
    seconds = like.training_s * epochs / like_epochs * like.instance_count / compute.instance_count
    basis = (f"timed by {like.name}: {like.training_s:.0f} s for {like_epochs:g} epochs on {like.instance_count} "
             f"× {like.instance_type}")
    return Estimate(seconds, basis, compute.instance_count, price_per_hour)


@dataclass(frozen=True)
class TuningEstimate:
    """A tuning job's expected time and cost: ``max_jobs`` trials like ``trial``, ``max_parallel`` at a time."""

    trial: Estimate
    max_jobs: int
    max_parallel: int

    @property
    def seconds(self) -> float | None:
        """Wall time: the trials in waves of ``max_parallel``."""
        waves = math.ceil(self.max_jobs / max(1, min(self.max_parallel, self.max_jobs)))
        return None if self.trial.seconds is None else self.trial.seconds * waves

    @property
    def cost(self) -> float | None:
        return None if self.trial.cost is None else self.trial.cost * self.max_jobs


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else (f"{minutes} min {secs} s" if minutes else f"{secs} s")


def _rate(count: int, instance_type: str, price_per_hour: float | None) -> str:
    price = "price unknown" if price_per_hour is None else f"${price_per_hour:.4g}/h"
    return f"{count} × {instance_type} at {price}"


def describe_estimate(estimate: Estimate, instance_type: str) -> str:
    """One line for the launch form: expected time, cost and what they rest on."""
    if estimate.price_per_hour == 0:
        cost = "on this machine at no charge"
    elif estimate.cost is not None:
        cost = f"{_rate(estimate.instance_count, instance_type, estimate.price_per_hour)} = ${estimate.cost:.2f}"
    elif estimate.price_per_hour is not None:
        hourly = estimate.price_per_hour * estimate.instance_count
        cost = f"{_rate(estimate.instance_count, instance_type, estimate.price_per_hour)}: ${hourly:.2f} per hour"
    else:
        cost = f"{_rate(estimate.instance_count, instance_type, None)}"
    expected = f"about {_duration(estimate.seconds)} of training" if estimate.seconds is not None else "time unknown"
    return f"Estimate: {expected}, {cost} ({estimate.basis})."


def describe_tuning_estimate(estimate: TuningEstimate, instance_type: str) -> str:
    """One line for the tuning form: at most, as early stopping ends some trials sooner."""
    trial = estimate.trial
    if trial.seconds is None or estimate.seconds is None:
        return (f"Estimate: time unknown; {estimate.max_jobs} trials of "
                f"{_rate(trial.instance_count, instance_type, trial.price_per_hour)} ({trial.basis}).")
    parallel = min(estimate.max_parallel, estimate.max_jobs)
    if trial.price_per_hour == 0:
        cost = "on this machine at no charge"
    elif estimate.cost is not None:
        cost = f"{estimate.max_jobs} × {_rate(trial.instance_count, instance_type, trial.price_per_hour)} × " \
               f"{_duration(trial.seconds)} = ${estimate.cost:.2f}"
    else:
        cost = "price unknown"
    return (f"Estimate, at most: {estimate.max_jobs} trials of about {_duration(trial.seconds)} each, {parallel} at a "
            f"time: about {_duration(estimate.seconds)} in all; {cost} (the longest trial {trial.basis}; early "
            f"stopping ends some trials sooner).")


def describe_bill(bill: Bill, instance_type: str, accuracy: float | None) -> str:
    """One line for a finished job: billed time and cost, spot savings, cost per accuracy point."""
    if bill.billable_s is None:
        return "Not billed yet: the bill is known once the job has ended."
    if bill.price_per_hour == 0:
        return f"Trained {_duration(bill.billable_s)} on this machine at no charge."
    parts = [f"Billed {_duration(bill.billable_s)} × {_rate(bill.instance_count, instance_type, bill.price_per_hour)}"
             + (f" = ${bill.cost:.4f}" if bill.cost is not None else "")]
    savings = bill.spot_savings
    if savings and bill.training_s:
        parts.append(f"managed spot saved {savings:.0%} ({_duration(bill.billable_s)} of "
                     f"{_duration(bill.training_s)} billed)")
    per_point = cost_per_point(bill.cost, accuracy)
    if per_point is not None:
        parts.append(f"${per_point:.4f} per point of test accuracy")
    return "; ".join(parts) + "."
