"""The SageMaker stand-in's container mode (tests/standins/containers.py): training jobs run for real.

Driven through the console's own SageMakerJobRunner and SageMakerTuner (``core.backend.get_backend``
on the aws backend, moto on loopback): a job runs its script with the /opt/ml contract, its log
goes to CloudWatch Logs, its metrics to CloudWatch and FinalMetricDataList, its model to S3, and
it ends Completed, Failed or Stopped as on SageMaker. Small stand-in scripts (no torch) run with
the job environment's Python; one real run trains ``entrypoints/train.py`` on the demo digits.
"""

from __future__ import annotations

import json
import tarfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import boto3
import pytest

from core.backend import Backend, get_backend
from core.config import DEFAULT_JOB_PYTHON, Settings
from core.entities import TrainingJob
from core.training import TrainingJobSpec
from core.training._sagemaker import SageMakerJobRunner
from core.tuning._sagemaker import SageMakerTuner
from core.tuning.entities import TuningJob
from core.tuning.spec import ContinuousRange, Strategy, TuningJobSpec
from core.types import BackendKind, JobStatus
from tests.contracts.conftest import ROLE_NAME, SAGEMAKER_TRUST_POLICY
from tests.core.aws_fixtures import BUCKET, FAKE_ACCESS_KEY, FAKE_SECRET, PREFIX, REGION, clear_aws_environment
from tests.standins.containers import NETWORK_REFUSED, LocalContainers
from tests.standins.sagemaker import SageMakerStandIn

Described = TypeVar("Described", TrainingJob, TuningJob)
STOP_GRACE_S = 1.0
WAIT_S = 60.0
"""How long a job may take before a test gives up on it (a guard against hangs, not a measure)."""
REAL_RUN_WAIT_S = 600.0
SCRIPT = textwrap.dedent(
    """
    import argparse, json, os, signal, socket, subprocess, sys, time
    from pathlib import Path

    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=0.5)
    parser.add_argument("--sleep", type=float, default=0)
    parser.add_argument("--fail", default="")
    parser.add_argument("--ignore-sigterm", default="false")
    parser.add_argument("--leave-a-child", default="false")
    parser.add_argument("--reach-out", default="false")
    args, _unknown = parser.parse_known_args()
    model_dir, channel = Path(os.environ["SM_MODEL_DIR"]), Path(os.environ["SM_CHANNEL_TRAINING"])
    config = Path(os.environ["SM_INPUT_CONFIG_DIR"])

    def save(note):
        (model_dir / "model.pth").write_text(note)

    def on_sigterm(*_):
        save("stopped by SIGTERM")
        sys.exit(143)

    if args.ignore_sigterm == "true":
        signal.signal(signal.SIGTERM, lambda *_: print("ignoring SIGTERM", flush=True))
    else:
        signal.signal(signal.SIGTERM, on_sigterm)
    seen = {
        "argv": sys.argv[1:],
        "cwd": os.getcwd(),
        "env": {k: v for k, v in os.environ.items() if k.startswith(("SM_", "SAGEMAKER_", "TRAINING_JOB", "AWS_"))},
        "data": {p.relative_to(channel).as_posix(): p.read_text() for p in sorted(channel.rglob("*")) if p.is_file()},
        "config": {p.name: json.loads(p.read_text()) for p in sorted(config.glob("*.json"))},
        "checkpoints": sorted(p.name for p in Path(os.environ["SM_CHECKPOINT_DIR"]).iterdir()),
    }
    (model_dir / "seen.json").write_text(json.dumps(seen))
    (Path(os.environ["SM_CHECKPOINT_DIR"]) / "checkpoint.pt").write_text("epoch state")
    (Path(os.environ["SM_OUTPUT_DATA_DIR"]) / "metrics.json").write_text("{}")
    print(f"read {len(seen['data'])} files", flush=True)
    if args.reach_out == "true":
        for reach in (lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).connect(("192.0.2.1", 80)),
                      lambda: socket.getaddrinfo("example.com", 443)):
            try:
                reach()
            except OSError as exc:
                print(f"offline: {exc}", flush=True)
    if args.leave_a_child == "true":
        stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
        child = subprocess.Popen([sys.executable, "-c", stubborn])
        Path(os.environ["SM_OUTPUT_DATA_DIR"], "pids.json").write_text(json.dumps([os.getpid(), child.pid]))
    for epoch in range(1, args.epochs + 1):
        print(f"epoch={epoch} train_loss={1.0 / epoch:.4f} valid_acc={args.lr * epoch / args.epochs:.4f}", flush=True)
    if args.fail:
        raise ValueError(args.fail)
    save("weights")
    print("ready", flush=True)
    deadline = time.monotonic() + args.sleep
    while time.monotonic() < deadline:
        time.sleep(0.05)
    """
)


@pytest.fixture(scope="module")
def stand_in(moto_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SageMakerStandIn]:
    """The stand-in in container mode, in front of the session's moto server."""
    containers = LocalContainers(job_python=DEFAULT_JOB_PYTHON, workdir=tmp_path_factory.mktemp("containers"),
                                 stop_grace_s=STOP_GRACE_S, log_flush_s=0.2)
    with SageMakerStandIn(moto_url, containers=containers) as running:
        yield running


@pytest.fixture
def aws(
    stand_in: SageMakerStandIn, moto_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Backend]:
    """The aws backend against moto and the container stand-in; a stand-in failure fails the test."""
    stand_in.reset()
    clear_aws_environment(monkeypatch, tmp_path)
    for name, value in {
        "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": FAKE_SECRET, "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": moto_url, "AWS_ENDPOINT_URL_SAGEMAKER": stand_in.url,
    }.items():
        monkeypatch.setenv(name, value)
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    role = boto3.client("iam", region_name=REGION).create_role(
        RoleName=ROLE_NAME, AssumeRolePolicyDocument=SAGEMAKER_TRUST_POLICY)["Role"]["Arn"]
    yield get_backend(Settings(backend=BackendKind.AWS, workspace=tmp_path / "workspace", region=REGION,
                               bucket=BUCKET, prefix=PREFIX, role_arn=role))
    assert not stand_in.errors, f"the SageMaker stand-in failed: {stand_in.errors}"


@pytest.fixture
def runner(aws: Backend) -> SageMakerJobRunner:
    assert isinstance(aws.runner, SageMakerJobRunner)
    return aws.runner


@pytest.fixture
def source(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "train.py").write_text(SCRIPT)
    (folder / "helpers").mkdir()
    (folder / "helpers" / "notes.txt").write_text("shipped with the code")
    return folder


@pytest.fixture
def data_uri(aws: Backend, tmp_path: Path) -> str:
    data = tmp_path / "data"
    for split, name, text in (("train", "a", "one"), ("train", "b", "two"), ("valid", "a", "three")):
        (data / split / name).mkdir(parents=True)
        (data / split / name / f"{text}.txt").write_text(text)
    return aws.storage.put_folder(data, "datasets/tiny")


def _spec(source: Path, data_uri: str, name: str, **hyperparameters: str | int | float) -> TrainingJobSpec:
    return TrainingJobSpec(name=name, inputs={"training": data_uri}, hyperparameters=hyperparameters, source_dir=source)


def _wait_until(describe: Callable[[], Described], done: Callable[[Described], bool],
                wait_s: float = WAIT_S) -> Described:
    deadline = time.monotonic() + wait_s
    job = describe()
    while not done(job):
        assert time.monotonic() < deadline, f"still {job.status.value} ({job.secondary_status}) after {wait_s} s"
        time.sleep(0.1)
        job = describe()
    return job


def _wait_for_end(runner: SageMakerJobRunner, name: str, wait_s: float = WAIT_S) -> TrainingJob:
    return _wait_until(lambda: runner.describe(name), lambda job: job.status.is_terminal, wait_s)


def _tar_members(aws: Backend, key: str, tmp_path: Path) -> dict[str, bytes]:
    local = aws.storage.get_file(key, tmp_path / "download" / Path(key).name)
    with tarfile.open(local, "r:gz") as archive:
        return {m.name: archive.extractfile(m).read()  # type: ignore[union-attr]
                for m in archive.getmembers() if m.isfile()}


def _raw(name: str) -> dict[str, Any]:
    return boto3.client("sagemaker", region_name=REGION).describe_training_job(TrainingJobName=name)


def test_a_job_runs_its_script_as_sagemaker_does_and_completes(
    aws: Backend, runner: SageMakerJobRunner, source: Path, data_uri: str, tmp_path: Path
) -> None:
    spec = TrainingJobSpec(name="job-1", inputs={"training": data_uri}, hyperparameters={"epochs": 3, "lr": 0.9},
                           source_dir=source, checkpoint_uri=aws.storage.uri("checkpoints/job-1"))
    boto3.client("s3", region_name=REGION).put_object(Bucket=BUCKET, Key=f"{PREFIX}/checkpoints/job-1/previous.pt",
                                                      Body=b"from the last run")

    started = runner.start(spec)
    job = _wait_for_end(runner, "job-1")

    assert started.status is JobStatus.IN_PROGRESS
    assert job.status is JobStatus.COMPLETED, job.failure_reason
    assert job.final_metrics == {"train:loss": 0.3333, "validation:accuracy": 0.9}
    model_key = "jobs/job-1/output/model.tar.gz"
    assert job.model_uri == aws.storage.uri(model_key)
    model = _tar_members(aws, model_key, tmp_path)
    assert model["model.pth"] == b"weights"
    seen = json.loads(model["seen.json"])
    argv = seen["argv"]
    assert dict(zip(argv[::2], argv[1::2])) == {
        "--epochs": "3", "--lr": "0.9", "--debug-out-dir": runner.default_debug_out_dir,
        "--profile-out-dir": runner.default_profile_out_dir}
    assert seen["data"] == {"train/a/one.txt": "one", "train/b/two.txt": "two", "valid/a/three.txt": "three"}
    base = Path(seen["env"]["SAGEMAKER_BASE_DIR"])
    assert base.parts[-2:] == ("opt", "ml") and Path(seen["cwd"]) == base / "code"
    assert seen["env"]["SM_CHANNEL_TRAINING"] == str(base / "input" / "data" / "training")
    assert seen["env"]["SM_MODEL_DIR"] == str(base / "model") and seen["env"]["TRAINING_JOB_NAME"] == "job-1"
    assert seen["env"]["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    assert seen["env"]["AWS_REGION"] == REGION and seen["env"]["TRAINING_JOB_ARN"].endswith(":training-job/job-1")
    assert seen["config"]["hyperparameters.json"]["sagemaker_program"] == "train.py"
    assert list(seen["config"]["inputdataconfig.json"]) == ["training"]
    assert (base / "code" / "helpers" / "notes.txt").read_text() == "shipped with the code"
    assert _tar_members(aws, "jobs/job-1/output/output.tar.gz", tmp_path) == {"metrics.json": b"{}"}
    assert seen["checkpoints"] == ["previous.pt"] and aws.storage.exists("checkpoints/job-1/checkpoint.pt")

    described = _raw("job-1")
    assert described["ModelArtifacts"]["S3ModelArtifacts"] == f"s3://{BUCKET}/{PREFIX}/{model_key}"
    assert [t["Status"] for t in described["SecondaryStatusTransitions"]] == [
        "Starting", "Downloading", "Training", "Uploading", "Completed"]
    assert described["CreationTime"] <= described["TrainingStartTime"] <= described["TrainingEndTime"]
    assert described["TrainingTimeInSeconds"] >= 1
    assert [m["MetricName"] for m in described["FinalMetricDataList"]] == ["train:loss", "validation:accuracy"]

    assert [(j.name, j.status, j.model_uri) for j in runner.list_jobs()] == [("job-1", JobStatus.COMPLETED,
                                                                             job.model_uri)]
    points = runner.metrics("job-1")
    assert {p.name for p in points} == {"train:loss", "validation:accuracy"}
    assert all(0.3 <= p.value <= 1.0 for p in points if p.name == "validation:accuracy")
    log = runner.log_tail("job-1")
    assert "read 3 files" in log and "epoch=3 train_loss=0.3333 valid_acc=0.9000" in log
    streams = boto3.client("logs", region_name=REGION).describe_log_streams(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix="job-1/")["logStreams"]
    assert [s["logStreamName"].split("/")[1].rsplit("-", 1)[0] for s in streams] == ["algo-1"]


def test_a_failing_script_fails_the_job_with_its_last_error(
    aws: Backend, runner: SageMakerJobRunner, source: Path, data_uri: str
) -> None:
    runner.start(_spec(source, data_uri, "job-bad", fail="the data is bad"))

    job = _wait_for_end(runner, "job-bad")

    assert job.status is JobStatus.FAILED
    assert job.failure_reason is not None
    assert job.failure_reason.startswith(
        'AlgorithmError: ExecuteUserScriptError:\nExitCode 1\nErrorMessage "ValueError: the data is bad"\n'
        'Command "python train.py --debug-out-dir ')
    assert job.failure_reason.endswith('--fail the data is bad", exit code: 1')
    assert job.model_uri is None and not aws.storage.exists("jobs/job-bad/output/model.tar.gz")
    assert any(line.startswith("Traceback") for line in runner.log_tail("job-bad"))
    assert job.final_metrics == {"train:loss": 1.0, "validation:accuracy": 0.5}
    assert _raw("job-bad")["SecondaryStatusTransitions"][-1]["Status"] == "Failed"


def test_a_job_without_its_data_fails_as_sagemaker_fails_it(runner: SageMakerJobRunner, source: Path,
                                                            aws: Backend) -> None:
    runner.start(_spec(source, aws.storage.uri("datasets/nothing-here"), "job-no-data"))

    job = _wait_for_end(runner, "job-no-data")

    assert job.status is JobStatus.FAILED
    assert job.failure_reason is not None and job.failure_reason.startswith(
        f'ClientError: No S3 objects found under S3 URL "{aws.storage.uri("datasets/nothing-here")}"')


def _wait_for_line(runner: SageMakerJobRunner, name: str, line: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while line not in runner.log_tail(name):
        assert time.monotonic() < deadline, f"{line!r} never appeared in the log of {name}"
        time.sleep(0.1)


def test_stop_sends_sigterm_and_the_job_ends_stopped_with_its_model(
    aws: Backend, runner: SageMakerJobRunner, source: Path, data_uri: str, tmp_path: Path
) -> None:
    runner.start(_spec(source, data_uri, "job-long", sleep=600))
    _wait_for_line(runner, "job-long", "ready")

    stopping = runner.stop("job-long")
    job = _wait_for_end(runner, "job-long")

    assert stopping.status in (JobStatus.STOPPING, JobStatus.STOPPED)
    assert job.status is JobStatus.STOPPED and job.failure_reason is None
    assert job.model_uri == aws.storage.uri("jobs/job-long/output/model.tar.gz")
    assert _tar_members(aws, "jobs/job-long/output/model.tar.gz", tmp_path)["model.pth"] == b"stopped by SIGTERM"
    assert [t["Status"] for t in _raw("job-long")["SecondaryStatusTransitions"]][-2:] == ["Stopping", "Stopped"]


def test_a_script_that_ignores_sigterm_is_killed_after_the_grace_period(
    runner: SageMakerJobRunner, source: Path, data_uri: str
) -> None:
    runner.start(_spec(source, data_uri, "job-stubborn", sleep=600, **{"ignore-sigterm": "true"}))
    _wait_for_line(runner, "job-stubborn", "ready")

    runner.stop("job-stubborn")
    job = _wait_for_end(runner, "job-stubborn")

    assert job.status is JobStatus.STOPPED
    assert "ignoring SIGTERM" in runner.log_tail("job-stubborn")


def _tuner(aws: Backend, runner: SageMakerJobRunner, source: Path) -> SageMakerTuner:
    """The console's tuner, with the stand-in script as every trial's code."""
    session = aws.session  # type: ignore[attr-defined]
    return SageMakerTuner(aws.settings, session, aws.storage, runner, source_dir=source)  # type: ignore[arg-type]


def test_a_tuning_job_runs_its_trials_at_most_max_parallel_at_once(
    aws: Backend, runner: SageMakerJobRunner, source: Path, data_uri: str
) -> None:
    tuner = _tuner(aws, runner, source)
    spec = TuningJobSpec(name="tune-1", ranges=[ContinuousRange("lr", 0.1, 0.9)], inputs={"training": data_uri},
                         static_hyperparameters={"sleep": 0.3}, strategy=Strategy.RANDOM, max_jobs=3,
                         max_parallel_jobs=2)

    tuner.start(spec)
    tuning = _wait_until(lambda: tuner.describe("tune-1"), lambda t: t.status.is_terminal)
    trials = tuner.trials("tune-1")

    assert tuning.status is JobStatus.COMPLETED
    assert [t.hyperparameters["lr"] for t in trials] == ["0.30000000000000004", "0.5", "0.7000000000000001"]
    assert [t.objective for t in trials] == [0.3, 0.5, 0.7]
    assert tuning.best_job_name == trials[2].job_name and tuning.best_objective == 0.7
    assert tuning.counts["Completed"] == 3 and tuning.counts["ObjectiveSucceeded"] == 3
    for trial in trials:
        assert trial.started_at is not None and trial.ended_at is not None
        running = [t for t in trials if t.started_at <= trial.started_at < t.ended_at]  # type: ignore[operator]
        assert len(running) <= 2
    assert runner.describe(trials[0].job_name).model_uri == aws.storage.uri(
        f"jobs/{trials[0].job_name}/output/model.tar.gz")


def test_stopping_a_tuning_job_stops_its_trials_and_launches_no_more(
    runner: SageMakerJobRunner, source: Path, data_uri: str, aws: Backend
) -> None:
    tuner = _tuner(aws, runner, source)
    tuner.start(TuningJobSpec(name="tune-2", ranges=[ContinuousRange("lr", 0.1, 0.9)], inputs={"training": data_uri},
                              static_hyperparameters={"sleep": 600}, strategy=Strategy.RANDOM, max_jobs=4,
                              max_parallel_jobs=2))
    first = tuner.trials("tune-2")
    for trial in first:
        _wait_for_line(runner, trial.job_name, "ready")

    tuner.stop("tune-2")
    tuning = _wait_until(lambda: tuner.describe("tune-2"), lambda t: t.status.is_terminal)

    assert tuning.status is JobStatus.STOPPED
    assert len(first) == 2
    assert [(t.job_name, t.status.value) for t in tuner.trials("tune-2")] == [(t.job_name, "Stopped") for t in first]


def test_the_script_reaches_nothing_beyond_loopback(
    runner: SageMakerJobRunner, source: Path, data_uri: str, stand_in: SageMakerStandIn
) -> None:
    runner.start(_spec(source, data_uri, "job-offline", **{"reach-out": "true"}))

    job = _wait_for_end(runner, "job-offline")
    refused = list(stand_in.errors)
    stand_in.errors.clear()

    assert job.status is JobStatus.COMPLETED
    assert [e.split(NETWORK_REFUSED)[1].strip() for e in refused] == ["('192.0.2.1', 80)", "example.com"]
    assert sum(line.startswith("offline: ") for line in runner.log_tail("job-offline")) == 2


def _alive(pid: int) -> bool:
    """Whether pid is a live process (a zombie, waiting for a reaper, is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_leaving_the_stand_in_ends_every_job_and_what_it_started(
    moto_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: Path
) -> None:
    clear_aws_environment(monkeypatch, tmp_path)
    containers = LocalContainers(job_python=DEFAULT_JOB_PYTHON, workdir=tmp_path / "containers",
                                 stop_grace_s=STOP_GRACE_S)
    with SageMakerStandIn(moto_url, containers=containers) as own:
        own.reset()
        for name, value in {"AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
                            "AWS_DEFAULT_REGION": REGION, "AWS_ENDPOINT_URL": moto_url,
                            "AWS_ENDPOINT_URL_SAGEMAKER": own.url}.items():
            monkeypatch.setenv(name, value)
        boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
        backend = get_backend(Settings(backend=BackendKind.AWS, workspace=tmp_path / "ws", region=REGION,
                                       bucket=BUCKET, prefix=PREFIX, role_arn="arn:aws:iam::123456789012:role/r"))
        data = tmp_path / "data" / "train" / "a"
        data.mkdir(parents=True)
        (data / "1.txt").write_text("1")
        uri = backend.storage.put_folder(tmp_path / "data", "datasets/tiny")
        backend.runner.start(_spec(source, uri, "job-left", sleep=600, **{"leave-a-child": "true"}))
        _wait_for_line(backend.runner, "job-left", "ready")  # type: ignore[arg-type]
        job_dir = own.container("job-left").job_dir
        assert job_dir is not None
        pids = json.loads((job_dir / "opt" / "ml" / "output" / "data" / "pids.json").read_text())
        assert all(_alive(pid) for pid in pids)

    assert not own.errors
    assert not any(_alive(pid) for pid in pids)
    assert not [t.name for t in threading.enumerate() if t.name.startswith("container-")]


@pytest.mark.slow
def test_entrypoints_train_runs_on_the_demo_digits(aws: Backend, runner: SageMakerJobRunner, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from core.datasets.demo import write_demo_folder

    digits = write_demo_folder(tmp_path / "digits", image_size=32)
    # valid/ and test/ whole; of train/, the 2 steps' 128 images and a few more (13 of each digit):
    # every object is a request to moto in this process, on the way up and again on the way down
    files = [p for split in ("valid", "test") for p in sorted((digits / split).rglob("*")) if p.is_file()]
    files += [p for digit in sorted((digits / "train").iterdir()) for p in sorted(digit.iterdir())[:13]]
    s3 = boto3.client("s3", region_name=REGION)
    with ThreadPoolExecutor(4) as pool:  # the upload is not under test: the quickest way in
        list(pool.map(lambda p: s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/datasets/digits/{p.relative_to(digits)}",
                                              Body=p.read_bytes()), files))
    spec = TrainingJobSpec(name="digits-1", inputs={"training": aws.storage.uri("datasets/digits")}, hyperparameters={
        "epochs": 1, "batch-size": 64, "max-steps-per-epoch": 2, "image-size": 32, "num-workers": 0,
        "pretrained": "false", "debug-save-interval": 1, "profile-window": "0:1"})

    runner.start(spec)
    job = _wait_for_end(runner, "digits-1", REAL_RUN_WAIT_S)

    assert job.status is JobStatus.COMPLETED, (job.failure_reason, runner.log_tail("digits-1", 30))
    assert set(job.final_metrics) >= {"train:loss", "validation:accuracy", "test:accuracy"}
    model = _tar_members(aws, "jobs/digits-1/output/model.tar.gz", tmp_path)
    assert "model.pth" in model
    debug = [o.key for o in aws.storage.list("jobs/digits-1/debug-output/")]
    profile = [o.key for o in aws.storage.list("jobs/digits-1/profiler-output/")]
    trial = "jobs/digits-1/debug-output/"
    assert any(k.startswith(f"{trial}collections/") and k.endswith("_collections.json") for k in debug), debug
    assert any(k.startswith(f"{trial}events/") and k.endswith(".tfevents") for k in debug), debug
    assert any(k.startswith(f"{trial}index/") for k in debug), debug
    steps = sorted(int(k.split("/")[-2]) for k in debug if k.startswith(f"{trial}events/"))
    # 2 training steps, then 5 validation and 5 test batches of 64 of 270 images; the last one is
    # written only when the hook is closed, before the interpreter exits (SageMaker gets no end marker)
    assert steps == list(range(12)), steps
    profiler = "jobs/digits-1/profiler-output/"
    assert any(k.startswith(f"{profiler}system/incremental/") and k.endswith(".algo-1.json") for k in profile), profile
    assert any(k.startswith(f"{profiler}framework/pytorch/") and k.endswith(".pt.trace.json.gz") for k in profile)
    assert any(line.startswith("epoch=1/1 ") for line in runner.log_tail("digits-1"))
