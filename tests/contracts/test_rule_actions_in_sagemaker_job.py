"""Issue 18 on the aws backend, end to end with no console evaluator: a real lr=10 training job in a
SageMaker stand-in container evaluates its rules inside the job (``job_rules.py``), puts the fired
rule on EventBridge (the events stand-in), whose rule invokes the action function (the Lambda
stand-in runs ``lambda/rule_action.py`` as its role), whose StopTrainingJob (the SageMaker stand-in,
held to that role's policy) stops the container. Every request is checked against botocore's models.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from core.backend import Backend, get_backend
from core.config import DEFAULT_JOB_PYTHON, Settings
from core.datasets import write_demo_folder
from core.rule_actions import ActionsSpec
from core.training import TrainingJobSpec
from core.training.launch import rule_action_hyperparameters
from core.types import BackendKind, JobStatus
from tests.contracts.conftest import SAGEMAKER_TRUST_POLICY
from tests.core.aws_fixtures import (  # noqa: F401  (no_network registers on import, autouse)
    BUCKET,
    FAKE_ACCESS_KEY,
    FAKE_SECRET,
    PREFIX,
    REGION,
    clear_aws_environment,
    moto_server,
    no_network_fixture,
)
from tests.standins.containers import LocalContainers
from tests.standins.events import EventsStandIn
from tests.standins.lambdas import LambdaStandIn
from tests.standins.runtime import RuntimeStandIn
from tests.standins.sagemaker import SageMakerStandIn

pytestmark = pytest.mark.slow

HYPERPARAMETERS = {"epochs": 6, "max-steps-per-epoch": 20, "image-size": 32, "num-workers": 0, "batch-size": 32,
                   "seed": 42, "lr": 10, "debug-rules": "ExplodingTensor:stop,LossNotDecreasing:stop"}


@pytest.fixture
def backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    """The aws backend on moto, with SageMaker running jobs in containers and the chain's stand-ins."""
    clear_aws_environment(monkeypatch, tmp_path)
    containers = LocalContainers(job_python=DEFAULT_JOB_PYTHON, workdir=tmp_path / "containers")
    with moto_server() as moto_url:
        with (SageMakerStandIn(moto_url, containers=containers) as sagemaker,
              RuntimeStandIn(moto_url, region=REGION) as runtime,
              LambdaStandIn(moto_url, runtime, region=REGION) as lambdas,
              EventsStandIn(moto_url, lambdas.url, region=REGION) as events):
            sagemaker.authorizer = runtime
            lambdas.service_urls["AWS_ENDPOINT_URL_SAGEMAKER"] = sagemaker.url
            containers.service_urls["AWS_ENDPOINT_URL_EVENTBRIDGE"] = events.url
            for name, value in {
                "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
                "AWS_DEFAULT_REGION": REGION, "AWS_ENDPOINT_URL": moto_url, "AWS_ENDPOINT_URL_SAGEMAKER": sagemaker.url,
                "AWS_ENDPOINT_URL_LAMBDA": lambdas.url, "AWS_ENDPOINT_URL_EVENTBRIDGE": events.url,
            }.items():
                monkeypatch.setenv(name, value)
            boto3.client("s3").create_bucket(Bucket=BUCKET)
            role = boto3.client("iam").create_role(RoleName="smc-training",
                                                   AssumeRolePolicyDocument=SAGEMAKER_TRUST_POLICY)["Role"]["Arn"]
            yield get_backend(Settings(backend=BackendKind.AWS, workspace=tmp_path / "workspace", region=REGION,
                                       bucket=BUCKET, prefix=PREFIX, role_arn=role))
            events.wait()
            for stand_in in (sagemaker, runtime, lambdas, events):
                assert not stand_in.errors, f"a stand-in failed: {stand_in.errors}"
            assert not events.undelivered, events.undelivered


def test_a_diverging_job_stops_itself_through_eventbridge_and_lambda(backend: Backend, tmp_path: Path) -> None:
    backend.rule_actions.deploy(ActionsSpec(topic_name="rule-alerts"))
    data_uri = backend.storage.put_folder(write_demo_folder(tmp_path / "digits", image_size=32), "datasets/digits")
    hps = HYPERPARAMETERS | rule_action_hyperparameters(backend.rule_actions, HYPERPARAMETERS)
    assert hps["debug-event-bus"] == "default" and hps["debug-rules-in-job"] == "true"
    backend.runner.start(TrainingJobSpec(name="diverging", inputs={"training": data_uri},
                                         hyperparameters=hps))  # type: ignore[arg-type]
    deadline = time.monotonic() + 900
    while not (job := backend.runner.describe("diverging")).status.is_terminal:
        assert time.monotonic() < deadline, backend.runner.log_tail("diverging", 40)
        time.sleep(1)
    log = "\n".join(backend.runner.log_tail("diverging", 400))
    assert job.status is JobStatus.STOPPED, (job.failure_reason, log[-3000:])
    assert "inside the job" in log and "put on the default bus" in log
    assert "epoch=6/6" not in log
    [record] = backend.rule_actions.history("diverging")
    assert record.rule in ("ExplodingTensor", "LossNotDecreasing")
    assert [(o.action, o.outcome) for o in record.outcomes] == [("StopTrainingJob", "stopped"), ("Publish", "notified")]
    trial = str(job.hyperparameters["debug-out-dir"]).replace("{job_name}", "diverging")
    bucket, _, prefix = trial.removeprefix("s3://").partition("/")
    written = boto3.client("s3").get_object(Bucket=bucket, Key=f"{prefix.rstrip('/')}/rule-events/{record.rule}.json")
    assert json.loads(written["Body"].read())["event_id"] == record.event_id
