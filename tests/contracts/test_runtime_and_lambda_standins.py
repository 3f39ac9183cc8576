"""The Runtime and Lambda stand-ins (tests/standins/runtime.py, lambdas.py) run what moto cannot:
an endpoint that answers an image with the project's model server, and a Lambda function whose
code runs and calls that endpoint as its role. Driven through the console's own aws backend and
with boto3 directly: botocore parses every answer, and the stand-ins check each answer against
botocore's model before sending it."""

from __future__ import annotations

import base64
import io
import json
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from botocore import parsers
from botocore.awsrequest import HeadersDict
from botocore.config import Config
from botocore.exceptions import ClientError

from core.backend import Backend, get_backend
from core.config import Settings
from core.endpoints import Endpoint, EndpointStatus
from core.errors import InvalidInputError, NotFoundError
from core.lambdas import FunctionSpec
from core.types import BackendKind
from tests.core.aws_fixtures import BUCKET, FAKE_ACCESS_KEY, FAKE_SECRET, PREFIX, REGION, clear_aws_environment
from tests.core.endpoints.conftest import CLASS_NAMES, image_bytes, model_tar  # noqa: F401  (fixture)
from tests.standins.lambdas import LambdaStandIn
from tests.standins.runtime import RuntimeStandIn, StandInError, rest_answer, rest_error

ACCOUNT = "123456789012"
"""moto's default account."""
ENDPOINT = "Shapes-Endpoint"
"""Capitals on purpose: SageMaker's ARN, the policy and the stand-in all lower-case it."""
ENDPOINT_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/shapes-endpoint"
MODEL_URI = f"s3://{BUCKET}/{PREFIX}/models/shapes/model.tar.gz"
SAGEMAKER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/smc-endpoints"
SERVING_IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/sm-console-serving:1"
LAMBDA_TRUST, SAGEMAKER_TRUST = (json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": f"{service}.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
    for service in ("lambda", "sagemaker"))
JPEG = image_bytes()
NO_RETRIES = Config(retries={"mode": "standard", "max_attempts": 1})
PROBE_HANDLER = """
import json, logging, os, time
import boto3

logging.getLogger().setLevel(logging.INFO)  # Lambda's root logger starts at WARNING


def lambda_handler(event, context):
    logging.getLogger().info("event %s", json.dumps(event))
    if event.get("fail"):
        raise ValueError("asked to fail")
    time.sleep(event.get("sleep", 0))
    return {"greeting": os.environ["GREETING"], "caller": boto3.client("sts").get_caller_identity()["Arn"],
            "function": context.function_name, "remaining_ms": context.get_remaining_time_in_millis()}
"""


@pytest.fixture(scope="module")
def stand_ins(moto_url: str) -> Iterator[tuple[RuntimeStandIn, LambdaStandIn]]:
    """Both stand-ins for this module, in front of a moto emptied for it."""
    urllib.request.urlopen(urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST"), timeout=30).close()
    with RuntimeStandIn(moto_url) as runtime, LambdaStandIn(moto_url, runtime) as lambdas:
        yield runtime, lambdas


def _backend(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, moto_url: str,
             stand_ins: tuple[RuntimeStandIn, LambdaStandIn]) -> Backend:
    """The console's aws backend: moto for every service but these two, which go to the stand-ins."""
    runtime, lambdas = stand_ins
    clear_aws_environment(monkeypatch, tmp_path)
    for name, value in {
        "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": FAKE_SECRET, "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": moto_url, "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": runtime.url,
        "AWS_ENDPOINT_URL_LAMBDA": lambdas.url,
    }.items():
        monkeypatch.setenv(name, value)
    return get_backend(Settings(backend=BackendKind.AWS, workspace=tmp_path / "workspace", region=REGION,
                                bucket=BUCKET, prefix=PREFIX, role_arn=SAGEMAKER_ROLE,
                                serving_image_uri=SERVING_IMAGE))


@pytest.fixture(scope="module")
def endpoint(moto_url: str, stand_ins: tuple[RuntimeStandIn, LambdaStandIn], model_tar: Path,
             tmp_path_factory: pytest.TempPathFactory) -> Endpoint:
    """The model in moto S3, deployed by the console as ENDPOINT."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        backend = _backend(monkeypatch, tmp_path_factory.mktemp("deploy"), moto_url, stand_ins)
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        bucket, key = MODEL_URI.removeprefix("s3://").split("/", 1)
        s3.upload_file(str(model_tar), bucket, key)
        boto3.client("iam", region_name=REGION).create_role(
            RoleName=SAGEMAKER_ROLE.rsplit("/", 1)[1], AssumeRolePolicyDocument=SAGEMAKER_TRUST)
        return backend.endpoints.deploy(ENDPOINT, MODEL_URI, instance_type="ml.m5.large", instance_count=1)


@pytest.fixture
def backend(endpoint: Endpoint, moto_url: str, stand_ins: tuple[RuntimeStandIn, LambdaStandIn],
            monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Backend]:
    """A fresh aws backend; an answer of a stand-in that failed or broke botocore's model fails the test."""
    yield _backend(monkeypatch, tmp_path, moto_url, stand_ins)
    for stand_in in stand_ins:
        assert not stand_in.errors, f"a stand-in failed: {stand_in.errors}"


def _error(raised: pytest.ExceptionInfo[ClientError]) -> tuple[str, str, int]:
    response = raised.value.response
    return response["Error"]["Code"], response["Error"]["Message"], response["ResponseMetadata"]["HTTPStatusCode"]


def _runtime_client(runtime: RuntimeStandIn, key: str = FAKE_ACCESS_KEY, secret: str = FAKE_SECRET,
                    token: str | None = None) -> Any:
    return boto3.client("sagemaker-runtime", region_name=REGION, endpoint_url=runtime.url, aws_access_key_id=key,
                        aws_secret_access_key=secret, aws_session_token=token, config=NO_RETRIES)


# --- through the console ---------------------------------------------------------------------------------


def test_an_endpoint_the_console_deployed_answers_an_image_with_its_top_k(backend: Backend, endpoint: Endpoint) -> None:
    assert endpoint.status is EndpointStatus.IN_SERVICE

    result = backend.endpoints.invoke(ENDPOINT, JPEG, "image/jpeg")

    assert result.status_code == 200 and result.content_type == "application/json"
    top_k = result.predictions[0]
    assert sorted(label for label, _ in top_k) == sorted(CLASS_NAMES)
    assert [p for _, p in top_k] == sorted((p for _, p in top_k), reverse=True)
    assert sum(p for _, p in top_k) == pytest.approx(1.0, abs=1e-3)
    assert result.server_latency_ms is None  # SageMaker passes no container header but Content-Type on


def test_a_body_the_model_refuses_and_an_unknown_endpoint(backend: Backend) -> None:
    with pytest.raises(InvalidInputError, match=r"refused the request \(400\): .*not an image"):
        backend.endpoints.invoke(ENDPOINT, b"these bytes are no image", "image/jpeg")
    with pytest.raises(NotFoundError):
        backend.endpoints.invoke("no-such-endpoint", JPEG, "image/jpeg")


def test_the_consoles_function_calls_the_endpoint_as_its_role(backend: Backend) -> None:
    name = "classify-shapes"
    backend.functions.deploy(FunctionSpec(function_name=name, endpoint_name=ENDPOINT))
    expected = backend.endpoints.invoke(ENDPOINT, JPEG, "image/jpeg").predictions[0][0][0]
    event = {"image": base64.b64encode(JPEG).decode()}

    allowed = backend.functions.invoke(name, event)

    assert (allowed.status_code, allowed.function_error) == (200, None)
    assert allowed.top_1 is not None and allowed.top_1[0] == expected
    assert allowed.log_lines[0].startswith("START RequestId: ")
    assert allowed.log_lines[-2].startswith("END RequestId: ") and allowed.log_lines[-1].startswith("REPORT ")
    assert allowed.duration_ms is not None

    backend.functions.set_invoke_permission(name, False)
    denied = backend.functions.invoke(name, event)
    assert denied.status_code == 403 and denied.body["error"] == "AccessDenied"
    assert denied.body["message"] == (
        f"User: arn:aws:sts::{ACCOUNT}:assumed-role/{name}-role/{name} is not authorized to perform: "
        f"sagemaker:InvokeEndpoint on resource: {ENDPOINT_ARN} because no identity-based policy allows the "
        "sagemaker:InvokeEndpoint action")

    backend.functions.set_invoke_permission(name, True)
    assert backend.functions.invoke(name, event).top_1 == allowed.top_1


# --- the Runtime stand-in with boto3 -----------------------------------------------------------------------


StandIns = tuple[RuntimeStandIn, LambdaStandIn]


def test_invoke_endpoint_answers_and_errors_as_sagemaker_runtime(backend: Backend, stand_ins: StandIns) -> None:
    runtime = _runtime_client(stand_ins[0])

    answer = runtime.invoke_endpoint(EndpointName=ENDPOINT, Body=JPEG, ContentType="image/jpeg",
                                     Accept="application/json")
    assert (answer["ContentType"], answer["InvokedProductionVariant"]) == ("application/json", "AllTraffic")
    assert len(json.loads(answer["Body"].read())["predictions"][0]["top_k"]) == len(CLASS_NAMES)

    with pytest.raises(ClientError) as refused:
        runtime.invoke_endpoint(EndpointName=ENDPOINT, Body=JPEG, ContentType="image/jpeg", Accept="text/csv")
    assert _error(refused)[0::2] == ("ModelError", 424)
    response = refused.value.response
    assert response["OriginalStatusCode"] == 406 and "cannot answer 'text/csv'" in response["OriginalMessage"]
    assert response["LogStreamArn"] == f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/sagemaker/Endpoints/{ENDPOINT}"
    assert _error(refused)[1].startswith('Received client error (406) from primary with message "')

    with pytest.raises(ClientError) as unknown:
        runtime.invoke_endpoint(EndpointName="nobody", Body=JPEG, ContentType="image/jpeg")
    assert _error(unknown) == ("ValidationError", f"Endpoint nobody of account {ACCOUNT} not found.", 400)

    with pytest.raises(ClientError) as too_large:
        runtime.invoke_endpoint(EndpointName=ENDPOINT, Body=b"\0" * (6 * 1024 * 1024 + 1), ContentType="image/jpeg")
    assert _error(too_large)[2] == 413


def test_a_role_session_invokes_as_its_inline_policies_allow(backend: Backend, stand_ins: StandIns) -> None:
    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(RoleName="probe-role", AssumeRolePolicyDocument=LAMBDA_TRUST)["Role"]["Arn"]
    credentials = stand_ins[0].assume_role(role, "probe", REGION)
    runtime = _runtime_client(stand_ins[0], credentials.access_key_id, credentials.secret_access_key,
                              credentials.session_token)

    def put(policy: str, effect: str, resource: str) -> None:
        iam.put_role_policy(RoleName="probe-role", PolicyName=policy, PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": effect, "Action": "sagemaker:InvokeEndpoint", "Resource": resource}]}))

    def refusal() -> tuple[str, str, int]:
        with pytest.raises(ClientError) as refused:
            runtime.invoke_endpoint(EndpointName=ENDPOINT, Body=JPEG, ContentType="image/jpeg")
        return _error(refused)

    denied = f"User: arn:aws:sts::{ACCOUNT}:assumed-role/probe-role/probe is not authorized to perform: " \
             f"sagemaker:InvokeEndpoint on resource: {ENDPOINT_ARN}"
    put("as-typed", "Allow", ENDPOINT_ARN.replace("shapes-endpoint", ENDPOINT))  # SageMaker's ARN is lower-case
    assert refusal() == ("AccessDeniedException", f"{denied} because no identity-based policy allows the "
                                                   "sagemaker:InvokeEndpoint action", 400)

    put("lower-case", "Allow", ENDPOINT_ARN)
    assert runtime.invoke_endpoint(EndpointName=ENDPOINT, Body=JPEG, ContentType="image/jpeg")["Body"].read()

    put("deny-all", "Deny", "*")
    assert refusal() == ("AccessDeniedException", f"{denied} with an explicit deny in an identity-based policy", 400)


def test_model_servers_stop_on_reset_and_with_the_stand_in(endpoint: Endpoint, moto_url: str) -> None:
    with RuntimeStandIn(moto_url) as runtime:
        client = _runtime_client(runtime)
        client.invoke_endpoint(EndpointName=ENDPOINT, Body=JPEG, ContentType="image/jpeg")
        [first] = runtime.server_processes()
        runtime.reset()
        assert first.poll() is not None and runtime.server_processes() == []

        client.invoke_endpoint(EndpointName=ENDPOINT, Body=JPEG, ContentType="image/jpeg")
        [second] = runtime.server_processes()
        assert second.poll() is None
    assert second.poll() is not None
    assert not runtime.errors


# --- the Lambda stand-in with boto3 ------------------------------------------------------------------------


def _zip(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("lambda_function.py", source)
    return buffer.getvalue()


def _probe_function(stand_in: LambdaStandIn, name: str, **settings: Any) -> Any:
    """A lambda client of the stand-in, and function name created through it with PROBE_HANDLER."""
    role = boto3.client("iam", region_name=REGION).create_role(
        RoleName=f"{name}-role", AssumeRolePolicyDocument=LAMBDA_TRUST)["Role"]["Arn"]
    functions = boto3.client("lambda", region_name=REGION, endpoint_url=stand_in.url, config=NO_RETRIES)
    functions.create_function(FunctionName=name, Role=role, Runtime="python3.12", Code={"ZipFile": _zip(PROBE_HANDLER)},
                              Handler="lambda_function.lambda_handler", **settings)
    return functions


def _invoke(functions: Any, event: Any, **params: Any) -> tuple[dict[str, Any], Any]:
    answer = functions.invoke(FunctionName="probe-fn", Payload=json.dumps(event).encode(), **params)
    return answer, json.loads(answer["Payload"].read())


def test_lambda_invoke_runs_the_code_as_lambda_does(backend: Backend, stand_ins: StandIns) -> None:
    functions = _probe_function(stand_ins[1], "probe-fn", Timeout=30, Environment={"Variables": {"GREETING": "hello"}})

    answer, result = _invoke(functions, {"n": 1}, LogType="Tail")
    assert (answer["StatusCode"], answer.get("FunctionError"), answer["ExecutedVersion"]) == (200, None, "$LATEST")
    assert result["caller"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/probe-fn-role/probe-fn"
    assert (result["greeting"], result["function"]) == ("hello", "probe-fn")
    assert 0 < result["remaining_ms"] <= 30_000
    log = base64.b64decode(answer["LogResult"]).decode().splitlines()
    assert log[0].startswith("START RequestId: ") and log[1].endswith('event {"n": 1}')
    assert log[-2].startswith("END RequestId: ") and log[-1].startswith("REPORT RequestId: ")

    answer, error = _invoke(functions, {"fail": True})
    assert answer["FunctionError"] == "Unhandled" and "LogResult" not in answer
    assert (error["errorType"], error["errorMessage"]) == ("ValueError", "asked to fail")

    functions.update_function_configuration(FunctionName="probe-fn", Timeout=1)
    answer, error = _invoke(functions, {"sleep": 60})
    assert answer["FunctionError"] == "Unhandled"
    assert error == {"errorType": "Sandbox.Timedout", "errorMessage": "Task timed out after 1.00 seconds"}

    functions.update_function_code(FunctionName="probe-fn", ZipFile=_zip("def lambda_handler(event, context):\n"
                                                                         "    return {'version': 2}\n"))
    assert _invoke(functions, {})[1] == {"version": 2}

    functions.update_function_code(FunctionName="probe-fn", ZipFile=_zip("import os\n\n"
                                                                         "def lambda_handler(event, context):\n"
                                                                         "    os._exit(3)\n"))
    answer, error = _invoke(functions, {})
    assert (answer["FunctionError"], error["errorType"]) == ("Unhandled", "Runtime.ExitError")
    assert error["errorMessage"] == "Error: Runtime exited with error: exit status 3"


def test_lambda_refuses_as_lambda_does(backend: Backend, stand_ins: StandIns) -> None:
    functions = _probe_function(stand_ins[1], "refused-fn")

    with pytest.raises(ClientError) as not_json:
        functions.invoke(FunctionName="refused-fn", Payload=b"{not json")
    assert _error(not_json)[0::2] == ("InvalidRequestContentException", 400)

    functions.put_function_concurrency(FunctionName="refused-fn", ReservedConcurrentExecutions=0)
    with pytest.raises(ClientError) as throttled:
        functions.invoke(FunctionName="refused-fn", Payload=b"{}")
    assert _error(throttled) == ("TooManyRequestsException", "Rate Exceeded.", 429)
    assert throttled.value.response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"

    with pytest.raises(ClientError) as unknown:
        functions.invoke(FunctionName="nobody", Payload=b"{}")
    assert _error(unknown)[0::2] == ("ResourceNotFoundException", 404)


# --- the model checks --------------------------------------------------------------------------------------


def test_answers_are_checked_against_botocores_model_and_parse_with_its_parser() -> None:
    session = botocore.session.get_session()
    runtime, functions = session.get_service_model("sagemaker-runtime"), session.get_service_model("lambda")
    parser = parsers.create_parser("rest-json")

    status, headers, body = rest_answer(runtime, "InvokeEndpoint", {
        "Body": b'{"predictions": []}', "ContentType": "application/json", "InvokedProductionVariant": "AllTraffic"})
    parsed = parser.parse({"status_code": status, "headers": HeadersDict(headers), "body": body},
                          runtime.operation_model("InvokeEndpoint").output_shape)
    assert (parsed["Body"], parsed["InvokedProductionVariant"]) == ('{"predictions": []}', "AllTraffic")

    status, headers, body = rest_error(functions, StandInError("TooManyRequestsException", "Rate Exceeded.", 429,
                                                               Type="User"))
    parsed = parser.parse({"status_code": status, "headers": HeadersDict(headers), "body": body},
                          functions.operation_model("Invoke").output_shape)
    assert parsed["Error"] == {"Code": "TooManyRequestsException", "Message": "Rate Exceeded."}

    with pytest.raises(AssertionError, match="Unknown parameter"):
        rest_answer(functions, "Invoke", {"StatusCode": 200, "Payload": b"{}", "Logs": "..."})
    with pytest.raises(AssertionError, match="Invalid type"):
        rest_answer(runtime, "InvokeEndpoint", {"Body": b"{}", "ContentType": 5})
    with pytest.raises(AssertionError, match="HTTP 424"):
        rest_error(runtime, StandInError("ModelError", "the model failed", 500))
