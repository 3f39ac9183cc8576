"""One backend per parameter: every contract test runs once on ``local`` and once on ``aws``.

aws means moto's server on 127.0.0.1 (one per session, its state reset before each test), with
the loopback stand-ins of :mod:`tests.standins` in front of it for what moto cannot do: SageMaker
(jobs that run, stop and end; endpoints), SageMaker Runtime (an image answered by the model
server), Lambda (Invoke runs the function's code as its role) and EventBridge (PutEvents
delivers to Lambda targets). boto3 reads
``AWS_ENDPOINT_URL`` and ``AWS_ENDPOINT_URL_<SERVICE>``, so the backend runs its real code,
unchanged, against them. Nothing reaches beyond loopback
(``no_network`` is autouse here).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.backend import Backend, get_backend
from core.config import Settings
from core.types import BackendKind
from tests.core.aws_fixtures import (  # noqa: F401  (no_network registers on import, autouse)
    BUCKET,
    FAKE_ACCESS_KEY,
    FAKE_SECRET,
    PREFIX,
    REGION,
    clear_aws_environment,
    no_network_fixture,
)
from tests.standins.events import EventsStandIn
from tests.standins.lambdas import LambdaStandIn
from tests.standins.runtime import RuntimeStandIn
from tests.standins.sagemaker import SageMakerStandIn

ROLE_NAME = "smc-training"
SAGEMAKER_TRUST_POLICY = (
    '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", '
    '"Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}]}'
)
JOB_END_TIMEOUT_S = 60.0
"""How long the teardown waits for a stopped local job's processes to finish."""
SERVING_IMAGE = f"123456789012.dkr.ecr.{REGION}.amazonaws.com/sm-console-serving:1"
"""The serving image aws endpoints are deployed with (moto runs no container)."""


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """moto's server on a free loopback port, for the whole session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def sagemaker_stand_in(moto_url: str) -> Iterator[SageMakerStandIn]:
    """The SageMaker stand-in in front of moto, for the whole session (a module may run its own)."""
    with SageMakerStandIn(moto_url) as stand_in:
        yield stand_in


@pytest.fixture(scope="session")
def runtime_stand_in(moto_url: str) -> Iterator[RuntimeStandIn]:
    """SageMaker Runtime on loopback (moto cannot invoke an endpoint with an image), for the whole session."""
    with RuntimeStandIn(moto_url) as stand_in:
        yield stand_in


@pytest.fixture(scope="session")
def lambda_stand_in(moto_url: str, runtime_stand_in: RuntimeStandIn) -> Iterator[LambdaStandIn]:
    """Lambda on loopback (moto runs no function code without Docker), for the whole session."""
    with LambdaStandIn(moto_url, runtime_stand_in) as stand_in:
        yield stand_in


@pytest.fixture(scope="session")
def events_stand_in(moto_url: str, lambda_stand_in: LambdaStandIn) -> Iterator[EventsStandIn]:
    """EventBridge on loopback (moto delivers no event to a Lambda target), for the whole session."""
    with EventsStandIn(moto_url, lambda_stand_in.url) as stand_in:
        yield stand_in


@pytest.fixture
def local_job_python() -> Path:
    """The local backend's job interpreter: this one (the app environment), as contract tests of
    jobs use small stand-in scripts, not torch. A suite whose local work needs the job
    environment (tuning trials, endpoint servers, spot instances) overrides this fixture."""
    return Path(sys.executable)


@pytest.fixture(params=[BackendKind.LOCAL, BackendKind.AWS], ids=lambda kind: kind.value)
def backend(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    """A fresh backend of each kind; training jobs it leaves running are stopped afterwards, and
    an answer of the SageMaker stand-in that broke botocore's model fails the test.

    Local jobs run their script with the interpreter of ``local_job_python``.
    """
    workspace = tmp_path / "workspace"
    stand_in: SageMakerStandIn | None = None
    if request.param is BackendKind.LOCAL:
        built = get_backend(Settings(workspace=workspace, job_python=request.getfixturevalue("local_job_python")))
    else:
        stand_in = request.getfixturevalue("sagemaker_stand_in")
        runtime = request.getfixturevalue("runtime_stand_in")
        lambdas = request.getfixturevalue("lambda_stand_in")
        events = request.getfixturevalue("events_stand_in")
        runtime.reset()
        lambdas.errors.clear()
        events.reset()
        # the test's SageMaker (a module may run its own): functions call it, holding their role sessions
        # (minted by the Runtime stand-in) to their role's policy
        stand_in.authorizer = runtime
        lambdas.service_urls["AWS_ENDPOINT_URL_SAGEMAKER"] = stand_in.url
        built = _aws_backend(request.getfixturevalue("moto_url"), stand_in, runtime, lambdas, events, tmp_path,
                             workspace, monkeypatch)
    try:
        yield built
    finally:
        if "runner" in vars(built):  # built by the test: leave nothing running
            _stop_running_jobs(built)
        if stand_in is not None:
            events.wait()
            for name, errors in (("SageMaker", stand_in.errors), ("Runtime", runtime.errors),
                                 ("Lambda", lambdas.errors), ("EventBridge", events.errors)):
                assert not errors, f"the {name} stand-in failed: {errors}"


def _aws_backend(moto_url: str, stand_in: SageMakerStandIn, runtime: RuntimeStandIn, lambdas: LambdaStandIn,
                 events: EventsStandIn, tmp_path: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Backend:
    import boto3

    stand_in.reset()
    clear_aws_environment(monkeypatch, tmp_path)
    for name, value in {
        "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": FAKE_SECRET, "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": moto_url, "AWS_ENDPOINT_URL_SAGEMAKER": stand_in.url,
        "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": runtime.url, "AWS_ENDPOINT_URL_LAMBDA": lambdas.url,
        "AWS_ENDPOINT_URL_EVENTBRIDGE": events.url,
    }.items():
        monkeypatch.setenv(name, value)
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    role = boto3.client("iam", region_name=REGION).create_role(
        RoleName=ROLE_NAME, AssumeRolePolicyDocument=SAGEMAKER_TRUST_POLICY)["Role"]["Arn"]
    return get_backend(Settings(backend=BackendKind.AWS, workspace=workspace, region=REGION, bucket=BUCKET,
                                prefix=PREFIX, role_arn=role, serving_image_uri=SERVING_IMAGE,
                                analysis_poll_s=0.5))


def _stop_running_jobs(backend: Backend) -> None:
    runner = backend.runner
    running = [job.name for job in runner.list_jobs() if not job.status.is_terminal]
    for name in running:
        runner.stop(name)
    deadline = time.monotonic() + JOB_END_TIMEOUT_S
    while running and time.monotonic() < deadline:
        running = [name for name in running if not runner.describe(name).status.is_terminal]
        time.sleep(0.1)
    assert not running, f"jobs still running after the test: {running}"
