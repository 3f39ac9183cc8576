"""The local Lambda runner against a real endpoint server: the deployed package runs in its own
process with a local role's credentials, the server authorises each call by that role's policy
(allowed, removed, explicit deny, wrong region, unknown key), reserved concurrency throttles,
and the handler's "unknown endpoint" comes from the real server."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from PIL import Image

from core.config import DEFAULT_JOB_PYTHON
from core.endpoints import EndpointStatus, LocalEndpointManager
from core.errors import InvalidInputError, NotFoundError
from core.jobstore import JobStore
from core.lambdas import FunctionSpec
from core.lambdas._local import POLICY_NAME, LocalFunctionManager, role_name_for
from core.lambdas.events import image_event
from core.lambdas.policies import LOGS_SID
from tests.core.endpoints.conftest import CLASS_NAMES, model_tar  # noqa: F401  (fixture)
from tests.lambda_fn.conftest import Context, load_function

ENDPOINT = "Shapes-EP"  # capitals: the policy must name endpoint/shapes-ep
DENIED = ("User: arn:aws:sts::000000000000:assumed-role/classify-role/classify is not authorized to perform: "
          "sagemaker:InvokeEndpoint on resource: arn:aws:sagemaker:us-east-1:000000000000:endpoint/shapes-ep ")


def jpeg(color: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (48, 48), color).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, model_tar: Path) -> Iterator[Path]:
    """A workspace with one InService local endpoint; deleted at the end."""
    folder = tmp_path_factory.mktemp("workspace")
    endpoints = LocalEndpointManager(JobStore(folder / "console.db"), folder, DEFAULT_JOB_PYTHON)
    endpoints.deploy(ENDPOINT, model_tar.as_uri())
    endpoint = endpoints.wait(ENDPOINT, timeout_s=120, poll_s=0.1)
    assert endpoint.status is EndpointStatus.IN_SERVICE, endpoint.failure_reason
    yield folder
    endpoints.delete(ENDPOINT)


def manager_for(workspace: Path, region: str = "us-east-1") -> LocalFunctionManager:
    endpoints = LocalEndpointManager(JobStore(workspace / "console.db"), workspace, DEFAULT_JOB_PYTHON)
    return LocalFunctionManager(workspace, DEFAULT_JOB_PYTHON, endpoints, region=region)


@pytest.fixture
def functions(workspace: Path) -> Iterator[LocalFunctionManager]:
    manager = manager_for(workspace)
    manager.deploy(FunctionSpec(function_name="classify", endpoint_name=ENDPOINT))
    yield manager
    for function in manager.list_functions():
        manager.delete(function.name)


def test_allowed_call_returns_top_k_through_the_endpoint(functions: LocalFunctionManager, workspace: Path) -> None:
    function = functions.describe("classify")
    assert function.allows_invoke and function.role_arn == "arn:aws:iam::000000000000:role/classify-role"
    assert function.policy["Statement"][0]["Resource"] == "arn:aws:sagemaker:us-east-1:000000000000:endpoint/shapes-ep"
    assert (workspace / "lambda" / "classify" / "code" / "lambda_function.py").is_file()

    result = functions.invoke("classify", image_event(jpeg(), top_k=2))
    assert result.function_error is None, result.body
    assert result.status_code == 200, result.body
    probabilities = [p["probability"] for p in result.body["predictions"]]
    assert len(probabilities) == 2 and probabilities == sorted(probabilities, reverse=True)
    assert result.top_1 is not None and result.top_1[0] in CLASS_NAMES
    assert result.duration_ms is not None and 0 < result.duration_ms < result.latency_ms
    log = "\n".join(result.log_lines)
    assert log.startswith("START RequestId: ") and "REPORT RequestId: " in log and "status=200 top1=" in log
    assert "ASIALOCAL" not in log and "Credential=" not in log and "Signature" not in log
    assert functions.recent_log_lines("classify")[-len(result.log_lines):] == result.log_lines
    assert list((workspace / "iam" / "credentials").iterdir()) == []  # the session ended with the call


def test_api_gateway_event_gets_the_same_answer(functions: LocalFunctionManager) -> None:
    direct = functions.invoke("classify", image_event(jpeg((20, 200, 20))))
    proxied = functions.invoke("classify", image_event(jpeg((20, 200, 20)), api_gateway=True))
    assert direct.status_code == proxied.status_code == 200
    assert direct.body["predictions"] == proxied.body["predictions"]


def test_removing_the_permission_denies_the_call_and_restoring_it_allows_it(functions: LocalFunctionManager) -> None:
    removed = functions.set_invoke_permission("classify", False)
    assert not removed.allows_invoke and [s["Sid"] for s in removed.policy["Statement"]] == [LOGS_SID]
    denied = functions.invoke("classify", image_event(jpeg()))
    assert denied.status_code == 403
    assert denied.body == {"error": "AccessDenied", "message": DENIED + "because no identity-based policy allows "
                                                                       "the sagemaker:InvokeEndpoint action"}
    assert functions.set_invoke_permission("classify", True).allows_invoke
    assert functions.invoke("classify", image_event(jpeg())).status_code == 200


def test_an_explicit_deny_wins_over_the_allow(functions: LocalFunctionManager) -> None:
    function = functions.describe("classify")
    policy = json.loads(json.dumps(function.policy))
    policy["Statement"].append({"Sid": "NoInvoke", "Effect": "Deny", "Action": "sagemaker:Invoke*", "Resource": "*"})
    functions.iam.put_role(role_name_for("classify"), function.trust_policy, POLICY_NAME, policy)
    denied = functions.invoke("classify", image_event(jpeg()))
    assert denied.status_code == 403
    assert denied.body["message"] == DENIED + "with an explicit deny in an identity-based policy"


def test_a_function_running_in_another_region_is_denied(functions: LocalFunctionManager, workspace: Path) -> None:
    """The role's policy names us-east-1; the same function run in eu-west-1 signs for eu-west-1."""
    elsewhere = manager_for(workspace, region="eu-west-1")
    denied = elsewhere.invoke("classify", image_event(jpeg()))
    assert denied.status_code == 403
    assert ("on resource: arn:aws:sagemaker:eu-west-1:000000000000:endpoint/shapes-ep because no identity-based "
            "policy allows") in denied.body["message"]


def test_bad_inputs_come_back_from_the_function(functions: LocalFunctionManager) -> None:
    not_image = functions.invoke("classify", {"image": base64.b64encode(b"not an image at all").decode()})
    assert (not_image.status_code, not_image.body["error"]) == (400, "BadRequest")
    no_body = functions.invoke("classify", {"body": None})
    assert no_body.status_code == 400 and "no body" in no_body.body["message"]
    with pytest.raises(InvalidInputError, match="6 MB"):
        functions.invoke("classify", {"image": "A" * (6 * 1024 * 1024)})


def test_reserved_concurrency_zero_throttles_every_call(functions: LocalFunctionManager) -> None:
    spec = dataclasses.replace(functions.describe("classify").spec, reserved_concurrency=0)
    assert functions.deploy(spec).spec.reserved_concurrency == 0
    throttled = functions.invoke("classify", image_event(jpeg()))
    assert throttled.throttled and throttled.status_code is None
    assert throttled.body == {"errorType": "TooManyRequestsException", "errorMessage": "Rate Exceeded."}


def test_deploy_refuses_what_the_local_backend_cannot_do(functions: LocalFunctionManager) -> None:
    with pytest.raises(InvalidInputError, match="does not exist"):
        functions.deploy(FunctionSpec(function_name="other", endpoint_name="no-such-endpoint"))
    with pytest.raises(InvalidInputError, match="S3 inputs need the aws backend"):
        functions.deploy(FunctionSpec(function_name="other", endpoint_name=ENDPOINT,
                                      s3_input_prefix="s3://bucket-a/in/"))
    with pytest.raises(NotFoundError):
        functions.invoke("no-such-function", {})


def test_the_handler_meets_the_real_server(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In this process: an unknown endpoint name is the server's ValidationError (404 here), a
    key that no local session holds is refused, and an unsigned-style key is served."""
    url = manager_for(workspace).endpoints.describe(ENDPOINT).url
    assert url
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", url)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    event = image_event(jpeg())

    monkeypatch.setenv("ENDPOINT_NAME", "no-such-endpoint")
    response = load_function().lambda_handler(event, Context())
    assert response["statusCode"] == 404 and "Endpoint no-such-endpoint" in json.loads(response["body"])["message"]

    monkeypatch.setenv("ENDPOINT_NAME", ENDPOINT)
    assert load_function().lambda_handler(event, Context())["statusCode"] == 200

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ASIALOCAL000000000000")  # a local key with no session
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # boto3's default session keeps the first credentials
    response = load_function().lambda_handler(event, Context())
    assert response["statusCode"] == 403 and "UnrecognizedClientException" in json.loads(response["body"])["message"]


def test_the_runtime_reports_timeouts_and_unhandled_errors(workspace: Path, tmp_path: Path) -> None:
    """What Lambda reports, with the function's own code swapped for misbehaving handlers."""
    source = tmp_path / "misbehaving"
    source.mkdir()
    (source / "lambda_function.py").write_text(
        "import time\n"
        "def lambda_handler(event, context):\n"
        "    if event.get('sleep'):\n"
        "        time.sleep(event['sleep'])\n"
        "    raise RuntimeError('boom: ' + str(context.get_remaining_time_in_millis() > 0))\n")
    endpoints = LocalEndpointManager(JobStore(workspace / "console.db"), workspace, DEFAULT_JOB_PYTHON)
    manager = LocalFunctionManager(workspace, DEFAULT_JOB_PYTHON, endpoints, source_dir=source)
    manager.deploy(FunctionSpec(function_name="misbehaving", endpoint_name=ENDPOINT, timeout_s=1))
    try:
        crashed = manager.invoke("misbehaving", {})
        assert crashed.function_error == "Unhandled" and crashed.status_code is None
        assert crashed.body["errorType"] == "RuntimeError" and crashed.body["errorMessage"] == "boom: True"
        timed_out = manager.invoke("misbehaving", {"sleep": 5})
        assert timed_out.function_error == "Unhandled"
        assert timed_out.body == {"errorType": "Sandbox.Timedout", "errorMessage": "Task timed out after 1.00 seconds"}
        assert any("Task timed out after 1.00 seconds" in line for line in timed_out.log_lines)
    finally:
        manager.delete("misbehaving")
