"""The AWS deploy calls, against moto (IAM, Lambda without Docker, CloudWatch Logs): botocore
checks every request against the service models. Lambda's invoke in moto returns queued
payloads, so the function's own answers (from the handler) are queued there."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.awslambda_simple.models import lambda_simple_backends
from moto.core import DEFAULT_ACCOUNT_ID

from core.aws import AwsSession
from core.config import Settings
from core.errors import NotFoundError
from core.lambdas import FunctionSpec
from core.lambdas._aws import POLICY_NAME, AwsFunctionManager, role_name_for
from core.lambdas.bundle import build_package
from core.lambdas.events import image_event
from core.lambdas.policies import PolicyScope, execution_policy, trust_policy
from tests.core.aws_fixtures import (  # noqa: F401  (fixtures)
    REGION,
    aws_credentials_fixture,
    aws_settings_fixture,
    no_network_fixture,
)
from tests.lambda_fn.conftest import JPEG, load_function

SPEC = FunctionSpec(function_name="classify-digits", endpoint_name="Digits-EP", reserved_concurrency=5,
                    timeout_s=20, memory_mb=512)


@pytest.fixture
def manager(aws_credentials: None, aws_settings: Settings) -> Iterator[AwsFunctionManager]:
    with mock_aws(config={"lambda": {"use_docker": False}}):
        yield AwsFunctionManager(AwsSession(aws_settings), sleep=lambda seconds: None)


def test_deploy_creates_role_policy_and_function(manager: AwsFunctionManager) -> None:
    info = manager.deploy(SPEC)
    iam, lam = boto3.client("iam", region_name=REGION), boto3.client("lambda", region_name=REGION)

    role = iam.get_role(RoleName="classify-digits-role")["Role"]
    assert role["Path"] == "/sm-console/" and role["AssumeRolePolicyDocument"] == trust_policy()
    assert iam.list_role_policies(RoleName="classify-digits-role")["PolicyNames"] == [POLICY_NAME]
    policy = iam.get_role_policy(RoleName="classify-digits-role", PolicyName=POLICY_NAME)["PolicyDocument"]
    assert policy == execution_policy(PolicyScope("classify-digits", "Digits-EP", REGION, DEFAULT_ACCOUNT_ID))
    assert policy["Statement"][0]["Resource"] == f"arn:aws:sagemaker:{REGION}:{DEFAULT_ACCOUNT_ID}:endpoint/digits-ep"

    config = lam.get_function(FunctionName="classify-digits")["Configuration"]
    assert (config["Runtime"], config["Handler"], config["Role"]) == ("python3.12", "lambda_function.lambda_handler",
                                                                       role["Arn"])
    assert (config["Timeout"], config["MemorySize"]) == (20, 512)
    assert config["Environment"]["Variables"] == {"ENDPOINT_NAME": "Digits-EP"}
    package = build_package()
    assert config["CodeSha256"] == base64.b64encode(hashlib.sha256(package.data).digest()).decode() == package.sha256
    assert lam.get_function_concurrency(FunctionName="classify-digits")["ReservedConcurrentExecutions"] == 5

    assert info.spec == SPEC and info.allows_invoke and info.role_arn == role["Arn"]
    assert info.arn == config["FunctionArn"] and info.account == DEFAULT_ACCOUNT_ID
    assert [f.name for f in manager.list_functions()] == ["classify-digits"]


def test_redeploy_updates_in_place(manager: AwsFunctionManager) -> None:
    manager.deploy(SPEC)
    spec = FunctionSpec(function_name="classify-digits", endpoint_name="Other-EP", timeout_s=45,
                        s3_input_prefix="s3://smc-test-bucket/lambda-inputs/")
    info = manager.deploy(spec)
    assert info.spec == spec and info.spec.reserved_concurrency is None
    lam = boto3.client("lambda", region_name=REGION)
    config = lam.get_function_configuration(FunctionName="classify-digits")
    assert config["Timeout"] == 45
    assert config["Environment"]["Variables"] == {"ENDPOINT_NAME": "Other-EP",
                                                  "S3_INPUT_PREFIX": "s3://smc-test-bucket/lambda-inputs/"}
    assert "ReservedConcurrentExecutions" not in lam.get_function_concurrency(FunctionName="classify-digits")
    statements = {s["Sid"]: s for s in info.policy["Statement"]}
    assert statements["InvokeOneEndpoint"]["Resource"].endswith(":endpoint/other-ep")
    assert statements["ReadInputImages"]["Resource"] == "arn:aws:s3:::smc-test-bucket/lambda-inputs/*"
    assert len(boto3.client("iam").list_roles(PathPrefix="/sm-console/")["Roles"]) == 1


def test_switching_the_permission_rewrites_the_inline_policy(manager: AwsFunctionManager) -> None:
    manager.deploy(SPEC)
    iam = boto3.client("iam", region_name=REGION)
    removed = manager.set_invoke_permission("classify-digits", False)
    document = iam.get_role_policy(RoleName="classify-digits-role", PolicyName=POLICY_NAME)["PolicyDocument"]
    assert [s["Sid"] for s in document["Statement"]] == ["WriteOwnLogs"] and not removed.allows_invoke
    assert manager.set_invoke_permission("classify-digits", True).allows_invoke


def test_a_new_role_that_lambda_cannot_assume_yet_is_retried(manager: AwsFunctionManager,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    client = manager.session.client("lambda")
    real, calls = client.create_function, []

    def flaky(**kwargs: Any) -> Any:
        calls.append(kwargs["FunctionName"])
        if len(calls) < 3:
            raise ClientError({"Error": {"Code": "InvalidParameterValueException",
                                         "Message": "The role defined for the function cannot be assumed by Lambda."}},
                              "CreateFunction")
        return real(**kwargs)

    monkeypatch.setattr(client, "create_function", flaky)
    assert manager.deploy(SPEC).name == "classify-digits" and len(calls) == 3


def test_invoke_reads_the_functions_answer_and_log_tail(manager: AwsFunctionManager) -> None:
    manager.deploy(SPEC)
    handler = load_function()
    answer = handler.respond(200, {"endpoint": "Digits-EP", "predictions": [{"label": "7", "probability": 0.97}]})
    denied = handler.respond(403, {"error": "AccessDenied", "message": "User: ... is not authorized"})
    backend = lambda_simple_backends[DEFAULT_ACCOUNT_ID][REGION]
    backend.lambda_simple_results_queue.extend([json.dumps(answer), json.dumps(denied)])

    result = manager.invoke("classify-digits", image_event(JPEG))
    assert result.status_code == 200 and result.top_1 == ("7", 0.97) and result.function_error is None
    refused = manager.invoke("classify-digits", image_event(JPEG, api_gateway=True))
    assert refused.status_code == 403 and refused.body["error"] == "AccessDenied"


def test_recent_log_lines_come_from_the_functions_log_group(manager: AwsFunctionManager) -> None:
    manager.deploy(SPEC)
    assert manager.recent_log_lines("classify-digits") == []
    logs = boto3.client("logs", region_name=REGION)
    logs.create_log_group(logGroupName="/aws/lambda/classify-digits")
    logs.create_log_stream(logGroupName="/aws/lambda/classify-digits", logStreamName="2026/11/29/[$LATEST]abc")
    logs.put_log_events(logGroupName="/aws/lambda/classify-digits", logStreamName="2026/11/29/[$LATEST]abc",
                        logEvents=[{"timestamp": int(time.time() * 1000) + i, "message": f"line {i}\n"} for i in range(3)])
    assert manager.recent_log_lines("classify-digits") == ["line 0", "line 1", "line 2"]


def test_delete_removes_function_and_role(manager: AwsFunctionManager) -> None:
    manager.deploy(SPEC)
    manager.delete("classify-digits")
    with pytest.raises(NotFoundError):
        manager.describe("classify-digits")
    with pytest.raises(ClientError, match="NoSuchEntity"):
        boto3.client("iam").get_role(RoleName=role_name_for("classify-digits"))
    assert manager.list_functions() == []
