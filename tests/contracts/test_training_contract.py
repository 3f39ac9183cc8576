"""The JobRunner contract (core/training/_base.py), held to the same assertions on both backends.

Local jobs run a small stand-in script (no torch) with the app's interpreter; on aws the same
spec goes to SageMaker, which is moto behind the SageMaker stand-in (tests/standins): there a
job is InProgress for a few describes and then Completed, and StopTrainingJob works as on AWS.
"""

from __future__ import annotations

import itertools
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from core.backend import Backend
from core.entities import TrainingJob
from core.errors import AlreadyExistsError, NotFoundError
from core.training import JobRunner, TrainingJobSpec
from core.types import JobStatus

SCRIPT = textwrap.dedent(
    """
    import argparse, os, signal, sys, time
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--sleep", type=float, default=0)
    args, _ = parser.parse_known_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    for epoch in range(1, args.epochs + 1):
        print(f"epoch={epoch} train_loss={1.0 / epoch:.4f} valid_acc={0.5 + epoch / 10:.4f}", flush=True)
    time.sleep(args.sleep)
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.pth"), "w") as f:
        f.write("weights")
    """
)
LONG_S = 20
"""How long a job to be stopped sleeps. It is stopped within a second; should the stop land
before the local supervisor has started the script (a window of milliseconds), the script
runs this long and the job still ends Stopped."""
WAIT_S = 60.0
ALLOWED_NEXT = {
    JobStatus.IN_PROGRESS: {JobStatus.IN_PROGRESS, JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.STOPPING,
                            JobStatus.STOPPED},
    JobStatus.STOPPING: {JobStatus.STOPPING, JobStatus.STOPPED},
    **{terminal: {terminal} for terminal in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.STOPPED)},
}
"""The statuses a job may show next: a terminal one never changes."""
UNKNOWN = "no-such-job-anywhere"
MakeSpec = Callable[..., TrainingJobSpec]


@pytest.fixture
def runner(backend: Backend) -> JobRunner:
    return backend.runner


@pytest.fixture
def make_spec(backend: Backend, tmp_path: Path) -> MakeSpec:
    """Specs of the stand-in script over a tiny dataset in the backend's own storage."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "train.py").write_text(SCRIPT)
    data = tmp_path / "data"
    (data / "train" / "a").mkdir(parents=True)
    (data / "train" / "a" / "1.txt").write_text("1")
    data_uri = backend.storage.put_folder(data, "datasets/tiny")

    def make(name: str, **hyperparameters: str | int | float) -> TrainingJobSpec:
        return TrainingJobSpec(name=name, inputs={"training": data_uri}, hyperparameters=hyperparameters,
                               source_dir=source)

    return make


def _wait_until(runner: JobRunner, name: str, done: Callable[[TrainingJob], bool]) -> list[TrainingJob]:
    """Describes the job until done(job); returns every description seen."""
    seen = [runner.describe(name)]
    deadline = time.monotonic() + WAIT_S
    while not done(seen[-1]):
        assert time.monotonic() < deadline, f"{name} never got there: {seen[-1]}"
        time.sleep(0.1)
        seen.append(runner.describe(name))
    return seen


def _assert_valid_path(statuses: list[JobStatus]) -> None:
    for before, after in itertools.pairwise(statuses):
        assert after in ALLOWED_NEXT[before], f"{before.value} -> {after.value} in {[s.value for s in statuses]}"


def test_start_returns_the_job_in_progress_under_its_name(runner: JobRunner, make_spec: MakeSpec) -> None:
    spec = make_spec("contract-start", epochs=2)

    job = runner.start(spec)

    assert job.name == "contract-start"
    assert job.status is JobStatus.IN_PROGRESS
    assert job.backend == runner.backend_name
    assert {k: job.hyperparameters[k] for k in spec.hyperparameters} == {"epochs": "2"}
    assert dict(job.inputs) == dict(spec.inputs)
    assert job.ended_at is None and job.model_uri is None


def test_a_second_start_with_the_same_name_already_exists(runner: JobRunner, make_spec: MakeSpec) -> None:
    runner.start(make_spec("contract-twice"))

    with pytest.raises(AlreadyExistsError):
        runner.start(make_spec("contract-twice", epochs=3))
    assert [j.name for j in runner.list_jobs()] == ["contract-twice"]


@pytest.mark.parametrize("operation", ["describe", "stop", "metrics", "log_tail"])
def test_an_unknown_job_is_not_found(runner: JobRunner, operation: str) -> None:
    with pytest.raises(NotFoundError):
        getattr(runner, operation)(UNKNOWN)


def test_a_job_goes_through_valid_states_to_completed(runner: JobRunner, make_spec: MakeSpec) -> None:
    runner.start(make_spec("contract-life"))

    seen = _wait_until(runner, "contract-life", lambda j: j.status.is_terminal)

    _assert_valid_path([JobStatus.IN_PROGRESS] + [j.status for j in seen])
    final = seen[-1]
    assert final.status is JobStatus.COMPLETED, final.failure_reason
    assert final.model_uri
    assert final.started_at is not None and final.ended_at is not None and final.ended_at >= final.started_at
    assert runner.describe("contract-life") == final  # a finished job never changes
    assert runner.stop("contract-life") == final  # stopping a finished job changes nothing


def test_a_listed_job_carries_what_a_described_one_does(runner: JobRunner, make_spec: MakeSpec) -> None:
    for name in ("contract-list-1", "contract-list-2"):
        runner.start(make_spec(name, epochs=2))
        _wait_until(runner, name, lambda j: j.status.is_terminal)

    listed = runner.list_jobs()

    assert [j.name for j in listed] == ["contract-list-2", "contract-list-1"]  # newest first
    for job in listed:
        assert job == runner.describe(job.name)
    assert [j.name for j in runner.list_jobs(limit=1)] == ["contract-list-2"]


def test_stop_ends_a_running_job_stopped(runner: JobRunner, make_spec: MakeSpec) -> None:
    runner.start(make_spec("contract-stop", sleep=LONG_S))
    # Started: a local job stopped before its supervisor records itself is marked Stopped unsignalled.
    _wait_until(runner, "contract-stop", lambda j: j.started_at is not None)

    stopping = runner.stop("contract-stop")

    assert stopping.status in (JobStatus.STOPPING, JobStatus.STOPPED)
    seen = _wait_until(runner, "contract-stop", lambda j: j.status.is_terminal)
    _assert_valid_path([stopping.status] + [j.status for j in seen])
    assert seen[-1].status is JobStatus.STOPPED
    assert seen[-1].ended_at is not None
    assert runner.stop("contract-stop") == seen[-1]
