"""The local spot simulator end to end: real instance processes of ec2_train.py in the job
environment, a local metadata server, notices, SIGKILL reclaims and persistent relaunches."""

from __future__ import annotations

import tarfile
import time
from pathlib import Path

import pytest

from core.backend import get_backend
from core.config import Settings
from core.debugger.store import DebugStore
from core.errors import AlreadyExistsError, InvalidInputError
from core.spot import LocalSpotManager, SpotRunSpec, SpotRunStatus, interruptions
from core.types import JobStatus
from tests.entrypoints.test_train import _write_dataset

HPS = {"epochs": 2, "batch-size": 2, "max-steps-per-epoch": 6, "image-size": 32, "num-workers": 0, "seed": 5,
       "lr": 0.001}
HANG_GUARD_S = 600


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _write_dataset(tmp_path_factory.mktemp("shapes"), {"train": 8, "valid": 3, "test": 3}).as_uri()


@pytest.fixture
def manager(tmp_path: Path) -> LocalSpotManager:
    backend = get_backend(Settings(workspace=tmp_path / "ws", job_cpus=1))  # one thread: these steps are tiny
    spot = backend.spot
    assert isinstance(spot, LocalSpotManager) and spot.cpus == 1
    yield spot
    for run in spot.list_runs():
        spot.terminate(run.name)
        spot.wait(run.name, timeout_s=60)


def _wait_for_event(manager: LocalSpotManager, name: str, *kinds: str, after: str | None = None) -> None:
    """Waits for an event of one of ``kinds`` (after the first ``after`` event, when given)."""
    deadline = time.time() + HANG_GUARD_S
    while time.time() < deadline:
        events = manager.events(name)
        if after is not None:
            start = next((i for i, e in enumerate(events) if e.kind == after), None)
            events = [] if start is None else events[start + 1:]
        if any(e.kind in kinds for e in events):
            return
        assert not manager.describe(name).status.is_terminal, manager.describe(name)
        time.sleep(0.1)
    raise AssertionError(f"no {' or '.join(kinds)} event in {HANG_GUARD_S} s")


def test_persistent_run_survives_two_interruptions_and_is_deployable(manager: LocalSpotManager, dataset: str) -> None:
    """One interruption from the schedule (1 s after launch: during start-up, so possibly before
    any checkpoint) and one from the button once the second instance has checkpointed; a persistent
    request relaunches each time. Eight epochs: the first instance can checkpoint an epoch before
    its notice, and the second must still have several epochs to run when the button is pressed
    (with two, it could finish before the notice reached it, and no second interruption came)."""
    spec = SpotRunSpec(name="spot-twice", data_uri=dataset, hyperparameters={**HPS, "epochs": 8}, notice_s=3,
                       interrupt_after_s=(1.0,), relaunch_delay_s=0.2, spot_price_per_h=0.3,
                       on_demand_price_per_h=1.0)
    run = manager.launch(spec)
    assert run.status is SpotRunStatus.PENDING
    _wait_for_event(manager, run.name, "checkpoint", after="interrupted")
    manager.interrupt(run.name)
    run = manager.wait(run.name, timeout_s=HANG_GUARD_S)
    assert run.status is SpotRunStatus.COMPLETED, (run.failure_reason, manager.log_tail(run.name))
    kinds = [e.kind for e in manager.events(run.name)]
    assert kinds.count("launch") == 3 and kinds.count("notice") == 2 and kinds.count("interrupted") == 2
    assert kinds.count("relaunch") == 2 and kinds[-1] == "completed"
    assert kinds.count("resume") >= 1  # the third instance resumed from the second one's checkpoint
    found = interruptions(manager.events(run.name))
    assert len(found) == 2
    for interruption in found:
        assert interruption.lost_epochs <= 1
        assert interruption.resumed_step == interruption.checkpoint_step  # resumed where it checkpointed
    with tarfile.open(Path(run.model_uri.removeprefix("file://"))) as archive:
        assert archive.getnames() == ["model.pth"]
    assert 0 <= run.final_metrics["test:accuracy"] <= 1
    job = manager.spot_store.jobs.get_job(run.name)  # listed with training jobs: Deploy offers it
    assert job.status is JobStatus.COMPLETED and job.model_uri == run.model_uri
    trial = DebugStore(manager.spot_store.jobs).trial(run.name)  # the Debugger's sidecar analysed it
    assert trial is not None and trial.steps
    assert (Path(manager.spot_store.runtime(run.name)["run_dir"]) / "logs" / "profiler_sidecar.log").is_file()
    log = "\n".join(manager.log_tail(run.name, 2000))
    assert log.count("launched (attempt") == 3


def test_one_time_request_ends_interrupted(manager: LocalSpotManager, dataset: str) -> None:
    run = manager.launch(SpotRunSpec(name="spot-once", data_uri=dataset, hyperparameters=HPS, notice_s=2,
                                     request_type="one-time"))
    _wait_for_event(manager, run.name, "start")
    manager.interrupt(run.name)
    run = manager.wait(run.name, timeout_s=HANG_GUARD_S)
    assert run.status is SpotRunStatus.INTERRUPTED
    assert [e.kind for e in manager.events(run.name)].count("launch") == 1
    assert run.model_uri is None


def test_terminate_stops_the_instance(manager: LocalSpotManager, dataset: str) -> None:
    run = manager.launch(SpotRunSpec(name="spot-stop", data_uri=dataset, hyperparameters=HPS))
    _wait_for_event(manager, run.name, "launch")
    manager.terminate(run.name)
    run = manager.wait(run.name, timeout_s=HANG_GUARD_S)
    assert run.status is SpotRunStatus.TERMINATED
    assert manager.spot_store.runtime(run.name)["instance_pid"] is None


def test_bad_requests_get_clear_errors(manager: LocalSpotManager, dataset: str) -> None:
    with pytest.raises(InvalidInputError, match="file:// datasets"):
        manager.launch(SpotRunSpec(name="spot-s3", data_uri="s3://bucket/data"))
    with pytest.raises(InvalidInputError, match="one-time request can only terminate"):
        SpotRunSpec(name="x", data_uri=dataset, request_type="one-time", interruption_behavior="stop")
    with pytest.raises(InvalidInputError, match="notice_s"):
        SpotRunSpec(name="x", data_uri=dataset, notice_s=0.5)
    with pytest.raises(InvalidInputError, match="name"):
        SpotRunSpec(name="bad name!", data_uri=dataset)
    with pytest.raises(InvalidInputError, match="max_price"):
        SpotRunSpec(name="x", data_uri=dataset, max_price=-1)
    with pytest.raises(InvalidInputError, match="volume size: an EC2 instance's root volume, on the aws backend"):
        manager.launch(SpotRunSpec(name="spot-volume", data_uri=dataset, volume_size_gb=100))
    assert [t.name for t in manager.described_instance_types()] == ["local"]
    manager.spot_store.jobs.insert_job(
        __import__("core.entities", fromlist=["TrainingJob"]).TrainingJob(
            name="taken", status=JobStatus.COMPLETED, backend="local", created_at=time.time()))
    with pytest.raises(AlreadyExistsError, match="training job named 'taken'"):
        manager.launch(SpotRunSpec(name="taken", data_uri=dataset))
