"""The SpotManager contract (core/spot/_base.py), held to the same assertions on both backends.

Locally a run is the spot simulator: a detached supervisor that starts ``entrypoints/ec2_train.py``
in the job environment as its "instance". On aws it is EC2 at moto: RunInstances with
InstanceMarketOptions, an IAM role and instance profile, a security group; moto runs no user
data, so an aws run never trains and these tests end every run by terminating it. moto has no
Deep Learning AMI under the name the console looks for, so the aws manager is pointed at the
older Deep Learning AMI moto does have (as tests/core/spot/test_aws_spot.py does).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.backend import Backend
from core.config import DEFAULT_JOB_PYTHON
from core.errors import AlreadyExistsError, InvalidInputError, NotFoundError
from core.spot import SpotManager, SpotRun, SpotRunSpec, SpotRunStatus
from core.spot._aws import Ec2SpotManager
from tests.entrypoints.test_train import _write_dataset

HYPERPARAMETERS = {"epochs": 1, "batch-size": 2, "max-steps-per-epoch": 1, "image-size": 8, "num-workers": 0,
                   "pretrained": "false"}
MOTO_DLAMI = "Deep Learning AMI Ubuntu Linux*"
MOTO_DLAMI_OWNERS = ("898082745236",)  # the AWS account that publishes Deep Learning AMIs
WAIT_S = 120.0
UNKNOWN = "no-such-spot-run"
MakeSpec = Callable[..., SpotRunSpec]


@pytest.fixture
def local_job_python() -> Path:
    """A simulated instance runs entrypoints/ec2_train.py, which needs torch: the job environment's interpreter."""
    return DEFAULT_JOB_PYTHON


@pytest.fixture
def spot(backend: Backend) -> Iterator[SpotManager]:
    """The backend's spot manager; runs a test leaves going are terminated and waited for."""
    manager = backend.spot
    if isinstance(manager, Ec2SpotManager):
        manager.ami_name, manager.ami_owners = MOTO_DLAMI, MOTO_DLAMI_OWNERS
    yield manager
    for run in manager.list_runs():
        if not run.status.is_terminal:
            manager.terminate(run.name)
        _wait_until(manager, run.name, lambda r: r.status.is_terminal)


@pytest.fixture
def make_spec(backend: Backend, spot: SpotManager, tmp_path: Path) -> MakeSpec:
    """Specs of the smallest run over a tiny ImageFolder dataset in the backend's own storage."""
    data = _write_dataset(tmp_path / "data", {"train": 2, "valid": 1})
    data_uri = backend.storage.put_folder(data, "datasets/tiny")

    def make(name: str, **changes: object) -> SpotRunSpec:
        values: dict[str, object] = dict(name=name, data_uri=data_uri, hyperparameters=HYPERPARAMETERS,
                                         instance_type=spot.instance_types[0], request_type="one-time")
        return SpotRunSpec(**{**values, **changes})  # type: ignore[arg-type]

    return make


def _wait_until(spot: SpotManager, name: str, done: Callable[[SpotRun], bool]) -> SpotRun:
    run = spot.describe(name)
    deadline = time.monotonic() + WAIT_S
    while not done(run):
        assert time.monotonic() < deadline, f"{name} never got there: {run}"
        time.sleep(0.1)
        run = spot.describe(name)
    return run


def _wait_for_event(spot: SpotManager, name: str, kind: str) -> None:
    """Until the run records ``kind`` (locally, ``launch``: the simulator runs and has recorded itself)."""
    deadline = time.monotonic() + WAIT_S
    while kind not in [e.kind for e in spot.events(name)]:
        assert time.monotonic() < deadline, f"no {kind} event for {name}: {spot.describe(name)}"
        time.sleep(0.1)


def test_launch_returns_the_run_pending_under_its_name(spot: SpotManager, make_spec: MakeSpec) -> None:
    spec = make_spec("spot-launch")

    run = spot.launch(spec)

    assert run.name == "spot-launch"
    assert run.status is SpotRunStatus.PENDING
    assert run.backend == spot.backend_name
    assert run.spec.to_dict() == spec.to_dict()  # hyperparameters come back as strings, as the script gets them
    assert run.ended_at is None and run.model_uri is None
    described = spot.describe("spot-launch")
    assert (described.name, described.spec, described.created_at) == (run.name, run.spec, run.created_at)
    assert described.status in (SpotRunStatus.PENDING, SpotRunStatus.RUNNING)
    assert [r.name for r in spot.list_runs()] == ["spot-launch"]


def test_a_second_launch_with_the_same_name_already_exists(spot: SpotManager, make_spec: MakeSpec) -> None:
    first = spot.launch(make_spec("spot-twice"))

    with pytest.raises(AlreadyExistsError):
        spot.launch(make_spec("spot-twice", hyperparameters={"epochs": 2}))
    assert [r.name for r in spot.list_runs()] == ["spot-twice"]
    assert spot.describe("spot-twice").spec == first.spec


@pytest.mark.parametrize("operation", ["describe", "events", "log_tail", "terminate", "cleanup"])
def test_an_unknown_run_is_not_found(spot: SpotManager, operation: str) -> None:
    with pytest.raises(NotFoundError):
        getattr(spot, operation)(UNKNOWN)


def test_a_dataset_the_backend_cannot_read_is_invalid_input(spot: SpotManager, make_spec: MakeSpec) -> None:
    with pytest.raises(InvalidInputError):
        spot.launch(make_spec("spot-elsewhere", data_uri="https://example.com/datasets/tiny.zip"))
    assert spot.list_runs() == []


def test_terminate_ends_the_run_and_cleanup_keeps_its_promise(spot: SpotManager, make_spec: MakeSpec) -> None:
    spot.launch(make_spec("spot-end", hyperparameters={**HYPERPARAMETERS, "epochs": 1000}))
    _wait_for_event(spot, "spot-end", "launch")
    lines = spot.log_tail("spot-end")
    assert all(isinstance(line, str) for line in lines)
    assert len(spot.log_tail("spot-end", max_lines=1)) <= 1

    spot.terminate("spot-end")

    final = _wait_until(spot, "spot-end", lambda r: r.status.is_terminal)
    assert final.status is SpotRunStatus.TERMINATED
    assert final.ended_at is not None and final.ended_at >= final.created_at
    events = spot.events("spot-end")
    assert next(e.kind for e in events) == "launch" and events[-1].kind == "terminated"
    assert {e.run for e in events} == {"spot-end"}
    assert [e.time for e in events] == sorted(e.time for e in events)
    assert spot.list_runs() == [final]
    assert spot.describe("spot-end") == final  # a terminal run never changes
    assert spot.terminate("spot-end") == final
    deleted = spot.cleanup("spot-end")
    assert bool(deleted) is spot.can_clean_up  # names of what was deleted, only where something is left
    assert spot.cleanup("spot-end") == []  # nothing twice
    assert spot.describe("spot-end").status is SpotRunStatus.TERMINATED


def test_instance_types_and_the_price_history_keep_their_promises(spot: SpotManager) -> None:
    assert spot.instance_types and len(set(spot.instance_types)) == len(spot.instance_types)
    wanted = list(spot.instance_types[:2])

    points = spot.price_history(wanted, days=7)

    assert bool(points) is spot.has_price_feed  # none without a feed
    assert {p.instance_type for p in points} <= set(wanted)
    assert [p.timestamp for p in points] == sorted(p.timestamp for p in points)  # oldest first
    assert all(p.price > 0 for p in points)
