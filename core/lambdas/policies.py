"""The Lambda function's IAM documents: its role's trust policy and a least-privilege policy.

The execution policy grants exactly what ``lambda/lambda_function.py`` does, on exactly the
resources it touches:

- ``sagemaker:InvokeEndpoint`` on the one endpoint's ARN. SageMaker lower-cases endpoint
  names inside ARNs (``My-Endpoint`` is ``endpoint/my-endpoint``), so the policy does too:
  a policy with the name as typed would deny every call to an endpoint with capitals.
- ``logs:CreateLogGroup``, ``logs:CreateLogStream`` and ``logs:PutLogEvents`` on the
  function's own log group ``/aws/lambda/<function>`` and its streams, nothing else.
- ``s3:GetObject`` on one prefix, only when S3 inputs are enabled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from core.errors import InvalidInputError

POLICY_VERSION = "2012-10-17"
INVOKE_SID = "InvokeOneEndpoint"
LOGS_SID = "WriteOwnLogs"
S3_SID = "ReadInputImages"
LOG_ACTIONS = ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents")
FUNCTION_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""Lambda's FunctionName (unqualified) rules."""
_ACCOUNT_RE = re.compile(r"^\d{12}$")
_S3_PREFIX_RE = re.compile(r"^s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/([^*?]*[^*?/][^*?]*)$")


def partition(region: str) -> str:
    """The ARN partition of a region (``aws``, ``aws-cn``, ``aws-us-gov``)."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def endpoint_arn(region: str, account: str, endpoint_name: str) -> str:
    """The endpoint's ARN as SageMaker writes it: the name lower-cased."""
    return f"arn:{partition(region)}:sagemaker:{region}:{account}:endpoint/{endpoint_name.lower()}"


def log_group_name(function_name: str) -> str:
    """The log group Lambda writes a function's logs to."""
    return f"/aws/lambda/{function_name}"


def log_group_arns(region: str, account: str, function_name: str) -> list[str]:
    """The function's log group (CreateLogGroup) and its streams (CreateLogStream, PutLogEvents)."""
    group = f"arn:{partition(region)}:logs:{region}:{account}:log-group:{log_group_name(function_name)}"
    return [group, f"{group}:*"]


def s3_prefix_arn(s3_prefix: str, region: str) -> str:
    """``s3://bucket/some/prefix/`` as the ARN of every object under it.

    Raises:
        InvalidInputError: not an ``s3://bucket/prefix`` URI: a whole bucket is not one
            prefix, and wildcards are refused.
    """
    match = _S3_PREFIX_RE.match(s3_prefix)
    if not match or ".." in match.group(2).split("/"):
        raise InvalidInputError(
            f"S3 input prefix {s3_prefix!r}: give s3://bucket/prefix/ (a prefix inside the bucket, no wildcards)")
    return f"arn:{partition(region)}:s3:::{match.group(1)}/{match.group(2).strip('/')}/*"


def trust_policy() -> dict[str, Any]:
    """Who may assume the execution role: the Lambda service, nobody else."""
    return {
        "Version": POLICY_VERSION,
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }],
    }


@dataclass(frozen=True)
class PolicyScope:
    """What the function may touch: one endpoint, its own logs, optionally one S3 prefix.

    Attributes:
        function_name: the Lambda function (its log group is named after it).
        endpoint_name: the SageMaker endpoint it invokes.
        region, account: where both live.
        s3_input_prefix: ``s3://bucket/prefix/`` when S3 inputs are enabled, else None.
        allow_invoke: False leaves the invoke statement out (to show a denied call).
    """

    function_name: str
    endpoint_name: str
    region: str
    account: str
    s3_input_prefix: str | None = None
    allow_invoke: bool = True

    def __post_init__(self) -> None:
        if not FUNCTION_NAME_RE.match(self.function_name):
            raise InvalidInputError(
                f"function name {self.function_name!r}: use 1 to 64 letters, digits, hyphens and underscores")
        if not self.endpoint_name:
            raise InvalidInputError("endpoint name: pick the endpoint the function calls")
        if not _ACCOUNT_RE.match(self.account):
            raise InvalidInputError(f"account {self.account!r}: an AWS account id has 12 digits")
        if self.s3_input_prefix is not None:
            s3_prefix_arn(self.s3_input_prefix, self.region)


def execution_policy(scope: PolicyScope) -> dict[str, Any]:
    """The least-privilege inline policy of the function's role (see the module docstring)."""
    statements: list[dict[str, Any]] = []
    if scope.allow_invoke:
        statements.append({
            "Sid": INVOKE_SID, "Effect": "Allow", "Action": "sagemaker:InvokeEndpoint",
            "Resource": endpoint_arn(scope.region, scope.account, scope.endpoint_name),
        })
    statements.append({
        "Sid": LOGS_SID, "Effect": "Allow", "Action": list(LOG_ACTIONS),
        "Resource": log_group_arns(scope.region, scope.account, scope.function_name),
    })
    if scope.s3_input_prefix is not None:
        statements.append({
            "Sid": S3_SID, "Effect": "Allow", "Action": "s3:GetObject",
            "Resource": s3_prefix_arn(scope.s3_input_prefix, scope.region),
        })
    return {"Version": POLICY_VERSION, "Statement": statements}


def explain(policy: dict[str, Any]) -> list[tuple[str, str]]:
    """One plain sentence per statement of an execution policy, keyed by its Sid."""
    reasons = {
        INVOKE_SID: "Calls `InvokeEndpoint` on this one endpoint and no other. The ARN holds the name in lower "
                    "case because SageMaker writes endpoint ARNs that way; no other SageMaker action is granted "
                    "(no describe, no create, no delete).",
        LOGS_SID: "Lets the function write its own logs: create its log group `/aws/lambda/<function>` if needed, "
                  "then streams in it and log events. Other functions' log groups stay out of reach.",
        S3_SID: "Reads (`GetObject` only) images under the one S3 prefix enabled for inputs: no listing, no "
                "writing, no other prefix or bucket.",
    }
    explained = []
    for statement in policy.get("Statement", []):
        sid = str(statement.get("Sid", ""))
        explained.append((sid, reasons.get(sid, "A statement this console did not write.")))
    if not any(s.get("Sid") == INVOKE_SID for s in policy.get("Statement", [])):
        explained.insert(0, ("(no invoke)", "`sagemaker:InvokeEndpoint` is not granted: every call to the endpoint "
                                            "is denied (an implicit deny: nothing allows it)."))
    return explained
