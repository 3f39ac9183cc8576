"""The tuning interface shared by the local (Optuna) tuner and SageMaker."""

from __future__ import annotations

from abc import ABC, abstractmethod

from core.errors import NotFoundError
from core.training import JobRunner
from core.tuning.entities import BestTrial, Trial, TrialStatus, TuningJob
from core.tuning.spec import ObjectiveType, TuningJobSpec


class Tuner(ABC):
    """Starts, observes and stops hyperparameter tuning jobs.

    Invariants: ``start`` returns at once with the job InProgress; every trial is a real
    training job of ``runner`` whose name starts with ``<tuning job>-NNN`` (SageMaker adds a
    suffix); returned objects are frozen; a terminal tuning job never changes again. Safe to use
    from several threads and processes.
    """

    backend_name: str
    runner: JobRunner

    @abstractmethod
    def start(self, spec: TuningJobSpec) -> TuningJob:
        """Starts a tuning job.

        Raises:
            AlreadyExistsError: the name is taken.
            InvalidInputError: an input the backend cannot use, or an unknown warm-start job.
            BackendError: it could not be started.
        """

    @abstractmethod
    def describe(self, name: str) -> TuningJob:
        """The tuning job with its counters. Raises NotFoundError."""

    @abstractmethod
    def list_tuning_jobs(self, *, limit: int = 100) -> list[TuningJob]:
        """Tuning jobs, newest first."""

    @abstractmethod
    def stop(self, name: str) -> TuningJob:
        """Stops the tuning job and its running trials. Raises NotFoundError."""

    @abstractmethod
    def trials(self, name: str) -> list[Trial]:
        """Its trials by number. Raises NotFoundError."""

    @abstractmethod
    def spec(self, name: str) -> TuningJobSpec:
        """The spec the tuning job was started with. Raises NotFoundError."""

    def best_trial(self, name: str) -> BestTrial | None:
        """The best completed trial and its training job; None while no trial has completed.

        Raises:
            NotFoundError: no tuning job of that name.
        """
        spec = self.spec(name)
        done = [t for t in self.trials(name) if t.status is TrialStatus.COMPLETED and t.objective is not None]
        if not done:
            return None
        pick = max if spec.objective_type is ObjectiveType.MAXIMIZE else min
        best = pick(done, key=lambda t: t.objective)  # type: ignore[arg-type, return-value]
        try:
            job = self.runner.describe(best.job_name)
        except NotFoundError:
            return None
        return BestTrial(trial=best, training_job=job)
