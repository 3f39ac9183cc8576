"""Frozen records of tuning jobs and their trials, the same for both backends."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from core.entities import TrainingJob, running_time
from core.types import JobStatus


class TrialStatus(str, Enum):
    """A trial's outcome. Pruned: stopped early because its objective lagged."""

    PENDING = "Pending"
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    FAILED = "Failed"
    PRUNED = "Pruned"
    STOPPED = "Stopped"

    @property
    def is_terminal(self) -> bool:
        return self not in (TrialStatus.PENDING, TrialStatus.IN_PROGRESS)


@dataclass(frozen=True)
class Trial:
    """One training job of a tuning job.

    Attributes:
        number: 0-based trial number.
        job_name: its training job (``<tuning job>-NNN``).
        hyperparameters: the tuned values (strings, as passed to the script).
        objective: the final objective value (None until it is known).
        epochs_run: how many objective values the trial reported.
        failure_reason: why it failed, including "objective metric never appeared".
    """

    number: int
    job_name: str
    status: TrialStatus
    hyperparameters: Mapping[str, str]
    objective: float | None = None
    epochs_run: int = 0
    started_at: float | None = None
    ended_at: float | None = None
    failure_reason: str | None = None

    @property
    def duration_s(self) -> float | None:
        return running_time(self.started_at, self.ended_at)


@dataclass(frozen=True)
class TuningJob:
    """A tuning job's state and counters (SageMaker's TrainingJobStatusCounters)."""

    name: str
    status: JobStatus
    backend: str
    created_at: float
    strategy: str
    objective_metric: str
    objective_type: str
    max_jobs: int
    max_parallel_jobs: int
    ended_at: float | None = None
    failure_reason: str | None = None
    counts: Mapping[str, int] = field(default_factory=dict)
    best_job_name: str | None = None
    best_objective: float | None = None


@dataclass(frozen=True)
class BestTrial:
    """The best trial of a tuning job with its training job, in one answer."""

    trial: Trial
    training_job: TrainingJob

    @property
    def hyperparameters(self) -> Mapping[str, str]:
        """Every hyperparameter of the best training job (tuned and static)."""
        return self.training_job.hyperparameters
