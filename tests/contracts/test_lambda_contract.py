"""The FunctionManager contract (core/lambdas/_base.py), held to the same assertions on both backends.

Each backend deploys the console's own function (``lambda/``) bound to an endpoint of its own:
locally the function runs in its own process with a local role's credentials and the endpoint
server (``entrypoints/serve.py``) checks that role's policy; on aws the function goes to Lambda,
which is moto behind the Lambda stand-in (tests/standins/lambdas.py: Invoke runs the code as
the function's role), and the endpoint is served by the Runtime stand-in, which checks the
role's IAM policy in moto. The same image, the same answers, the same refusals.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.backend import Backend
from core.config import DEFAULT_JOB_PYTHON
from core.endpoints import Endpoint, EndpointStatus
from core.errors import InvalidInputError, NotFoundError
from core.lambdas import FunctionManager, FunctionSpec
from core.lambdas.entities import FunctionInfo
from tests.core.endpoints.conftest import image_bytes, model_tar  # noqa: F401  (model_tar is a fixture)

SETTLE_S = 120.0
ENDPOINT = "lambda-contract-ep"
FUNCTION = "classify-contract"
UNKNOWN = "no-such-function"
EVENT = {"image": base64.b64encode(image_bytes()).decode()}


@pytest.fixture
def local_job_python() -> Path:
    """The local endpoint server loads the model with torch, and the function needs boto3: the job environment."""
    return DEFAULT_JOB_PYTHON


@pytest.fixture
def endpoint(backend: Backend, model_tar: Path) -> Iterator[Endpoint]:
    """The model deployed and in service on the backend; deleted (its server stopped) after the test."""
    model_uri = backend.storage.put_file(model_tar, "models/lambda-contract/model.tar.gz")
    manager = backend.endpoints
    manager.deploy(ENDPOINT, model_uri, instance_type=manager.instance_types[0], instance_count=1)
    try:
        ready = manager.wait(ENDPOINT, timeout_s=SETTLE_S, poll_s=0.2)
        assert ready.status is EndpointStatus.IN_SERVICE, ready.failure_reason
        yield ready
    finally:
        manager.delete(ENDPOINT)


@pytest.fixture
def functions(backend: Backend, endpoint: Endpoint) -> Iterator[FunctionManager]:
    """The backend's function manager; functions a test leaves behind are deleted."""
    manager = backend.functions
    yield manager
    for function in manager.list_functions():
        manager.delete(function.name)


def _denial(info: FunctionInfo) -> str:
    """The start of the message AWS gives a role that may not call the endpoint."""
    name = info.name
    return (f"User: arn:aws:sts::{info.account}:assumed-role/{name}-role/{name} is not authorized to perform: "
            f"sagemaker:InvokeEndpoint on resource: arn:aws:sagemaker:{info.region}:{info.account}:endpoint/{ENDPOINT}")


def test_a_deployed_function_is_described_and_listed_with_its_least_privilege_role(functions: FunctionManager) -> None:
    spec = FunctionSpec(function_name=FUNCTION, endpoint_name=ENDPOINT, timeout_s=20, memory_mb=512)

    deployed = functions.deploy(spec)

    assert deployed.spec == spec and deployed.name == FUNCTION
    assert deployed.backend == functions.backend_name
    assert deployed.arn.endswith(f":function:{FUNCTION}") and deployed.role_arn.endswith(f"/{FUNCTION}-role")
    assert deployed.allows_invoke
    assert [s["Principal"] for s in deployed.trust_policy["Statement"]] == [{"Service": "lambda.amazonaws.com"}]
    assert deployed.code_sha256 and deployed.code_size > 0
    assert abs(deployed.last_modified - time.time()) < 86_400  # read, not left at 0
    assert functions.describe(FUNCTION) == deployed
    assert functions.list_functions() == [deployed]


def test_deploying_a_name_again_updates_it(functions: FunctionManager) -> None:
    first = functions.deploy(FunctionSpec(function_name=FUNCTION, endpoint_name=ENDPOINT))

    second = functions.deploy(FunctionSpec(function_name=FUNCTION, endpoint_name=ENDPOINT, timeout_s=60,
                                           reserved_concurrency=2))

    assert (second.spec.timeout_s, second.spec.reserved_concurrency) == (60, 2)
    assert (second.arn, second.role_arn, second.code_sha256) == (first.arn, first.role_arn, first.code_sha256)
    assert functions.describe(FUNCTION) == second
    assert [f.name for f in functions.list_functions()] == [FUNCTION]


def test_invoke_answers_as_the_endpoint_and_is_denied_without_the_permission(
    functions: FunctionManager, backend: Backend
) -> None:
    info = functions.deploy(FunctionSpec(function_name=FUNCTION, endpoint_name=ENDPOINT))
    expected = backend.endpoints.invoke(ENDPOINT, image_bytes(), "image/jpeg").predictions[0][0][0]

    allowed = functions.invoke(FUNCTION, EVENT)
    assert (allowed.status_code, allowed.function_error, allowed.throttled) == (200, None, False)
    assert allowed.top_1 is not None and allowed.top_1[0] == expected
    assert allowed.log_lines[0].startswith("START RequestId: ")
    assert allowed.log_lines[-1].startswith("REPORT RequestId: ") and allowed.duration_ms is not None

    assert not functions.set_invoke_permission(FUNCTION, False).allows_invoke
    denied = functions.invoke(FUNCTION, EVENT)
    assert denied.status_code == 403 and denied.top_1 is None
    assert denied.body["error"] == "AccessDenied" and denied.body["message"].startswith(_denial(info))

    assert functions.set_invoke_permission(FUNCTION, True).allows_invoke
    assert functions.invoke(FUNCTION, EVENT).top_1 == allowed.top_1


def test_a_bad_event_is_answered_by_the_function_and_a_bad_payload_refused_before_sending(
    functions: FunctionManager
) -> None:
    functions.deploy(FunctionSpec(function_name=FUNCTION, endpoint_name=ENDPOINT))

    bad = functions.invoke(FUNCTION, {"image": "bm90IGFuIGltYWdl"})  # base64 of "not an image"
    assert bad.status_code == 400 and bad.function_error is None
    with pytest.raises(InvalidInputError, match="not JSON"):
        functions.invoke(FUNCTION, {"image": object()})
    with pytest.raises(InvalidInputError, match="6 MB"):
        functions.invoke(FUNCTION, {"image": "A" * (6 * 1024 * 1024)})


def test_reserved_concurrency_zero_throttles_every_call(functions: FunctionManager) -> None:
    functions.deploy(FunctionSpec(function_name=FUNCTION, endpoint_name=ENDPOINT, reserved_concurrency=0))

    throttled = functions.invoke(FUNCTION, EVENT)

    assert throttled.throttled and throttled.top_1 is None


def test_an_unknown_or_deleted_function_is_not_found(functions: FunctionManager) -> None:
    functions.deploy(FunctionSpec(function_name=FUNCTION, endpoint_name=ENDPOINT))
    functions.delete(FUNCTION)

    assert functions.list_functions() == []
    for name in (FUNCTION, UNKNOWN):
        with pytest.raises(NotFoundError):
            functions.describe(name)
        with pytest.raises(NotFoundError):
            functions.invoke(name, EVENT)
        with pytest.raises(NotFoundError):
            functions.set_invoke_permission(name, False)
        with pytest.raises(NotFoundError):
            functions.delete(name)
