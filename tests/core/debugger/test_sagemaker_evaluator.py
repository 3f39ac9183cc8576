"""Rule evaluation for SageMaker jobs on the console's machine: the sidecar copies the trial the
script uploaded to S3 and asks SageMaker whether the job still runs. moto's server on 127.0.0.1
stands in for both, in the evaluator's own process; a thin layer in front of it counts the
requests by operation and answers DescribeTrainingJob with the status a test sets (moto marks
every training job Completed at once)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from core.config import DEFAULT_JOB_PYTHON, Settings
from core.debugger import DebugStore, RuleStatus, TrialState, views
from core.debugger.evaluator import SageMakerRuleEvaluators, debug_trial_uri
from core.entities import TrainingJob
from core.jobstore import JobStore
from core.sidecars import PID_FILE
from core.types import JobStatus

WRITER = Path(__file__).resolve().parents[2] / "entrypoints" / "write_trial.py"
JOB = "sm-digits-1"
TEMPLATE = "s3://bucket/sm-console/jobs/{job_name}/debug-output"
URI = f"s3://bucket/sm-console/jobs/{JOB}/debug-output"
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
POLL_S = 0.5

StartResponse = Callable[..., Any]


class LoopbackAws:
    """moto's WSGI application, counting requests by operation, with DescribeTrainingJob statuses set by the test.

    Attributes:
        requests: operation name (``ListObjectsV2``, ``GetObject``, ``DescribeTrainingJob``, ...) -> count.
        statuses: training job name -> the ``TrainingJobStatus`` DescribeTrainingJob answers (else moto's).
    """

    def __init__(self) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        self.moto = DomainDispatcherApplication(create_backend_app)
        self.requests: Counter[str] = Counter()
        self.statuses: dict[str, str] = {}
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        operation = _operation(environ)
        with self._lock:
            self.requests[operation] += 1
        if operation == "DescribeTrainingJob" and self.statuses:
            return self._describe(environ, start_response)
        return self.moto(environ, start_response)

    def _describe(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        answer: dict[str, Any] = {}

        def keep(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            answer.update(status=status, headers=headers)
            return lambda data: None

        body = b"".join(self.moto(environ, keep))
        if answer["status"].startswith("200"):
            described = json.loads(body)
            if described.get("TrainingJobName") in self.statuses:
                described["TrainingJobStatus"] = self.statuses[described["TrainingJobName"]]
                body = json.dumps(described).encode()
        headers = [(k, v) for k, v in answer["headers"] if k.lower() != "content-length"]
        start_response(answer["status"], [*headers, ("Content-Length", str(len(body)))])
        return [body]


def _operation(environ: dict[str, Any]) -> str:
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        return target.rsplit(".", 1)[-1]
    method, path, query = environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", "")
    is_object = "/" in path.strip("/")
    if method == "GET" and not is_object:
        return "ListObjectsV2" if "list-type=2" in query else "ListObjects"
    return {"GET": "GetObject", "HEAD": "HeadObject", "PUT": "PutObject"}.get(method, method) if is_object else method


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopbackAws]:
    """The loopback AWS on 127.0.0.1, named by ``AWS_ENDPOINT_URL`` for this process and the evaluators it starts.

    moto's state lives in this process, shared by every server: it is reset before and after.
    """
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import make_server

    app = LoopbackAws()
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{server.port}"
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    reset = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(reset, timeout=30).close()
    try:
        yield app
    finally:
        urllib.request.urlopen(reset, timeout=30).close()
        server.shutdown()
        thread.join()


@pytest.fixture
def evaluators(tmp_path: Path) -> Iterator[SageMakerRuleEvaluators]:
    """The evaluators of a fresh workspace, polling every 0.5 s; one left running (a failed test) is killed."""
    store = DebugStore(JobStore(tmp_path / "console.db"))
    settings = Settings(workspace=tmp_path / "workspace", region="us-east-1", analysis_poll_s=POLL_S)
    started = SageMakerRuleEvaluators(settings, store)
    yield started
    if started.processes.running(JOB):
        os.kill(_pid(started), signal.SIGKILL)


def _job(**hyperparameters: str) -> TrainingJob:
    return TrainingJob(name=JOB, status=JobStatus.COMPLETED, backend="aws", created_at=time.time(),
                       hyperparameters=hyperparameters)


def _pid(evaluators: SageMakerRuleEvaluators) -> int:
    return int((evaluators.processes.folder(JOB) / PID_FILE).read_text().split()[0])


def _create_training_job() -> None:
    boto3.client("sagemaker").create_training_job(
        TrainingJobName=JOB, RoleArn=ROLE, HyperParameters={"debug-out-dir": TEMPLATE},
        AlgorithmSpecification={"TrainingImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/train:1",
                                "TrainingInputMode": "File"},
        OutputDataConfig={"S3OutputPath": "s3://bucket/sm-console/jobs"},
        ResourceConfig={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        StoppingCondition={"MaxRuntimeInSeconds": 3600},
    )


def _write_trial(folder: Path, *args: str) -> None:
    done = subprocess.run([str(DEFAULT_JOB_PYTHON), str(WRITER), str(folder), "healthy", *args],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def _upload_new(folder: Path, uploaded: set[Path]) -> int:
    """Uploads the files of ``folder`` not uploaded yet (as the hook writes each object once); returns how many."""
    s3 = boto3.client("s3")
    new = sorted(p for p in folder.rglob("*") if p.is_file() and p not in uploaded)
    for path in new:
        s3.upload_file(str(path), "bucket", f"sm-console/jobs/{JOB}/debug-output/{path.relative_to(folder).as_posix()}")
    uploaded.update(new)
    return len(new)


def _wait_for(evaluators: SageMakerRuleEvaluators, predicate: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, "\n".join(evaluators.log_tail(JOB))
        time.sleep(0.2)


def _exited_and_reaped(evaluators: SageMakerRuleEvaluators) -> None:
    """Waits until the evaluator process is gone from the process table, and checks this process has no zombie."""
    pid = _pid(evaluators)
    _wait_for(evaluators, lambda: not Path(f"/proc/{pid}").exists())  # a zombie stays listed until reaped
    assert not evaluators.processes.running(JOB)
    assert _zombie_children() == []


def _zombie_children() -> list[int]:
    zombies = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[-1].split()
        except OSError:  # exited meanwhile
            continue
        if fields[0] == "Z" and int(fields[1]) == os.getpid():
            zombies.append(int(stat.parent.name))
    return zombies


def test_the_trial_location_comes_from_the_jobs_hyperparameters() -> None:
    assert debug_trial_uri(_job(**{"debug-out-dir": TEMPLATE})) == URI
    assert debug_trial_uri(_job(**{"debug-out-dir": TEMPLATE, "debug": "false"})) is None
    assert debug_trial_uri(_job(**{"debug-out-dir": "/opt/ml/output/debug-output"})) is None  # inside the container
    assert debug_trial_uri(_job()) is None


def test_a_finished_sagemaker_job_is_evaluated_from_its_s3_trial(
        aws: LoopbackAws, evaluators: SageMakerRuleEvaluators, tmp_path: Path) -> None:
    local = tmp_path / "trial"
    _write_trial(local, "--end")
    boto3.client("s3").create_bucket(Bucket="bucket")
    objects = _upload_new(local, set())
    _create_training_job()
    store = evaluators.store
    job = _job(**{"debug-out-dir": TEMPLATE})
    aws.requests.clear()

    assert evaluators.ensure_running(job) == "started"
    assert evaluators.ensure_running(job) in ("running", "concluded")  # never a second evaluator
    _wait_for(evaluators, lambda: (trial := store.trial(JOB)) is not None and trial.state not in (
        TrialState.WAITING, TrialState.READING))
    trial = store.trial(JOB)
    assert trial is not None and trial.state is TrialState.COMPLETE, trial
    assert trial.path == URI and trial.steps == 72
    rules = store.rules(JOB)
    assert rules and all(r.status is RuleStatus.NO_ISSUES_FOUND for r in rules), {r.rule: r.message for r in rules}
    assert len(store.series(JOB, "losses", ["value"])) == 72
    _exited_and_reaped(evaluators)
    assert evaluators.ensure_running(job) == "concluded"
    # one poll (the job has ended): a listing, each object read once, one DescribeTrainingJob; smdebug's own S3
    # reader made about 4,300 requests for these 146 objects
    assert aws.requests["GetObject"] == objects, aws.requests
    assert aws.requests["ListObjectsV2"] == 1 and aws.requests["DescribeTrainingJob"] == 1, aws.requests
    assert aws.requests.total() == objects + 2, aws.requests


def test_a_job_that_fails_before_its_first_step_ends_its_evaluator_with_the_reason(
        aws: LoopbackAws, evaluators: SageMakerRuleEvaluators) -> None:
    boto3.client("s3").create_bucket(Bucket="bucket")
    _create_training_job()
    aws.statuses[JOB] = "InProgress"
    store = evaluators.store
    job = _job(**{"debug-out-dir": TEMPLATE})
    aws.requests.clear()

    assert evaluators.ensure_running(job) == "started"
    _wait_for(evaluators, lambda: aws.requests["ListObjectsV2"] >= 3)  # three polls while the job runs
    trial = store.trial(JOB)
    assert trial is not None and trial.state is TrialState.WAITING
    banner = views.banner(trial, job_running=True)
    assert banner is not None and "Waiting for the job's first saved step" in banner.text
    assert evaluators.ensure_running(job) == "running"
    aws.statuses[JOB] = "Failed"

    _exited_and_reaped(evaluators)
    trial = store.trial(JOB)
    assert trial is not None and trial.state is TrialState.MISSING, trial
    expected = (f"the job ended (Failed) without writing a Debugger trial to {URI}: it may have failed before its "
                "first step")
    assert (trial.message or "").startswith(expected), trial.message
    assert views.banner(trial, job_running=False) == views.Banner("warning", trial.message)
    rules = store.rules(JOB)
    assert rules and all(r.status is RuleStatus.ERROR and r.message == trial.message for r in rules)
    assert evaluators.ensure_running(job) == "concluded"
    # each poll: one DescribeTrainingJob, then one listing (also the last poll, once the job had failed); nothing else
    assert aws.requests["ListObjectsV2"] == aws.requests["DescribeTrainingJob"], aws.requests
    assert aws.requests.total() == 2 * aws.requests["DescribeTrainingJob"], aws.requests


def test_a_running_jobs_trial_is_read_as_it_arrives_each_object_once(
        aws: LoopbackAws, evaluators: SageMakerRuleEvaluators, tmp_path: Path) -> None:
    local = tmp_path / "trial"
    uploaded: set[Path] = set()
    boto3.client("s3").create_bucket(Bucket="bucket")
    _create_training_job()
    aws.statuses[JOB] = "InProgress"
    store = evaluators.store
    _write_trial(local, "--stop", "30")
    objects = _upload_new(local, uploaded)
    aws.requests.clear()

    assert evaluators.ensure_running(_job(**{"debug-out-dir": TEMPLATE})) == "started"
    _wait_for(evaluators, lambda: (trial := store.trial(JOB)) is not None and trial.steps >= 30)
    trial = store.trial(JOB)
    assert trial is not None and trial.state is TrialState.READING and trial.steps == 30
    _write_trial(local, "--start", "30", "--end")
    objects += _upload_new(local, uploaded)
    aws.statuses[JOB] = "Completed"

    _wait_for(evaluators, lambda: (trial := store.trial(JOB)) is not None and trial.state is TrialState.COMPLETE)
    trial = store.trial(JOB)
    assert trial is not None and trial.steps == 72
    assert all(r.status is RuleStatus.NO_ISSUES_FOUND for r in store.rules(JOB)), store.rules(JOB)
    _exited_and_reaped(evaluators)
    polls = aws.requests["DescribeTrainingJob"]
    assert aws.requests["GetObject"] == objects, aws.requests  # never an object twice
    assert aws.requests["ListObjectsV2"] == polls, aws.requests
    assert aws.requests.total() - aws.requests["PutObject"] == objects + 2 * polls, aws.requests  # puts: the test's
