"""The IAM evaluator (entrypoints/iam_eval.py, loaded by core.lambdas.iam): explicit deny wins,
an allow is needed, wildcards, case-insensitive actions, exact case-sensitive ARNs."""

from __future__ import annotations

from typing import Any

import pytest

from core.lambdas.iam import Decision, evaluate, validate_policy
from core.lambdas.policies import PolicyScope, execution_policy

ARN = "arn:aws:sagemaker:us-east-1:123456789012:endpoint/digits-ep"
INVOKE = "sagemaker:InvokeEndpoint"


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action: Any = INVOKE, resource: Any = ARN, **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: Any = INVOKE, resource: Any = ARN, **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def decision(*policies: dict[str, Any], action: str = INVOKE, resource: str = ARN) -> Decision:
    return evaluate(list(policies), action, resource).decision


def test_allow_on_the_exact_arn() -> None:
    outcome = evaluate([policy(allow(Sid="Invoke"))], INVOKE, ARN)
    assert outcome.decision is Decision.ALLOWED and outcome.statement_id == "Invoke" and outcome.is_allowed


def test_nothing_allows_is_an_implicit_deny() -> None:
    assert decision(policy(allow(action="sagemaker:DescribeEndpoint"))) is Decision.IMPLICIT_DENY
    assert decision() is Decision.IMPLICIT_DENY
    assert evaluate([], INVOKE, ARN).denial_reason(INVOKE) == (
        "because no identity-based policy allows the sagemaker:InvokeEndpoint action")


def test_an_explicit_deny_wins_in_any_order_and_any_policy() -> None:
    assert decision(policy(allow(), deny(Sid="NoInvoke"))) is Decision.EXPLICIT_DENY
    assert decision(policy(deny()), policy(allow(action="*", resource="*"))) is Decision.EXPLICIT_DENY
    outcome = evaluate([policy(allow(action="sagemaker:*", resource="*")), policy(deny(Sid="Stop"))], INVOKE, ARN)
    assert outcome.statement_id == "Stop"
    assert outcome.denial_reason(INVOKE) == "with an explicit deny in an identity-based policy"


@pytest.mark.parametrize(("action", "resource"), [
    ("*", "*"),
    ("sagemaker:*", ARN),
    ("sagemaker:Invoke*", ARN),
    ("sagemaker:InvokeEndpoin?", ARN),
    (INVOKE, "arn:aws:sagemaker:us-east-1:123456789012:endpoint/*"),
    (INVOKE, "arn:aws:sagemaker:*:123456789012:endpoint/digits-ep"),
    (INVOKE, "arn:aws:sagemaker:us-east-1:*:endpoint/digits-*"),
    (INVOKE, "arn:aws:sagemaker:*"),
    ([INVOKE, "s3:GetObject"], ["arn:aws:s3:::bucket/*", ARN]),
])
def test_wildcards_allow(action: Any, resource: Any) -> None:
    assert decision(policy(allow(action=action, resource=resource))) is Decision.ALLOWED


@pytest.mark.parametrize(("action", "resource"), [
    ("sagemaker:Describe*", ARN),
    ("s3:*", ARN),
    ("sagemaker:InvokeEndpoint?", ARN),  # ? is exactly one character
    (INVOKE, "arn:aws:sagemaker:us-east-1:123456789012:endpoint/digits-ep-2"),
    (INVOKE, "arn:aws:sagemaker:us-east-1:123456789012:endpoint/digits-e?-*x"),
])
def test_wildcards_do_not_overreach(action: str, resource: str) -> None:
    assert decision(policy(allow(action=action, resource=resource))) is Decision.IMPLICIT_DENY


@pytest.mark.parametrize("resource", [
    "arn:aws:sagemaker:eu-west-1:123456789012:endpoint/digits-ep",  # wrong region
    "arn:aws:sagemaker:us-east-1:210987654321:endpoint/digits-ep",  # wrong account
    "arn:aws:sagemaker:us-east-1:123456789012:endpoint/other-ep",  # wrong endpoint
    "arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/digits-ep",  # wrong resource type
    "arn:aws-cn:sagemaker:us-east-1:123456789012:endpoint/digits-ep",  # wrong partition
])
def test_any_other_arn_is_denied(resource: str) -> None:
    assert decision(policy(allow()), resource=resource) is Decision.IMPLICIT_DENY


def test_actions_match_case_insensitively() -> None:
    for action in ("SageMaker:invokeendpoint", "SAGEMAKER:INVOKEENDPOINT", "sagemaker:invokeEndpoint"):
        assert decision(policy(allow()), action=action) is Decision.ALLOWED
        assert decision(policy(allow(action="SAGEMAKER:invoke*")), action=action) is Decision.ALLOWED


def test_arns_match_case_sensitively_so_endpoint_names_must_be_lower_case() -> None:
    """SageMaker's ARN for endpoint Digits-EP is .../endpoint/digits-ep: a policy naming
    Digits-EP grants nothing; the console's policy lower-cases the name."""
    typed = "arn:aws:sagemaker:us-east-1:123456789012:endpoint/Digits-EP"
    assert decision(policy(allow(resource=typed))) is Decision.IMPLICIT_DENY
    console = execution_policy(PolicyScope("fn", "Digits-EP", "us-east-1", "123456789012"))
    assert decision(console) is Decision.ALLOWED


def test_not_action_and_not_resource() -> None:
    assert decision(policy({"Effect": "Allow", "NotAction": "s3:*", "Resource": ARN})) is Decision.ALLOWED
    assert decision(policy({"Effect": "Allow", "NotAction": "sagemaker:*", "Resource": "*"})) is Decision.IMPLICIT_DENY
    assert decision(policy(allow(action="*", resource="*"),
                           {"Effect": "Deny", "Action": "*", "NotResource": ARN})) is Decision.ALLOWED
    assert decision(policy(allow(action="*", resource="*"),
                           {"Effect": "Deny", "Action": "*", "NotResource": "arn:aws:s3:::*"})) is Decision.EXPLICIT_DENY


def test_conditions_are_applied_the_safe_way_round() -> None:
    condition = {"Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}
    assert decision(policy(allow(**condition))) is Decision.IMPLICIT_DENY
    assert decision(policy(allow(), deny(**condition))) is Decision.EXPLICIT_DENY


def test_a_single_statement_object_is_accepted() -> None:
    assert decision({"Version": "2012-10-17", "Statement": allow()}) is Decision.ALLOWED


@pytest.mark.parametrize(("document", "fragment"), [
    ({"Statement": [allow()]}, "Version"),
    (policy(), "at least one statement"),
    (policy({"Effect": "allow", "Action": INVOKE, "Resource": ARN}), "Effect must be Allow or Deny"),
    (policy({"Effect": "Allow", "Resource": ARN}), "exactly one of Action and NotAction"),
    (policy({"Effect": "Allow", "Action": INVOKE, "NotAction": "s3:*", "Resource": ARN}), "exactly one of Action"),
    (policy({"Effect": "Allow", "Action": INVOKE}), "exactly one of Resource and NotResource"),
    (policy(allow(action="InvokeEndpoint")), "is not an action"),
    (policy(allow(action=[])), "non-empty list"),
    (policy(allow(resource="digits-ep")), "is not an ARN"),
    (policy(allow(Principal={"Service": "lambda.amazonaws.com"})), "has no Principal"),
    (policy("not a statement"), "a statement is a JSON object"),
])
def test_malformed_policies_are_refused(document: Any, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        validate_policy(document)
    with pytest.raises(ValueError, match=fragment):
        evaluate([document], INVOKE, ARN)
