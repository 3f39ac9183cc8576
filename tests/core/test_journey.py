"""The newcomer's path: what an empty workspace is told first, and how the next step moves on."""

from __future__ import annotations

import time
from pathlib import Path

from core.backend import Backend, get_backend
from core.config import Settings
from core.entities import DatasetRecord, TrainingJob
from core.journey import JourneyStep, Step, journey_steps, next_step
from core.types import JobStatus


def _backend(tmp_path: Path) -> Backend:
    return get_backend(Settings(workspace=tmp_path / "workspace"))


def _step(step: Step, done: bool, optional: bool = False) -> JourneyStep:
    return JourneyStep(step, step.value, "", done, optional)


def test_an_empty_workspace_starts_with_a_dataset(tmp_path: Path) -> None:
    steps = journey_steps(_backend(tmp_path))
    assert [s.step for s in steps] == list(Step)
    assert not any(s.done for s in steps)
    assert [s.step for s in steps if s.optional] == [Step.SPOT]
    assert next_step(steps) == steps[0]


def test_a_dataset_then_a_completed_job_move_the_next_step_on(tmp_path: Path) -> None:
    backend = _backend(tmp_path)
    backend.store.put_dataset(DatasetRecord("digits", (tmp_path / "ds").as_uri(), "demo", time.time(), {}))
    assert next_step(journey_steps(backend)).step is Step.MODEL  # type: ignore[union-attr]

    backend.store.insert_job(TrainingJob(name="failed", status=JobStatus.FAILED, backend="local",
                                         created_at=time.time()))
    assert next_step(journey_steps(backend)).step is Step.MODEL  # type: ignore[union-attr]  # no model yet

    backend.store.insert_job(TrainingJob(name="done", status=JobStatus.COMPLETED, backend="local",
                                         created_at=time.time(), model_uri="file:///m/model.tar.gz"))
    steps = journey_steps(backend)
    assert [s.done for s in steps] == [True, True, False, False, False]
    assert next_step(steps).step is Step.ENDPOINT  # type: ignore[union-attr]


def test_optional_steps_come_after_the_required_ones_and_none_is_left_at_the_end() -> None:
    spot = _step(Step.SPOT, False, optional=True)
    assert next_step([_step(Step.DATASET, True), spot, _step(Step.ENDPOINT, False)]).step is Step.ENDPOINT  # type: ignore[union-attr]
    assert next_step([_step(Step.DATASET, True), spot]) == spot
    assert next_step([_step(Step.DATASET, True), _step(Step.SPOT, True, optional=True)]) is None
