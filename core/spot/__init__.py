"""EC2 Spot training: price history and cost, launch on EC2, and a local spot simulator.

Pages get a manager with :func:`spot_manager` and never branch on the backend: the local
simulator and EC2 answer the same calls with the same entities and errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from core.spot._base import SpotManager
from core.spot._local import LocalSpotManager
from core.spot.entities import (
    AWS_NOTICE_S,
    INTERRUPTION_BEHAVIORS,
    REQUEST_TYPES,
    SpotEvent,
    SpotRun,
    SpotRunSpec,
    SpotRunStatus,
    parse_interrupt_schedule,
)
from core.spot.timeline import (
    CostEstimate,
    Interruption,
    estimate_cost,
    find_reference,
    instance_intervals,
    interruptions,
    run_cost,
)
from core.types import BackendKind

if TYPE_CHECKING:
    from core.backend import Backend
    from core.entities import TrainingJob

__all__ = [
    "AWS_NOTICE_S", "INTERRUPTION_BEHAVIORS", "REQUEST_TYPES", "CostEstimate", "completed_runs_as_jobs", "Interruption", "LocalSpotManager",
    "SpotEvent", "SpotManager", "SpotRun", "SpotRunSpec", "SpotRunStatus", "estimate_cost", "find_reference",
    "instance_intervals",
    "interruptions", "parse_interrupt_schedule", "run_cost", "spot_manager",
]


def spot_manager(backend: Backend) -> SpotManager:
    """The spot manager of a backend: the simulator locally, EC2 on aws (boto3 loads only then)."""
    settings = backend.settings
    if settings.backend is BackendKind.AWS:
        from core.aws import AwsSession
        from core.spot._aws import Ec2SpotManager

        return Ec2SpotManager(settings, AwsSession(settings), backend.store)
    from core.training import LocalJobRunner

    sidecars = [Path(s) for s in backend.runner.sidecars] if isinstance(backend.runner, LocalJobRunner) else []
    return LocalSpotManager(backend.store, settings.workspace / "jobs", settings.job_python, sidecars)


def completed_runs_as_jobs(backend: Backend, *, exclude: set[str]) -> list[TrainingJob]:
    """Completed spot runs with a model, as training jobs for the Deploy page's picker.

    Local runs are already recorded as training jobs when they complete (pass their names in
    ``exclude``); EC2 runs are only in the spot tables, so this is how Deploy sees them.
    """
    from core.entities import TrainingJob
    from core.spot.store import SpotStore
    from core.types import JobStatus

    return [
        TrainingJob(name=run.name, status=JobStatus.COMPLETED, backend=run.backend, created_at=run.created_at,
                    ended_at=run.ended_at, hyperparameters=run.spec.hyperparameters_as_strings,
                    inputs={"training": run.spec.data_uri}, model_uri=run.model_uri,
                    final_metrics=dict(run.final_metrics), instance_type=f"spot:{run.spec.instance_type}")
        for run in SpotStore(backend.store).list_runs(backend=backend.kind.value)
        if run.status is SpotRunStatus.COMPLETED and run.model_uri and run.name not in exclude
    ]
