"""The function's IAM documents, compared as exact JSON."""

from __future__ import annotations

import pytest

from core.errors import InvalidInputError
from core.lambdas.policies import (
    PolicyScope,
    endpoint_arn,
    execution_policy,
    explain,
    s3_prefix_arn,
    trust_policy,
)

SCOPE = PolicyScope(function_name="classify-digits", endpoint_name="Digits-EP", region="eu-west-1",
                    account="123456789012")


def test_trust_policy_lets_only_lambda_assume_the_role() -> None:
    assert trust_policy() == {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                       "Action": "sts:AssumeRole"}],
    }


def test_least_privilege_policy_exact_json() -> None:
    assert execution_policy(SCOPE) == {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "InvokeOneEndpoint", "Effect": "Allow", "Action": "sagemaker:InvokeEndpoint",
             "Resource": "arn:aws:sagemaker:eu-west-1:123456789012:endpoint/digits-ep"},
            {"Sid": "WriteOwnLogs", "Effect": "Allow",
             "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
             "Resource": ["arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/classify-digits",
                          "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/classify-digits:*"]},
        ],
    }


def test_s3_inputs_add_get_object_on_one_prefix_only() -> None:
    scope = PolicyScope(function_name="classify-digits", endpoint_name="Digits-EP", region="eu-west-1",
                        account="123456789012", s3_input_prefix="s3://my-ml-bucket/lambda-inputs/")
    assert execution_policy(scope)["Statement"][2] == {
        "Sid": "ReadInputImages", "Effect": "Allow", "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::my-ml-bucket/lambda-inputs/*",
    }


def test_without_the_permission_the_invoke_statement_is_gone() -> None:
    scope = PolicyScope(function_name="classify-digits", endpoint_name="Digits-EP", region="eu-west-1",
                        account="123456789012", allow_invoke=False)
    assert [s["Sid"] for s in execution_policy(scope)["Statement"]] == ["WriteOwnLogs"]
    assert explain(execution_policy(scope))[0][0] == "(no invoke)"


def test_every_statement_is_explained() -> None:
    scope = PolicyScope(function_name="f", endpoint_name="e", region="us-east-1", account="123456789012",
                        s3_input_prefix="s3://bucket-a/in")
    sids = [sid for sid, _ in explain(execution_policy(scope))]
    assert sids == ["InvokeOneEndpoint", "WriteOwnLogs", "ReadInputImages"]
    assert all(text for _, text in explain(execution_policy(scope)))


def test_arns_per_partition_and_lower_case_names() -> None:
    assert endpoint_arn("cn-north-1", "123456789012", "ABC") == "arn:aws-cn:sagemaker:cn-north-1:123456789012:endpoint/abc"
    assert endpoint_arn("us-gov-west-1", "123456789012", "x").startswith("arn:aws-us-gov:sagemaker:")
    assert s3_prefix_arn("s3://bucket-a/in/images", "us-east-1") == "arn:aws:s3:::bucket-a/in/images/*"


@pytest.mark.parametrize(("changes", "fragment"), [
    ({"function_name": "has space"}, "function name"),
    ({"function_name": "x" * 65}, "function name"),
    ({"endpoint_name": ""}, "endpoint name"),
    ({"account": "12345"}, "12 digits"),
    ({"s3_input_prefix": "s3://bucket/*"}, "no wildcards"),
    ({"s3_input_prefix": "https://bucket/x"}, "s3://bucket/prefix/"),
    ({"s3_input_prefix": "s3://bucket-a"}, "a prefix inside the bucket"),
    ({"s3_input_prefix": "s3://bucket-a/"}, "a prefix inside the bucket"),
    ({"s3_input_prefix": "s3://bucket-a/in/../out"}, "a prefix inside the bucket"),
])
def test_bad_scopes_are_refused(changes: dict[str, object], fragment: str) -> None:
    values = {"function_name": "f", "endpoint_name": "e", "region": "us-east-1", "account": "123456789012", **changes}
    with pytest.raises(InvalidInputError, match=fragment):
        PolicyScope(**values)  # type: ignore[arg-type]
