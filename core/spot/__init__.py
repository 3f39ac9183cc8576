"""EC2 Spot training: price history and cost, launch on EC2, and a local spot simulator.

Pages get the manager as ``backend.spot`` and never branch on the backend: the local simulator
and EC2 answer the same calls with the same entities and errors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.spot._base import SpotManager
from core.spot._local import LocalSpotManager
from core.spot.entities import (
    AWS_NOTICE_S,
    INTERRUPTION_BEHAVIORS,
    MAX_VOLUME_GB,
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

if TYPE_CHECKING:
    from core.backend import Backend
    from core.entities import TrainingJob

__all__ = [
    "AWS_NOTICE_S",
    "INTERRUPTION_BEHAVIORS",
    "MAX_VOLUME_GB",
    "REQUEST_TYPES",
    "CostEstimate",
    "Interruption",
    "LocalSpotManager",
    "SpotEvent",
    "SpotManager",
    "SpotRun",
    "SpotRunSpec",
    "SpotRunStatus",
    "completed_runs_as_jobs",
    "estimate_cost",
    "find_reference",
    "instance_intervals",
    "interruptions",
    "parse_interrupt_schedule",
    "run_cost",
]


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
        for run in SpotStore(backend.store).list_runs(backend=backend.spot.backend_name)
        if run.status is SpotRunStatus.COMPLETED and run.model_uri and run.name not in exclude
    ]
