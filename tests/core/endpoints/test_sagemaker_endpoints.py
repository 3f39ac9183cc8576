"""SageMaker endpoints: the CreateModel / CreateEndpointConfig / CreateEndpoint requests checked
against botocore's service model and moto, botocore's Stubber for states and errors moto never
produces, and SageMaker Runtime's error answers parsed by botocore from a fake HTTP runtime."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.stub import ANY, Stubber
from botocore.validate import validate_parameters
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sagemakerruntime.models import sagemakerruntime_backends

from core.aws import AwsSession
from core.config import DEFAULT_JOB_PYTHON, ENTRYPOINTS_DIR, REPO_ROOT, Settings
from core.endpoints import EndpointStatus, ServingConfig
from core.endpoints._sagemaker import SageMakerEndpointManager, endpoint_status, serving_environment
from core.endpoints.invoke import json_request
from core.errors import AlreadyExistsError, BackendError, ConfigError, InvalidInputError, NotFoundError
from tests.core.aws_fixtures import (  # noqa: F401  (fixtures register on import)
    BUCKET,
    PREFIX,
    REGION,
    ROLE_ARN,
    aws_credentials_fixture,
    aws_fixture,
    aws_settings_fixture,
    no_network_fixture,
)

IMAGE = f"123456789012.dkr.ecr.{REGION}.amazonaws.com/sm-console-serving:1"
MODEL_URI = f"s3://{BUCKET}/{PREFIX}/jobs/digits-1/output/model.tar.gz"
ANSWER = {"predictions": [{"top_k": [{"label": "7", "probability": 0.9}, {"label": "1", "probability": 0.1}]}]}


@pytest.fixture
def manager(aws_settings: Settings, aws: AwsSession) -> SageMakerEndpointManager:
    return SageMakerEndpointManager(aws_settings, aws, serving_image=IMAGE)


def _client(aws: AwsSession) -> Any:
    return aws.client("sagemaker")


# --- deploy ----------------------------------------------------------------------------------


def test_deploy_creates_model_config_and_endpoint(manager: SageMakerEndpointManager, aws: AwsSession) -> None:
    endpoint = manager.deploy("digits-ep", MODEL_URI, instance_type="ml.c5.xlarge", instance_count=2,
                              max_batch_size=8, max_wait_ms=2.5, workers=4)

    assert endpoint.name == "digits-ep" and endpoint.backend == "aws"
    assert endpoint.status is EndpointStatus.IN_SERVICE  # moto creates endpoints InService at once
    assert endpoint.model_uri == MODEL_URI
    assert (endpoint.instance_type, endpoint.instance_count) == ("ml.c5.xlarge", 2)
    assert endpoint.serving == ServingConfig(max_batch_size=8, max_wait_ms=2.5, workers=4)
    assert endpoint.url == f"https://runtime.sagemaker.{REGION}.amazonaws.com/endpoints/digits-ep/invocations"

    sagemaker = _client(aws)
    model = sagemaker.describe_model(ModelName="digits-ep")
    assert model["ExecutionRoleArn"] == ROLE_ARN
    assert model["PrimaryContainer"] == {
        "Image": IMAGE,
        "Mode": "SingleModel",
        "ModelDataUrl": MODEL_URI,
        "Environment": {
            "SAGEMAKER_PROGRAM": "inference.py",
            "SERVE_ENDPOINT_NAME": "digits-ep",
            "SERVE_MAX_BATCH_SIZE": "8",
            "SERVE_MAX_WAIT_MS": "2.5",
            "SERVE_WORKERS": "4",
        },
    }
    config = sagemaker.describe_endpoint_config(EndpointConfigName="digits-ep")
    assert config["ProductionVariants"] == [
        {
            "VariantName": "AllTraffic",
            "ModelName": "digits-ep",
            "InstanceType": "ml.c5.xlarge",
            "InitialInstanceCount": 2,
            "InitialVariantWeight": 1.0,
        }
    ]
    assert sagemaker.describe_endpoint(EndpointName="digits-ep")["EndpointConfigName"] == "digits-ep"


def test_the_requests_fit_botocores_service_model(manager: SageMakerEndpointManager, aws: AwsSession) -> None:
    requests = manager.deployment_requests("digits-ep", MODEL_URI, instance_type="local", instance_count=1,
                                           serving=ServingConfig())
    service = _client(aws).meta.service_model
    for operation, request in zip(("CreateModel", "CreateEndpointConfig", "CreateEndpoint"), requests, strict=True):
        validate_parameters(request, service.operation_model(operation).input_shape)
    assert requests[1]["ProductionVariants"][0]["InstanceType"] == "ml.m5.large"  # "local" means not chosen


def test_unusable_models_and_instance_types_are_refused_before_any_request(
    manager: SageMakerEndpointManager, aws: AwsSession
) -> None:
    with pytest.raises(InvalidInputError, match=r"train on SageMaker .* or upload the model.tar.gz to S3"):
        manager.deploy("ep", "file:///workspace/jobs/x/output/model.tar.gz")
    with pytest.raises(InvalidInputError, match=r"model.tar.gz"):
        manager.deploy("ep", f"s3://{BUCKET}/models/model.pth")
    with pytest.raises(InvalidInputError, match="SageMaker type"):
        manager.deploy("ep", MODEL_URI, instance_type="m5.large")
    with pytest.raises(InvalidInputError, match="endpoint name"):
        manager.deploy("bad_name", MODEL_URI)
    with pytest.raises(InvalidInputError, match="instance_count"):
        manager.deploy("ep", MODEL_URI, instance_count=0)
    with pytest.raises(InvalidInputError, match="max_batch_size"):
        manager.deploy("ep", MODEL_URI, max_batch_size=0)
    sagemaker = _client(aws)
    assert sagemaker.list_models()["Models"] == []
    assert sagemaker.list_endpoints()["Endpoints"] == []


def test_a_missing_image_or_role_is_a_config_error(aws_settings: Settings, aws: AwsSession) -> None:
    without_image = SageMakerEndpointManager(aws_settings, aws)
    with pytest.raises(ConfigError, match="SMC_SERVING_IMAGE_URI"):
        without_image.deploy("ep", MODEL_URI)
    no_role = SimpleNamespace(role_arn=None, serving_image_uri=IMAGE)
    with pytest.raises(ConfigError, match="SMC_ROLE_ARN"):
        SageMakerEndpointManager(no_role, aws).deploy("ep", MODEL_URI)  # type: ignore[arg-type]
    assert _client(aws).list_models()["Models"] == []


def test_the_image_comes_from_the_serving_image_uri_setting(aws: AwsSession) -> None:
    settings = SimpleNamespace(role_arn=ROLE_ARN, serving_image_uri=IMAGE)
    SageMakerEndpointManager(settings, aws).deploy("ep", MODEL_URI)  # type: ignore[arg-type]
    assert _client(aws).describe_model(ModelName="ep")["PrimaryContainer"]["Image"] == IMAGE


def test_a_second_endpoint_of_the_same_name_is_refused(manager: SageMakerEndpointManager, aws: AwsSession) -> None:
    manager.deploy("ep", MODEL_URI)
    with pytest.raises(AlreadyExistsError, match="delete it first"):
        manager.deploy("ep", f"s3://{BUCKET}/other/model.tar.gz")
    assert _client(aws).describe_model(ModelName="ep")["PrimaryContainer"]["ModelDataUrl"] == MODEL_URI


def _not_found(stub: Stubber, operation: str, what: str) -> None:
    stub.add_client_error(operation, "ValidationException", f"Could not find {what}.", 400)


def test_a_leftover_model_of_that_name_is_already_exists(manager: SageMakerEndpointManager, aws: AwsSession) -> None:
    with Stubber(_client(aws)) as stub:
        _not_found(stub, "describe_endpoint", "endpoint")
        stub.add_client_error("create_model", "ValidationException",
                              'Cannot create already existing model "arn:aws:sagemaker:us-east-1:1:model/ep".', 400)
        with pytest.raises(AlreadyExistsError, match="SageMaker model ep exists already"):
            manager.deploy("ep", MODEL_URI)
        stub.assert_no_pending_responses()  # nothing to roll back: nothing was created


def test_a_refused_endpoint_rolls_back_its_config_and_model(manager: SageMakerEndpointManager, aws: AwsSession) -> None:
    with Stubber(_client(aws)) as stub:
        _not_found(stub, "describe_endpoint", "endpoint")
        stub.add_response("create_model", {"ModelArn": "arn:aws:sagemaker:us-east-1:123456789012:model/ep"},
                          {"ModelName": "ep", "PrimaryContainer": ANY, "ExecutionRoleArn": ROLE_ARN})
        stub.add_response("create_endpoint_config",
                          {"EndpointConfigArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/ep"},
                          {"EndpointConfigName": "ep", "ProductionVariants": ANY})
        stub.add_client_error("create_endpoint", "ResourceLimitExceeded",
                              "The account-level service limit 'ml.m5.large for endpoint usage' is 0 Instances", 400)
        stub.add_response("delete_endpoint_config", {}, {"EndpointConfigName": "ep"})
        stub.add_response("delete_model", {}, {"ModelName": "ep"})
        with pytest.raises(BackendError, match="ResourceLimitExceeded"):
            manager.deploy("ep", MODEL_URI)
        stub.assert_no_pending_responses()


# --- describe, list --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sagemaker_status", "status", "reason"),
    [
        ("Creating", EndpointStatus.CREATING, None),
        ("Updating", EndpointStatus.IN_SERVICE, None),
        ("SystemUpdating", EndpointStatus.IN_SERVICE, None),
        ("RollingBack", EndpointStatus.IN_SERVICE, None),
        ("InService", EndpointStatus.IN_SERVICE, None),
        ("Deleting", EndpointStatus.DELETING, None),
        ("Failed", EndpointStatus.FAILED, "boom"),
        ("OutOfService", EndpointStatus.FAILED, "the endpoint is OutOfService: boom"),
        ("UpdateRollbackFailed", EndpointStatus.FAILED, "the endpoint is UpdateRollbackFailed: boom"),
    ],
)
def test_sagemaker_statuses_map_onto_ours(sagemaker_status: str, status: EndpointStatus, reason: str | None) -> None:
    assert endpoint_status(sagemaker_status, "boom") == (status, reason)


def test_every_sagemaker_status_is_mapped(aws: AwsSession) -> None:
    shape = _client(aws).meta.service_model.shape_for("EndpointStatus")
    assert {endpoint_status(s, None)[0] for s in shape.enum} == set(EndpointStatus)
    assert endpoint_status("Failed", None) == (EndpointStatus.FAILED, "SageMaker gave no reason")


def _described(status: str, **extra: Any) -> dict[str, Any]:
    created = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    return {
        "EndpointName": "ep",
        "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/ep",
        "EndpointConfigName": "ep",
        "EndpointStatus": status,
        "CreationTime": created,
        "LastModifiedTime": created + timedelta(minutes=5),
        **extra,
    }


def test_describe_follows_the_config_to_the_model_once(manager: SageMakerEndpointManager, aws: AwsSession) -> None:
    config = {
        "EndpointConfigName": "ep",
        "EndpointConfigArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/ep",
        "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "ep", "InstanceType": "ml.g5.xlarge",
                                "InitialInstanceCount": 3}],
        "CreationTime": datetime(2026, 1, 2, tzinfo=UTC),
    }
    model = {
        "ModelName": "ep",
        "ModelArn": "arn:aws:sagemaker:us-east-1:123456789012:model/ep",
        "PrimaryContainer": {"Image": IMAGE, "ModelDataUrl": MODEL_URI,
                             "Environment": {"SERVE_MAX_BATCH_SIZE": "32", "SERVE_WORKERS": "not a number"}},
        "CreationTime": datetime(2026, 1, 2, tzinfo=UTC),
    }
    with Stubber(_client(aws)) as stub:
        stub.add_response("describe_endpoint", _described("Creating"), {"EndpointName": "ep"})
        stub.add_response("describe_endpoint_config", config, {"EndpointConfigName": "ep"})
        stub.add_response("describe_model", model, {"ModelName": "ep"})
        creating = manager.describe("ep")
        failed = _described("Failed", FailureReason="The primary container for production variant AllTraffic did "
                                                    "not pass the ping health check.",
                            ProductionVariants=[{"VariantName": "AllTraffic", "CurrentInstanceCount": 1}])
        stub.add_response("describe_endpoint", failed, {"EndpointName": "ep"})
        later = manager.describe("ep")  # the configuration is cached: one call
        stub.assert_no_pending_responses()
    assert creating.status is EndpointStatus.CREATING and creating.failure_reason is None
    assert creating.model_uri == MODEL_URI
    assert (creating.instance_type, creating.instance_count) == ("ml.g5.xlarge", 3)
    assert creating.serving == ServingConfig(max_batch_size=32)  # an unreadable value keeps its default
    assert creating.created_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
    assert later.status is EndpointStatus.FAILED
    assert later.failure_reason is not None and "ping health check" in later.failure_reason
    assert later.instance_count == 1  # what runs now, not what was asked for


def test_an_endpoint_whose_config_is_gone_still_describes(manager: SageMakerEndpointManager, aws: AwsSession) -> None:
    with Stubber(_client(aws)) as stub:
        stub.add_response("describe_endpoint", _described("InService"), {"EndpointName": "ep"})
        _not_found(stub, "describe_endpoint_config", "endpoint configuration")
        endpoint = manager.describe("ep")
        stub.assert_no_pending_responses()
    assert (endpoint.status, endpoint.model_uri, endpoint.instance_type) == (EndpointStatus.IN_SERVICE, "", "unknown")


def test_list_is_newest_first_through_moto(manager: SageMakerEndpointManager) -> None:
    for i in range(3):
        manager.deploy(f"ep-{i}", f"s3://{BUCKET}/{PREFIX}/jobs/job-{i}/output/model.tar.gz")
    listed = manager.list_endpoints()
    assert [e.name for e in listed] == ["ep-2", "ep-1", "ep-0"]
    assert [e.model_uri for e in listed] == [f"s3://{BUCKET}/{PREFIX}/jobs/job-{i}/output/model.tar.gz"
                                             for i in (2, 1, 0)]
    assert all(e.status is EndpointStatus.IN_SERVICE and e.backend == "aws" for e in listed)


def test_list_asks_page_by_page(manager: SageMakerEndpointManager, aws: AwsSession) -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)

    def summary(name: str, minutes: int, status: str) -> dict[str, Any]:
        return {"EndpointName": name, "EndpointArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{name}",
                "CreationTime": base + timedelta(minutes=minutes), "LastModifiedTime": base, "EndpointStatus": status}

    asked = {"SortBy": "CreationTime", "SortOrder": "Descending"}
    with Stubber(_client(aws)) as stub:
        stub.add_response("list_endpoints", {"Endpoints": [summary("new", 2, "Creating")], "NextToken": "t"}, asked)
        stub.add_response("list_endpoints", {"Endpoints": [summary("gone", 1, "Deleting")]}, {**asked, "NextToken": "t"})
        new = _described("Creating", EndpointName="new", EndpointConfigName="new-config", CreationTime=base)
        stub.add_response("describe_endpoint", new, {"EndpointName": "new"})
        _not_found(stub, "describe_endpoint_config", "endpoint configuration")
        _not_found(stub, "describe_endpoint", "endpoint")  # deleted since the listing
        endpoints = manager.list_endpoints()
        stub.assert_no_pending_responses()
    assert [(e.name, e.status) for e in endpoints] == [("new", EndpointStatus.CREATING)]


def test_unknown_endpoints_are_not_found(manager: SageMakerEndpointManager) -> None:
    for call in (manager.describe, manager.delete):
        with pytest.raises(NotFoundError, match="endpoint nope"):
            call("nope")


# --- delete ----------------------------------------------------------------------------------


def test_delete_removes_endpoint_config_and_model(manager: SageMakerEndpointManager, aws: AwsSession) -> None:
    manager.deploy("ep", MODEL_URI)
    manager.deploy("other", MODEL_URI)
    manager.delete("ep")
    sagemaker = _client(aws)
    assert [e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"]] == ["other"]
    assert [c["EndpointConfigName"] for c in sagemaker.list_endpoint_configs()["EndpointConfigs"]] == ["other"]
    assert [m["ModelName"] for m in sagemaker.list_models()["Models"]] == ["other"]
    with pytest.raises(NotFoundError):
        manager.describe("ep")
    manager.deploy("ep", f"s3://{BUCKET}/retrained/model.tar.gz")  # the name is free again, nothing cached
    assert manager.describe("ep").model_uri == f"s3://{BUCKET}/retrained/model.tar.gz"


def test_delete_of_an_endpoint_made_elsewhere_keeps_its_config_and_model(
    manager: SageMakerEndpointManager, aws: AwsSession
) -> None:
    sagemaker = _client(aws)
    sagemaker.create_model(ModelName="team-model", ExecutionRoleArn=ROLE_ARN,
                           PrimaryContainer={"Image": IMAGE, "ModelDataUrl": MODEL_URI})
    sagemaker.create_endpoint_config(EndpointConfigName="team-config", ProductionVariants=[
        {"VariantName": "v1", "ModelName": "team-model", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}])
    sagemaker.create_endpoint(EndpointName="team-ep", EndpointConfigName="team-config")
    assert manager.describe("team-ep").model_uri == MODEL_URI
    manager.delete("team-ep")
    assert sagemaker.list_endpoints()["Endpoints"] == []
    assert [m["ModelName"] for m in sagemaker.list_models()["Models"]] == ["team-model"]
    assert len(sagemaker.list_endpoint_configs()["EndpointConfigs"]) == 1


# --- invoke ----------------------------------------------------------------------------------


def test_invoke_sends_the_body_and_reads_the_answer(manager: SageMakerEndpointManager, aws: AwsSession) -> None:
    sent: list[dict[str, Any]] = []
    runtime = aws.client("sagemaker-runtime")
    runtime.meta.events.register("provide-client-params.sagemaker-runtime.InvokeEndpoint",
                                 lambda params, **_: sent.append(dict(params)))
    backend = sagemakerruntime_backends[DEFAULT_ACCOUNT_ID][REGION]
    backend.results_queue.append((json.dumps(ANSWER), "application/json", "AllTraffic", ""))

    body, content_type = json_request([b"\xff\xd8\xff jpeg bytes"])  # moto cannot take binary bodies

    result = manager.invoke("ep", body, content_type)

    assert sent == [{"EndpointName": "ep", "Body": body, "ContentType": "application/json",
                     "Accept": "application/json"}]
    assert result.status_code == 200 and result.content_type == "application/json"
    assert result.predictions == [[("7", 0.9), ("1", 0.1)]]
    assert result.latency_ms > 0
    assert result.server_latency_ms is None  # SageMaker Runtime does not pass the server's header on


def test_a_body_over_6_mb_is_refused_without_a_request(manager: SageMakerEndpointManager, aws: AwsSession) -> None:
    with Stubber(aws.client("sagemaker-runtime")) as stub:
        with pytest.raises(InvalidInputError, match="at most 6,291,456"):
            manager.invoke("ep", b"\0" * (6 * 1024 * 1024 + 1), "image/jpeg")
        stub.assert_no_pending_responses()


def test_a_model_not_ready_yet_is_invalid_input(manager: SageMakerEndpointManager, aws: AwsSession) -> None:
    with Stubber(aws.client("sagemaker-runtime")) as stub:
        stub.add_client_error("invoke_endpoint", "ModelNotReadyException", "Model is still loading", 429)
        with pytest.raises(InvalidInputError, match="not ready yet"):
            manager.invoke("ep", b"x", "image/jpeg")
        stub.assert_no_pending_responses()


class _FakeRuntime(BaseHTTPRequestHandler):
    """Answers every invocation with the status, headers and body the test queued."""

    answers: list[tuple[int, dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        status, headers, body = self.answers.pop(0)
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def fake_runtime(aws_credentials: None, aws_settings: Settings,
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SageMakerEndpointManager, list[Any]]]:
    """A manager whose sagemaker-runtime client talks to a local fake (boto3's endpoint variable)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeRuntime)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", f"http://127.0.0.1:{server.server_port}")
    answers: list[Any] = []
    monkeypatch.setattr(_FakeRuntime, "answers", answers)
    try:
        yield SageMakerEndpointManager(aws_settings, AwsSession(aws_settings), serving_image=IMAGE), answers
    finally:
        server.shutdown()
        server.server_close()


def _model_error(original_status: int, message: str) -> tuple[int, dict[str, str], bytes]:
    """SageMaker Runtime's answer when the container answered an error."""
    original = json.dumps({"ErrorCode": "BadRequest", "Message": message})
    body = {"ErrorCode": "CLIENT_ERROR_FROM_MODEL" if original_status < 500 else "SERVER_ERROR_FROM_MODEL",
            "Message": f'Received error ({original_status}) from primary with message "{original}".',
            "OriginalStatusCode": original_status, "OriginalMessage": original,
            "LogStreamArn": "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/ep"}
    return 424, {"x-amzn-ErrorType": "ModelError:http://internal.amazon.com/coral/com.amazon.sagemaker/"}, \
        json.dumps(body).encode()


def _runtime_error(status: int, code: str, message: str) -> tuple[int, dict[str, str], bytes]:
    return status, {"x-amzn-ErrorType": code}, json.dumps({"message": message}).encode()


def test_runtime_errors_are_translated(fake_runtime: tuple[SageMakerEndpointManager, list[Any]]) -> None:
    manager, answers = fake_runtime
    answers.extend([
        _model_error(400, "the body is not an image (cannot identify image file)"),
        _model_error(500, "the model failed on this request: RuntimeError: out of memory"),
        _runtime_error(400, "ValidationError", "Endpoint ep of account 123456789012 not found."),
        _runtime_error(400, "ValidationError", "1 validation error detected: Value at 'contentType' failed"),
        (200, {"Content-Type": "text/plain"}, b"not json"),
        (200, {"X-Inference-Latency-Ms": "3.25"}, json.dumps(ANSWER).encode()),
    ])
    with pytest.raises(InvalidInputError, match=r"refused the request \(400\): the body is not an image"):
        manager.invoke("ep", b"not an image", "image/jpeg")
    with pytest.raises(BackendError, match=r"failed \(500\): the model failed on this request: RuntimeError"):
        manager.invoke("ep", b"x", "image/jpeg")
    with pytest.raises(NotFoundError, match="endpoint ep: not found"):
        manager.invoke("ep", b"x", "image/jpeg")
    with pytest.raises(InvalidInputError, match="validation error detected"):
        manager.invoke("ep", b"x", "image/jpeg")
    with pytest.raises(BackendError, match="not JSON"):
        manager.invoke("ep", b"x", "image/jpeg")
    result = manager.invoke("ep", b"x", "image/jpeg")
    assert result.predictions == [[("7", 0.9), ("1", 0.1)]] and result.server_latency_ms == 3.25
    assert answers == []
    assert manager.invocation_url("ep").startswith("http://127.0.0.1:")


# --- the serving image -----------------------------------------------------------------------

DOCKERFILE = REPO_ROOT / "docker" / "serving" / "Dockerfile"


def _launcher() -> str:
    """The ``serve`` script the Dockerfile writes (its heredoc)."""
    text = DOCKERFILE.read_text()
    match = re.search(r"<<'EOF' /usr/local/bin/serve\n(.*?)\nEOF\n", text, re.S)
    assert match, "the Dockerfile no longer writes /usr/local/bin/serve"
    return match.group(1) + "\n"


def test_the_image_pins_what_the_job_environment_pins() -> None:
    pinned = {
        line.split("==")[0].lower(): line.strip()
        for path in (REPO_ROOT / "requirements-job.txt", ENTRYPOINTS_DIR / "requirements.txt")
        for line in path.read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    image_pins = re.findall(r"\b([A-Za-z0-9_.-]+==[0-9][^\s\\]*)", DOCKERFILE.read_text())
    assert {"torch==2.14.1", "torchvision==0.29.1"} <= set(image_pins)
    for pin in image_pins:
        assert pinned.get(pin.split("==")[0].lower()) == pin, f"{pin} differs from the job environment"


def test_the_image_copies_every_entrypoint_module_the_server_imports() -> None:
    copied = set(re.findall(r"entrypoints/(\w+\.py)", DOCKERFILE.read_text()))
    local = {p.name for p in ENTRYPOINTS_DIR.glob("*.py")}
    todo, needed = ["serve.py"], set()
    while todo:
        name = todo.pop()
        needed.add(name)
        tree = ast.parse((ENTRYPOINTS_DIR / name).read_text())
        for node in ast.walk(tree):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            todo.extend(f"{m}.py" for m in modules if f"{m}.py" in local and f"{m}.py" not in needed)
    assert needed == {"serve.py", "model_server.py", "http1.py", "batching.py", "runtime_errors.py",
                      "model_loading.py", "loop_wakeups.py", "inference.py", "imagedata.py", "imagemodels.py",
                      "local_iam.py", "iam_eval.py"}
    assert needed <= copied


def _run_launcher(tmp_path: Path, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Runs the image's ``serve`` with a stand-in ``python`` that prints the arguments it got."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake_python = bin_dir / "python"
    fake_python.write_text(f'#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n')
    fake_python.chmod(0o755)
    script = tmp_path / "serve"
    script.write_text(_launcher())
    return subprocess.run(["sh", str(script)], env={"PATH": f"{bin_dir}:/usr/bin:/bin", **environment},
                          capture_output=True, text=True, timeout=30)


def test_the_image_starts_the_server_as_the_model_environment_says(tmp_path: Path) -> None:
    environment = serving_environment("digits-ep", ServingConfig(max_batch_size=8, max_wait_ms=2.5, workers=4))
    launched = _run_launcher(tmp_path, {**environment, "SAGEMAKER_BIND_TO_PORT": "9090"})
    assert launched.returncode == 0, launched.stderr
    script, *argv = json.loads(launched.stdout)
    assert script == "/opt/ml/code/serve.py"
    # the job environment's serve.py must accept exactly these arguments
    parse = ("import json, sys; sys.path.insert(0, sys.argv[1]); import serve; "
             "args = serve.build_parser().parse_args(json.loads(sys.stdin.read())); "
             "print(json.dumps({k: str(v) for k, v in vars(args).items()}))")
    parsed = subprocess.run([str(DEFAULT_JOB_PYTHON), "-c", parse, str(ENTRYPOINTS_DIR)], input=json.dumps(argv),
                            capture_output=True, text=True, timeout=120)
    assert parsed.returncode == 0, parsed.stderr
    assert {k: v for k, v in json.loads(parsed.stdout).items() if k != "torch_threads"} == {
        "host": "0.0.0.0", "port": "9090", "model": "/opt/ml/model", "name": "digits-ep", "max_batch_size": "8",
        "max_wait_ms": "2.5", "workers": "4", "scratch_dir": "None", "iam_dir": "None", "account": "000000000000",
        "pad_batches": "auto",
    }
    defaults = json.loads(_run_launcher(tmp_path, {}).stdout)
    assert defaults[defaults.index("--port") + 1] == "8080"


def test_the_image_refuses_another_handler(tmp_path: Path) -> None:
    launched = _run_launcher(tmp_path, {"SAGEMAKER_PROGRAM": "other.py"})
    assert launched.returncode == 1 and launched.stdout == ""
    assert "serves inference.py, not SAGEMAKER_PROGRAM=other.py" in launched.stderr
