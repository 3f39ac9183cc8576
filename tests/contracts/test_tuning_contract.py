"""The Tuner contract (core/tuning/_base.py), held to the same assertions on both backends.

Locally a trial is a real local training job of ``entrypoints/train.py`` in the job environment:
a TuningJobSpec names no source_dir or entry point (the local supervisor starts every trial
with TrainingJobSpec's defaults, ``entrypoints/train.py``), so no stand-in script can take its
place and the trials run the real script with its smallest settings (one step of 8 px images,
no pretrained weights, no Debugger or Profiler capture). On aws the same spec goes to SageMaker,
which is moto behind the SageMaker stand-in (tests/standins): it creates every trial at once,
counts time in describes, and trial ``i`` reports the objective ``0.5 + i / 100``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.backend import Backend
from core.config import DEFAULT_JOB_PYTHON
from core.errors import AlreadyExistsError, NotFoundError
from core.training import JobRunner
from core.tuning import ContinuousRange, ObjectiveType, Strategy, TrialStatus, Tuner, TuningJob, TuningJobSpec
from core.types import JobStatus
from tests.entrypoints.test_train import _write_dataset

SMALLEST = {"epochs": 1, "batch-size": 2, "max-steps-per-epoch": 1, "image-size": 8, "num-workers": 0,
            "pretrained": "false", "debug": "false", "profile": "false"}
"""The cheapest real trial of entrypoints/train.py: one training step, then validation."""
LONG_EPOCHS = 1000
"""Epochs of a trial to be stopped: minutes of one-step epochs, stopped within seconds."""
WAIT_S = 180.0
UNKNOWN = "no-such-tuning-job"
MakeSpec = Callable[..., TuningJobSpec]


@pytest.fixture
def local_job_python() -> Path:
    """Trials run entrypoints/train.py, which needs torch: the job environment's interpreter."""
    return DEFAULT_JOB_PYTHON


@pytest.fixture
def tuner(backend: Backend) -> Iterator[Tuner]:
    """The backend's tuner; tuning jobs a test leaves running are stopped and waited for."""
    tuner = backend.tuner
    yield tuner
    running = [job.name for job in tuner.list_tuning_jobs() if not job.status.is_terminal]
    for name in running:
        tuner.stop(name)
    for name in running:
        _wait_until(tuner, name, lambda j: j.status.is_terminal)


@pytest.fixture
def runner(backend: Backend) -> JobRunner:
    return backend.runner


@pytest.fixture
def make_spec(backend: Backend, tmp_path: Path) -> MakeSpec:
    """Specs over a tiny ImageFolder dataset in the backend's own storage."""
    data = _write_dataset(tmp_path / "data", {"train": 2, "valid": 1})
    data_uri = backend.storage.put_folder(data, "datasets/tiny")

    def make(name: str, *, objective: tuple[str, ObjectiveType] = ("validation:accuracy", ObjectiveType.MAXIMIZE),
             max_jobs: int = 2, **static: str | int | float) -> TuningJobSpec:
        return TuningJobSpec(
            name=name, ranges=[ContinuousRange("lr", 1e-4, 1e-2)], inputs={"training": data_uri},
            static_hyperparameters={**SMALLEST, **static}, objective_metric=objective[0],
            objective_type=objective[1], strategy=Strategy.RANDOM, max_jobs=max_jobs, max_parallel_jobs=max_jobs,
        )

    return make


def _wait_until(tuner: Tuner, name: str, done: Callable[[TuningJob], bool]) -> TuningJob:
    job = tuner.describe(name)
    deadline = time.monotonic() + WAIT_S
    while not done(job):
        assert time.monotonic() < deadline, f"{name} never got there: {job}; trials {tuner.trials(name)}"
        time.sleep(0.2)
        job = tuner.describe(name)
    return job


def _wait_for_trials(tuner: Tuner, name: str) -> None:
    """Until the tuning job has launched a trial (locally: its supervisor runs and has recorded itself)."""
    deadline = time.monotonic() + WAIT_S
    while not tuner.trials(name):
        assert time.monotonic() < deadline, f"{name} launched no trial: {tuner.describe(name)}"
        time.sleep(0.1)


def test_start_returns_the_tuning_job_in_progress_under_its_name(tuner: Tuner, make_spec: MakeSpec) -> None:
    spec = make_spec("tune-start")

    job = tuner.start(spec)

    assert job.name == "tune-start"
    assert job.status is JobStatus.IN_PROGRESS
    assert job.backend == tuner.backend_name
    assert (job.objective_metric, job.objective_type) == ("validation:accuracy", "Maximize")
    assert (job.strategy, job.max_jobs, job.max_parallel_jobs) == ("Random", 2, 2)
    assert job.ended_at is None
    assert tuner.best_trial("tune-start") is None  # no trial has completed yet
    assert tuner.spec("tune-start").ranges == spec.ranges


def test_a_second_start_with_the_same_name_already_exists(tuner: Tuner, make_spec: MakeSpec) -> None:
    tuner.start(make_spec("tune-twice", max_jobs=1))

    with pytest.raises(AlreadyExistsError):
        tuner.start(make_spec("tune-twice", max_jobs=1, epochs=2))
    assert [j.name for j in tuner.list_tuning_jobs()] == ["tune-twice"]
    assert tuner.spec("tune-twice").static_hyperparameters["epochs"] == "1"  # the first one's, as a string


@pytest.mark.parametrize("operation", ["describe", "trials", "best_trial", "stop", "spec"])
def test_an_unknown_tuning_job_is_not_found(tuner: Tuner, operation: str) -> None:
    with pytest.raises(NotFoundError):
        getattr(tuner, operation)(UNKNOWN)


def test_tuning_jobs_end_with_their_trials_and_the_best_trial_for_their_objective_type(
    tuner: Tuner, runner: JobRunner, make_spec: MakeSpec
) -> None:
    """A maximized and a minimized tuning job, run side by side (their trials are the slow part)."""
    objectives = {"tune-max": ("validation:accuracy", ObjectiveType.MAXIMIZE),
                  "tune-min": ("validation:loss", ObjectiveType.MINIMIZE)}
    for name, objective in objectives.items():
        tuner.start(make_spec(name, objective=objective))

    finals = {name: _wait_until(tuner, name, lambda j: j.status.is_terminal) for name in objectives}

    listed_jobs = {job.name: job for job in runner.list_jobs()}
    for name, (_metric, objective_type) in objectives.items():
        final = finals[name]
        assert final.status is JobStatus.COMPLETED, final.failure_reason
        assert final.ended_at is not None and final.ended_at >= final.created_at
        trials = tuner.trials(name)
        assert [t.number for t in trials] == [0, 1]
        for trial in trials:
            assert trial.status is TrialStatus.COMPLETED, trial.failure_reason
            assert trial.objective is not None
            assert re.match(rf"{name}-{trial.number + 1:03d}", trial.job_name), trial.job_name
            assert set(trial.hyperparameters) == {"lr"}
            job = runner.describe(trial.job_name)
            assert job == listed_jobs[trial.job_name]
            assert job.status is JobStatus.COMPLETED
            assert {k: job.hyperparameters[k] for k in trial.hyperparameters} == dict(trial.hyperparameters)
            assert job.hyperparameters["image-size"] == "8"  # a static hyperparameter of the spec
        assert final.counts.get(TrialStatus.COMPLETED.value) == 2
        pick = max if objective_type is ObjectiveType.MAXIMIZE else min
        best = tuner.best_trial(name)
        assert best is not None
        assert best.trial in trials
        assert best.trial.objective == pick(t.objective for t in trials)  # type: ignore[type-var]
        assert best.training_job == runner.describe(best.trial.job_name)
        assert (final.best_job_name, final.best_objective) == (best.trial.job_name, best.trial.objective)
        assert tuner.describe(name) == final  # a finished tuning job never changes
        assert tuner.stop(name) == final  # stopping a finished one changes nothing
    assert {job.name: job.status for job in tuner.list_tuning_jobs()} == {
        "tune-max": JobStatus.COMPLETED, "tune-min": JobStatus.COMPLETED}


def test_stop_ends_the_tuning_job_and_its_trials_stopped(
    tuner: Tuner, runner: JobRunner, make_spec: MakeSpec
) -> None:
    tuner.start(make_spec("tune-stop", epochs=LONG_EPOCHS))
    _wait_for_trials(tuner, "tune-stop")

    stopping = tuner.stop("tune-stop")

    assert stopping.status in (JobStatus.STOPPING, JobStatus.STOPPED)
    final = _wait_until(tuner, "tune-stop", lambda j: j.status.is_terminal)
    assert final.status is JobStatus.STOPPED
    assert final.ended_at is not None
    trials = tuner.trials("tune-stop")
    assert trials and {t.status for t in trials} == {TrialStatus.STOPPED}
    for trial in trials:
        job = runner.describe(trial.job_name)
        deadline = time.monotonic() + WAIT_S
        while not job.status.is_terminal:  # the trial's training job may still be winding down
            assert time.monotonic() < deadline, job
            time.sleep(0.1)
            job = runner.describe(trial.job_name)
        assert job.status is JobStatus.STOPPED
    assert tuner.best_trial("tune-stop") is None
    assert tuner.stop("tune-stop") == final
