"""The training-job interface shared by the local runner and SageMaker."""

from __future__ import annotations

from abc import ABC, abstractmethod

from core.entities import MetricPoint, TrainingJob
from core.training.compute import InstanceType
from core.training.spec import TrainingJobSpec


class JobRunner(ABC):
    """Starts, observes and stops training jobs.

    Invariants: job names are unique per backend; ``start`` returns at once with the job
    InProgress (the work runs elsewhere: a detached process, or SageMaker); returned objects
    are frozen; a job in a terminal state never changes again. Safe to use from several
    threads and processes.
    """

    backend_name: str
    default_instance_type: str
    """Where a job runs unless its spec says otherwise."""

    @abstractmethod
    def instance_types(self) -> list[InstanceType]:
        """The instance types a job can ask for here, the default among them."""

    @abstractmethod
    def price_per_hour(self, instance_type: str) -> float | None:
        """USD per instance hour of training on ``instance_type``; None where nobody says.

        Raises:
            BackendError: the price list could not be asked (AccessDenied, no network), in words.
        """

    @abstractmethod
    def start(self, spec: TrainingJobSpec) -> TrainingJob:
        """Starts a job and returns it InProgress.

        Raises:
            AlreadyExistsError: a job of that name exists.
            InvalidInputError: an input URI is not usable by this backend, or the compute is not
                offered here (an instance type, an instance count).
            BackendError: the job could not be started.
        """

    @abstractmethod
    def describe(self, name: str) -> TrainingJob:
        """The job's current state. Raises NotFoundError for an unknown name."""

    @abstractmethod
    def list_jobs(self, *, limit: int = 100) -> list[TrainingJob]:
        """Jobs, newest first. A listed job carries what a described one does: each equals ``describe(name)``."""

    @abstractmethod
    def stop(self, name: str) -> TrainingJob:
        """Asks a running job to stop (Stopping, then Stopped). A finished job is returned as
        it is. Raises NotFoundError for an unknown name."""

    @abstractmethod
    def metrics(self, name: str) -> list[MetricPoint]:
        """Metric values scraped so far, in order. Raises NotFoundError."""

    @abstractmethod
    def log_tail(self, name: str, max_lines: int = 200) -> list[str]:
        """The last lines of the job's log. Raises NotFoundError."""
