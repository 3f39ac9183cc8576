"""Identifiers and status values shared by both backends (SageMaker's own spellings)."""

from __future__ import annotations

from enum import Enum


class JobStatus(str, Enum):
    """A training job's status, as SageMaker's `TrainingJobStatus`."""

    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPING = "Stopping"
    STOPPED = "Stopped"

    @property
    def is_terminal(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.STOPPED)


class BackendKind(str, Enum):
    """Where work runs: on this machine, or on AWS."""

    LOCAL = "local"
    AWS = "aws"
