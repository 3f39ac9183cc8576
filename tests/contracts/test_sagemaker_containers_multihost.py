"""The SageMaker stand-in's container mode with several hosts (tests/standins/containers.py).

A job of ``InstanceCount`` 2, started through the console's SageMakerJobRunner, runs its script
once per host: each learns its place from ``SM_HOSTS``/``SM_CURRENT_HOST`` and the rendezvous
from ``MASTER_ADDR``/``MASTER_PORT``, logs to its own stream and publishes its metrics under its
own host. A host that fails ends the other, and the job fails with the first failure; a stop ends
both. The script is a small stand-in (no torch) run with the job environment's Python.
"""

from __future__ import annotations

import json
import tarfile
import textwrap
import time
from pathlib import Path

import boto3
import pytest

from core.backend import Backend
from core.entities import TrainingJob
from core.training import TrainingJobSpec
from core.training._sagemaker import SageMakerJobRunner
from core.types import JobStatus
from tests.contracts.test_sagemaker_containers import aws, runner, stand_in  # noqa: F401  (fixtures)
from tests.core.aws_fixtures import REGION
from tests.standins.containers import LOG_GROUP, METRIC_NAMESPACE

HOSTS = ["algo-1", "algo-2"]
WAIT_S = 60.0
"""How long a job may take before a test gives up on it (a guard against hangs, not a measure)."""
SCRIPT = textwrap.dedent(
    """
    import argparse, json, os, signal, time
    from pathlib import Path

    parser = argparse.ArgumentParser()
    parser.add_argument("--fail-on", default="")
    parser.add_argument("--sleep", type=float, default=0)
    args, _unknown = parser.parse_known_args()
    host = os.environ["SM_CURRENT_HOST"]
    hosts = json.loads(os.environ["SM_HOSTS"])

    def on_sigterm(*_):
        print(f"{host} got SIGTERM", flush=True)
        print(f"RuntimeError: {host} was ended", flush=True)
        raise SystemExit(3)

    signal.signal(signal.SIGTERM, on_sigterm)
    shared = Path(os.environ["SM_OUTPUT_INTERMEDIATE_DIR"])  # every host's /opt/ml is the job folder here
    (shared / f"{host}.ready").touch()
    config = json.loads(Path(os.environ["SM_INPUT_CONFIG_DIR"], "resourceconfig.json").read_text())
    place = {k: os.environ[k] for k in ("SM_HOSTS", "SM_CURRENT_HOST", "MASTER_ADDR", "MASTER_PORT")}
    print("place " + json.dumps({**place, "resourceconfig": config}), flush=True)
    print(f"epoch=1 train_loss={0.5 / (hosts.index(host) + 1)}", flush=True)
    if hosts.index(host) == 0:
        Path(os.environ["SM_MODEL_DIR"], "model.pth").write_text(host)
    if host == args.fail_on:
        deadline = time.monotonic() + 60
        while not all((shared / f"{h}.ready").exists() for h in hosts) and time.monotonic() < deadline:
            time.sleep(0.05)  # the others can hear SIGTERM
        raise ValueError(f"{host} fails")
    print("ready", flush=True)
    deadline = time.monotonic() + args.sleep
    while time.monotonic() < deadline:
        time.sleep(0.05)
    """
)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "train.py").write_text(SCRIPT)
    return folder


@pytest.fixture
def data_uri(aws: Backend, tmp_path: Path) -> str:
    data = tmp_path / "data" / "train" / "a"
    data.mkdir(parents=True)
    (data / "one.txt").write_text("one")
    return aws.storage.put_folder(tmp_path / "data", "datasets/tiny")


def _spec(source: Path, data_uri: str, name: str, **hyperparameters: str | int | float) -> TrainingJobSpec:
    return TrainingJobSpec(name=name, inputs={"training": data_uri}, hyperparameters=hyperparameters,
                           source_dir=source, instance_count=len(HOSTS))


def _wait_for_end(runner: SageMakerJobRunner, name: str) -> TrainingJob:
    deadline = time.monotonic() + WAIT_S
    job = runner.describe(name)
    while not job.status.is_terminal:
        assert time.monotonic() < deadline, f"{name} still {job.status.value} after {WAIT_S} s"
        time.sleep(0.1)
        job = runner.describe(name)
    return job


def _host_logs(name: str) -> dict[str, list[str]]:
    """Each host's lines, from its own stream ``<job>/algo-<i>-<epoch seconds>``."""
    logs = boto3.client("logs", region_name=REGION)
    streams = logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix=f"{name}/")["logStreams"]
    return {s["logStreamName"].split("/")[1].rsplit("-", 1)[0]: [
        e["message"] for e in logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=s["logStreamName"],
                                                  startFromHead=True)["events"]] for s in streams}


def _wait_until_every_host_is_ready(runner: SageMakerJobRunner, name: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while sum(line.endswith("] ready") for line in runner.log_tail(name)) < len(HOSTS):
        assert time.monotonic() < deadline, f"not every host of {name} became ready: {runner.log_tail(name)}"
        time.sleep(0.1)


def test_each_host_runs_the_script_in_its_place_and_logs_to_its_own_stream(
    aws: Backend, runner: SageMakerJobRunner, source: Path, data_uri: str, tmp_path: Path
) -> None:
    runner.start(_spec(source, data_uri, "pair-1"))

    job = _wait_for_end(runner, "pair-1")

    assert job.status is JobStatus.COMPLETED, job.failure_reason
    logs = _host_logs("pair-1")
    assert sorted(logs) == HOSTS
    places = {host: json.loads(next(line for line in lines if line.startswith("place "))[len("place "):])
              for host, lines in logs.items()}
    for host, place in places.items():
        assert place["SM_CURRENT_HOST"] == host and json.loads(place["SM_HOSTS"]) == HOSTS
        assert place["MASTER_ADDR"] == "127.0.0.1" and place["MASTER_PORT"] == places["algo-1"]["MASTER_PORT"]
        assert place["resourceconfig"]["hosts"] == HOSTS and place["resourceconfig"]["current_host"] == "algo-1"
    assert int(places["algo-1"]["MASTER_PORT"]) > 0
    labels = {line.split("] ", 1)[0] for line in runner.log_tail("pair-1")}  # "[algo-2-<epoch seconds>"
    assert {label.removeprefix("[").rsplit("-", 1)[0] for label in labels} == set(HOSTS)
    assert job.final_metrics == {"train:loss": 0.5}
    assert [p.value for p in runner.metrics("pair-1")] == [0.5]
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    assert [m["MetricName"] for m in cloudwatch.list_metrics(
        Namespace=METRIC_NAMESPACE, Dimensions=[{"Name": "Host", "Value": "pair-1/algo-2"}])["Metrics"]] == [
        "train:loss"]
    model = aws.storage.get_file("jobs/pair-1/output/model.tar.gz", tmp_path / "model.tar.gz")
    with tarfile.open(model, "r:gz") as archive:
        assert archive.getnames() == ["model.pth"]
        assert archive.extractfile("model.pth").read() == b"algo-1"  # type: ignore[union-attr]


def test_a_host_that_fails_ends_the_other_and_the_job_fails_with_the_first_failure(
    runner: SageMakerJobRunner, source: Path, data_uri: str
) -> None:
    runner.start(_spec(source, data_uri, "pair-bad", sleep=600, **{"fail-on": "algo-2"}))

    job = _wait_for_end(runner, "pair-bad")

    assert job.status is JobStatus.FAILED
    assert job.failure_reason is not None and job.failure_reason.startswith(
        'AlgorithmError: ExecuteUserScriptError:\nExitCode 1\nErrorMessage "ValueError: algo-2 fails"\n')
    logs = _host_logs("pair-bad")
    assert "algo-1 got SIGTERM" in logs["algo-1"] and "RuntimeError: algo-1 was ended" in logs["algo-1"]
    assert "algo-2 got SIGTERM" not in logs["algo-2"]


def test_a_stop_ends_every_host(runner: SageMakerJobRunner, source: Path, data_uri: str) -> None:
    runner.start(_spec(source, data_uri, "pair-long", sleep=600))
    _wait_until_every_host_is_ready(runner, "pair-long")

    runner.stop("pair-long")
    job = _wait_for_end(runner, "pair-long")

    assert job.status is JobStatus.STOPPED and job.failure_reason is None
    logs = _host_logs("pair-long")
    assert all(f"{host} got SIGTERM" in logs[host] for host in HOSTS), logs
