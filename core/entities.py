"""Frozen records that leave the backends. No SQL rows or boto3 dicts ever do."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from core.types import JobStatus


@dataclass(frozen=True)
class MetricPoint:
    """One value of a metric scraped from a job's log (as SageMaker metric definitions do)."""

    name: str
    value: float
    step: int
    timestamp: float


@dataclass(frozen=True)
class TrainingJob:
    """A training job as both backends describe it."""

    name: str
    status: JobStatus
    backend: str
    created_at: float
    hyperparameters: Mapping[str, str] = field(default_factory=dict)
    inputs: Mapping[str, str] = field(default_factory=dict)
    started_at: float | None = None
    ended_at: float | None = None
    failure_reason: str | None = None
    secondary_status: str | None = None
    model_uri: str | None = None
    final_metrics: Mapping[str, float] = field(default_factory=dict)
    instance_type: str = "local"
    instance_count: int = 1
    training_s: float | None = None
    """Seconds it trained (SageMaker's TrainingTimeInSeconds), once it ended."""
    billable_s: float | None = None
    """Seconds billed per instance (BillableTimeInSeconds; shorter with managed spot), once it ended."""

    @property
    def duration_s(self) -> float | None:
        return running_time(self.started_at, self.ended_at)


def running_time(started_at: float | None, ended_at: float | None) -> float | None:
    """Seconds from start to end (or to now while it runs); None before it starts."""
    if started_at is None:
        return None
    return (ended_at or time.time()) - started_at


@dataclass(frozen=True)
class DatasetRecord:
    """A dataset in the catalog: where it lives and what validation found."""

    name: str
    uri: str
    source: str
    created_at: float
    report: Mapping[str, object] = field(default_factory=dict)
