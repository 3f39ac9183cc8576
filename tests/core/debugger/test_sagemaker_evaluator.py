"""Rule evaluation for SageMaker jobs on the console's machine: the sidecar reads the trial the
script uploaded to S3 and asks SageMaker whether the job still runs (moto's server on 127.0.0.1
stands in for both, in the evaluator's own process)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Iterator

import boto3
import pytest

from core.config import DEFAULT_JOB_PYTHON, Settings
from core.debugger import DebugStore, RuleStatus, TrialState
from core.debugger.evaluator import SageMakerRuleEvaluators, debug_trial_uri
from core.entities import TrainingJob
from core.jobstore import JobStore
from core.types import JobStatus

WRITER = Path(__file__).resolve().parents[2] / "entrypoints" / "write_trial.py"
JOB = "sm-digits-1"
TEMPLATE = "s3://bucket/sm-console/jobs/{job_name}/debug-output"
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"


@pytest.fixture
def moto_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    try:
        yield endpoint
    finally:
        server.stop()


def _job(**hyperparameters: str) -> TrainingJob:
    return TrainingJob(name=JOB, status=JobStatus.COMPLETED, backend="aws", created_at=time.time(),
                       hyperparameters=hyperparameters)


def test_the_trial_location_comes_from_the_jobs_hyperparameters() -> None:
    assert debug_trial_uri(_job(**{"debug-out-dir": TEMPLATE})) == f"s3://bucket/sm-console/jobs/{JOB}/debug-output"
    assert debug_trial_uri(_job(**{"debug-out-dir": TEMPLATE, "debug": "false"})) is None
    assert debug_trial_uri(_job()) is None


def test_a_finished_sagemaker_job_is_evaluated_from_its_s3_trial(moto_endpoint: str, tmp_path: Path) -> None:
    local = tmp_path / "trial"
    done = subprocess.run([str(DEFAULT_JOB_PYTHON), str(WRITER), str(local), "healthy", "--end"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="bucket")
    for path in local.rglob("*"):
        if path.is_file():
            s3.upload_file(str(path), "bucket", f"sm-console/jobs/{JOB}/debug-output/{path.relative_to(local).as_posix()}")
    boto3.client("sagemaker").create_training_job(
        TrainingJobName=JOB, RoleArn=ROLE, HyperParameters={"debug-out-dir": TEMPLATE},
        AlgorithmSpecification={"TrainingImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/train:1",
                                "TrainingInputMode": "File"},
        OutputDataConfig={"S3OutputPath": "s3://bucket/sm-console/jobs"},
        ResourceConfig={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        StoppingCondition={"MaxRuntimeInSeconds": 3600},
    )
    store = DebugStore(JobStore(tmp_path / "console.db"))
    evaluators = SageMakerRuleEvaluators(Settings(workspace=tmp_path / "workspace", region="us-east-1"), store)
    job = _job(**{"debug-out-dir": TEMPLATE})

    assert evaluators.ensure_running(job) == "started"
    assert evaluators.ensure_running(job) in ("running", "concluded")  # never a second evaluator
    deadline = time.time() + 180
    while (trial := store.trial(JOB)) is None or trial.state is not TrialState.COMPLETE:
        assert time.time() < deadline, "\n".join(evaluators.log_tail(JOB))
        assert trial is None or trial.state is not TrialState.FAILED, trial.message
        time.sleep(0.5)
    assert trial.path == f"s3://bucket/sm-console/jobs/{JOB}/debug-output" and trial.steps == 72
    rules = store.rules(JOB)
    assert rules and all(r.status is RuleStatus.NO_ISSUES_FOUND for r in rules), {r.rule: r.message for r in rules}
    assert len(store.series(JOB, "losses", ["value"])) == 72
    assert evaluators.ensure_running(job) == "concluded"
