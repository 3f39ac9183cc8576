"""The newcomer's path through the console: which steps a workspace has done, and the next one.

The pages show it as a checklist on a first visit and as a "next step" link in the sidebar,
so that nobody lands on a page without knowing what to do first.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from core.backend import Backend
from core.catalog import list_datasets
from core.endpoints import EndpointStatus
from core.types import JobStatus


class Step(str, Enum):
    """A step of the path, in order; the app maps each to the page that does it."""

    DATASET = "dataset"
    MODEL = "model"
    ENDPOINT = "endpoint"
    FUNCTION = "function"
    SPOT = "spot"


@dataclass(frozen=True)
class JourneyStep:
    step: Step
    title: str
    hint: str
    done: bool
    optional: bool = False


def journey_steps(backend: Backend) -> list[JourneyStep]:
    """The steps and whether this workspace has done each (one listing per kind of resource)."""
    jobs = backend.runner.list_jobs()
    return [
        JourneyStep(Step.DATASET, "Bring a dataset",
                    "Drop a zip of train/, valid/ and test/ folders, or take the bundled demo, and upload it.",
                    bool(list_datasets(backend))),
        JourneyStep(Step.MODEL, "Tune or train a model",
                    "Tune hyperparameters over a few trials (or train one job), then read the best trial's "
                    "Debugger and Profiler views.",
                    any(j.status is JobStatus.COMPLETED and j.model_uri for j in jobs)),
        JourneyStep(Step.ENDPOINT, "Deploy it to an endpoint",
                    "Deploy the best model and drop test images on it.",
                    any(e.status is EndpointStatus.IN_SERVICE for e in backend.endpoints.list_endpoints())),
        JourneyStep(Step.FUNCTION, "Call it from a Lambda function",
                    "Deploy the function with its least-privilege role and invoke it with a test image.",
                    bool(backend.functions.list_functions())),
        JourneyStep(Step.SPOT, "Train for less on EC2 Spot",
                    "Run the same training on a spot instance that checkpoints and resumes after interruptions.",
                    bool(backend.spot.list_runs(limit=1)), optional=True),
    ]


def next_step(steps: list[JourneyStep]) -> JourneyStep | None:
    """The first required step not done yet, else the first optional one; None when all are done."""
    required = [s for s in steps if not s.done and not s.optional]
    pending = required or [s for s in steps if not s.done]
    return pending[0] if pending else None
