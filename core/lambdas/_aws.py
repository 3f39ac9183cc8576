"""Lambda functions on AWS: the role and its inline policy (IAM), the function (Lambda),
its logs (CloudWatch Logs), all through boto3 clients of one :class:`AwsSession`.

Deploy is create-or-update: the role is created with the Lambda trust policy (or its trust
policy is put back), its one inline policy is put, then the function is created or its code and
configuration are updated, and its reserved concurrency is put (or removed). A role that was
just created takes a few seconds before Lambda can assume it; ``CreateFunction`` is retried
while Lambda says so. A deploy that fails removes what it created (a new role and its policy, a
new function), never what was there before.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from core.aws import aws_errors, roll_back, with_leftovers
from core.errors import BackendError, InvalidInputError, NotFoundError
from core.lambdas._base import FunctionManager, invocation_from_result
from core.lambdas.bundle import LAMBDA_DIR, build_package
from core.lambdas.entities import HANDLER, RUNTIME, FunctionInfo, FunctionInvocation, FunctionSpec
from core.lambdas.policies import INVOKE_SID, PolicyScope, execution_policy, log_group_name, trust_policy

if TYPE_CHECKING:
    from pathlib import Path

    from core.aws import AwsSession

POLICY_NAME = "least-privilege"
ROLE_PATH = "/sm-console/"
ASSUME_RETRIES = 10
"""CreateFunction attempts while a new role is not yet assumable (IAM is eventually consistent)."""
SETTLE_TIMEOUT_S = 120.0


def role_name_for(function_name: str) -> str:
    """The execution role's name: the function's with ``-role`` (64 characters at most)."""
    return f"{function_name[:59]}-role"


class AwsFunctionManager(FunctionManager):
    """Deploys and invokes the function on AWS Lambda.

    Args:
        session: the AWS session (its region is the function's).
        source_dir: the function's source folder (``lambda/``).
        sleep: how to wait between polls and retries (tests pass a no-op).
        default_s3_prefix: the S3 prefix the page offers for object inputs.
    """

    backend_name = "aws"
    policy_note = "IAM is eventually consistent: a changed policy can take a few seconds to apply."

    def __init__(self, session: AwsSession, *, source_dir: Path = LAMBDA_DIR,
                 sleep: Callable[[float], None] = time.sleep, default_s3_prefix: str | None = None) -> None:
        self.session = session
        self.default_s3_prefix = default_s3_prefix
        self.source_dir = source_dir
        self.sleep = sleep
        self._account: str | None = None

    @property
    def runs_where(self) -> str:  # type: ignore[override]
        return f"It is deployed to AWS Lambda in {self.session.region}."

    @property
    def account(self) -> str:
        if self._account is None:
            with aws_errors("looking up the AWS account (sts:GetCallerIdentity)"):
                self._account = str(self.session.client("sts").get_caller_identity()["Account"])
        return self._account

    def _scope(self, spec: FunctionSpec) -> PolicyScope:
        return PolicyScope(function_name=spec.function_name, endpoint_name=spec.endpoint_name,
                           region=self.session.region, account=self.account, s3_input_prefix=spec.s3_input_prefix,
                           allow_invoke=spec.allow_invoke)

    # --- deploy ----------------------------------------------------------------------

    def _deploy(self, spec: FunctionSpec) -> FunctionInfo:
        scope = self._scope(spec)
        package = build_package(self.source_dir)
        created: list[tuple[str, Callable[[], object]]] = []  # what this deploy made, undone if it fails
        try:
            self._deploy_function(spec, scope, package.data, created)
        except BaseException as exc:
            error = with_leftovers(exc, roll_back(created))
            if error is exc:
                raise
            raise error from exc
        return self.describe(spec.function_name)

    def _deploy_function(self, spec: FunctionSpec, scope: PolicyScope, zip_data: bytes,
                         created: list[tuple[str, Callable[[], object]]]) -> None:
        """Role, policy, function and concurrency; appends to created how to undo what it creates."""
        name = spec.function_name
        role_arn = self.put_role(name, execution_policy(scope), created)
        settings: dict[str, Any] = {
            "Role": role_arn, "Handler": HANDLER, "Runtime": RUNTIME, "Timeout": spec.timeout_s,
            "MemorySize": spec.memory_mb, "Environment": {"Variables": spec.environment},
            "Description": f"Classifies images with SageMaker endpoint {spec.endpoint_name} (sm-console)",
        }
        self.put_function(name, zip_data, settings, created)
        client = self.session.client("lambda")
        with aws_errors(f"setting the reserved concurrency of {name}"):
            if spec.reserved_concurrency is None:
                client.delete_function_concurrency(FunctionName=name)
            else:
                client.put_function_concurrency(FunctionName=name,
                                                ReservedConcurrentExecutions=spec.reserved_concurrency)

    def put_role(self, function_name: str, policy: dict[str, Any],
                 created: list[tuple[str, Callable[[], object]]]) -> str:
        """The function's execution role with ``policy`` as its one inline policy; its ARN. A role
        created here (and its policy) is appended to ``created``, to be undone if the deploy fails.
        Also used by the Debugger's rule actions (``core.rule_actions._aws``)."""
        iam, role_name = self.session.client("iam"), role_name_for(function_name)
        role_arn, role_created = self._ensure_role(function_name)
        if role_created:
            created.append((f"IAM role {role_name}", lambda: iam.delete_role(RoleName=role_name)))
        self._put_inline_policy(role_name, policy)
        if role_created:
            created.append((f"the inline policy of IAM role {role_name}",
                            lambda: iam.delete_role_policy(RoleName=role_name, PolicyName=POLICY_NAME)))
        return role_arn

    def put_function(self, name: str, zip_data: bytes, settings: dict[str, Any],
                     created: list[tuple[str, Callable[[], object]]]) -> None:
        """Creates the function (appended to ``created``) or updates its code and configuration, then
        waits until it is Active with no update in progress."""
        client = self.session.client("lambda")
        if self._exists(name):
            with aws_errors(f"updating the code of Lambda function {name}"):
                client.update_function_code(FunctionName=name, ZipFile=zip_data)
            self._wait_settled(name)
            with aws_errors(f"updating the configuration of Lambda function {name}"):
                client.update_function_configuration(FunctionName=name, **settings)
        else:
            self._create_function(name, zip_data, settings)
            created.append((f"Lambda function {name}", lambda: client.delete_function(FunctionName=name)))
        self._wait_settled(name)

    def _ensure_role(self, function_name: str) -> tuple[str, bool]:
        """The function's role ARN, and whether it was created now (else its trust policy is put back)."""
        iam, role_name = self.session.client("iam"), role_name_for(function_name)
        trust = json.dumps(trust_policy())
        try:
            with aws_errors(f"reading IAM role {role_name}"):
                role = iam.get_role(RoleName=role_name)["Role"]
        except NotFoundError:
            with aws_errors(f"creating IAM role {role_name}"):
                created = iam.create_role(
                    RoleName=role_name, Path=ROLE_PATH, AssumeRolePolicyDocument=trust,
                    Description=f"Execution role of Lambda function {function_name} (sm-console)",
                    Tags=[{"Key": "managed-by", "Value": "sm-console"}])
            return str(created["Role"]["Arn"]), True
        with aws_errors(f"updating the trust policy of IAM role {role_name}"):
            iam.update_assume_role_policy(RoleName=role_name, PolicyDocument=trust)
        return str(role["Arn"]), False

    def _put_policy(self, current: FunctionInfo | None, spec: FunctionSpec) -> None:
        self._put_inline_policy(role_name_for(spec.function_name), execution_policy(self._scope(spec)))

    def _put_inline_policy(self, role_name: str, policy: dict[str, Any]) -> None:
        with aws_errors(f"putting the inline policy of IAM role {role_name}"):
            self.session.client("iam").put_role_policy(RoleName=role_name, PolicyName=POLICY_NAME,
                                                       PolicyDocument=json.dumps(policy))

    def _create_function(self, name: str, zip_data: bytes, settings: dict[str, Any]) -> None:
        client = self.session.client("lambda")
        for attempt in range(ASSUME_RETRIES):
            try:
                client.create_function(FunctionName=name, Code={"ZipFile": zip_data}, PackageType="Zip",
                                       Tags={"managed-by": "sm-console"}, **settings)
                return
            except Exception as exc:
                code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
                if code == "InvalidParameterValueException" and "assume" in str(exc) and attempt < ASSUME_RETRIES - 1:
                    self.sleep(2.0 + attempt)  # the new role is not visible to Lambda yet
                    continue
                with aws_errors(f"creating Lambda function {name}"):
                    raise

    def _exists(self, name: str) -> bool:
        try:
            with aws_errors(f"Lambda function {name}"):
                self.session.client("lambda").get_function(FunctionName=name)
        except NotFoundError:
            return False
        return True

    def _wait_settled(self, name: str) -> None:
        """Waits until the function is Active and no update is in progress."""
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while True:
            with aws_errors(f"reading Lambda function {name}"):
                config = self.session.client("lambda").get_function_configuration(FunctionName=name)
            state, update = config.get("State", "Active"), config.get("LastUpdateStatus", "Successful")
            if state == "Failed" or update == "Failed":
                reason = config.get("StateReason") or config.get("LastUpdateStatusReason") or "no reason given"
                raise BackendError(f"Lambda function {name} failed to deploy: {reason}")
            if state == "Active" and update != "InProgress":
                return
            if time.monotonic() > deadline:
                raise BackendError(f"Lambda function {name} is still {state}/{update} after {SETTLE_TIMEOUT_S:.0f} s")
            self.sleep(1.0)

    # --- describe --------------------------------------------------------------------

    def describe(self, name: str) -> FunctionInfo:
        client, iam = self.session.client("lambda"), self.session.client("iam")
        with aws_errors(f"Lambda function {name}"):
            config = client.get_function(FunctionName=name)["Configuration"]
        with aws_errors(f"reserved concurrency of {name}"):
            reserved = client.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions")
        role_name = config["Role"].rsplit("/", 1)[-1]
        try:
            with aws_errors(f"the inline policy of IAM role {role_name}"):
                document = iam.get_role_policy(RoleName=role_name, PolicyName=POLICY_NAME)["PolicyDocument"]
            with aws_errors(f"IAM role {role_name}"):
                trust = iam.get_role(RoleName=role_name)["Role"]["AssumeRolePolicyDocument"]
        except NotFoundError:
            document, trust = {"Version": "2012-10-17", "Statement": []}, {}
        policy = _document(document)
        variables = (config.get("Environment") or {}).get("Variables") or {}
        spec = FunctionSpec(
            function_name=config["FunctionName"], endpoint_name=variables.get("ENDPOINT_NAME", ""),
            s3_input_prefix=variables.get("S3_INPUT_PREFIX"), reserved_concurrency=reserved,
            timeout_s=int(config.get("Timeout", 3)), memory_mb=int(config.get("MemorySize", 128)),
            allow_invoke=any(s.get("Sid") == INVOKE_SID for s in policy.get("Statement", [])),
        ) if variables.get("ENDPOINT_NAME") else None
        if spec is None:
            raise NotFoundError(f"Lambda function {name} was not deployed by this console (no ENDPOINT_NAME)")
        return FunctionInfo(
            spec=spec, backend=self.backend_name, arn=config["FunctionArn"], role_arn=config["Role"], policy=policy,
            trust_policy=_document(trust), code_sha256=config.get("CodeSha256", ""),
            code_size=int(config.get("CodeSize", 0)), last_modified=_timestamp(config.get("LastModified")),
            region=self.session.region, account=self.account,
        )

    def list_functions(self) -> list[FunctionInfo]:
        names = []
        with aws_errors("listing Lambda functions"):
            for page in self.session.client("lambda").get_paginator("list_functions").paginate():
                names += [f["FunctionName"] for f in page["Functions"]
                          if "ENDPOINT_NAME" in ((f.get("Environment") or {}).get("Variables") or {})]
        functions = []
        for name in names:
            try:
                functions.append(self.describe(name))
            except NotFoundError:  # deleted meanwhile
                pass
        return sorted(functions, key=lambda f: f.last_modified, reverse=True)

    # --- invoke and logs -------------------------------------------------------------

    def _invoke(self, function: FunctionInfo, payload: bytes) -> FunctionInvocation:
        started = time.perf_counter()
        try:
            with aws_errors(f"invoking Lambda function {function.name}"):
                response = self.session.client("lambda").invoke(
                    FunctionName=function.name, InvocationType="RequestResponse", LogType="Tail", Payload=payload)
        except BackendError as exc:
            if "TooManyRequestsException" in str(exc) or "throttling" in str(exc):
                return FunctionInvocation(status_code=None, body={"errorType": "TooManyRequestsException",
                                                                  "errorMessage": str(exc)},
                                          function_error=None, latency_ms=(time.perf_counter() - started) * 1000,
                                          throttled=True)
            raise
        raw = response["Payload"].read()
        latency_ms = (time.perf_counter() - started) * 1000
        try:
            result: Any = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            result = raw.decode("utf-8", errors="replace")
        log_lines = _tail_lines(response.get("LogResult"))
        return invocation_from_result(result, function_error=response.get("FunctionError"), latency_ms=latency_ms,
                                      duration_ms=_reported_duration(log_lines), log_lines=log_lines)

    def recent_log_lines(self, name: str, max_lines: int = 50) -> list[str]:
        logs, group = self.session.client("logs"), log_group_name(name)
        try:
            with aws_errors(f"log group {group}"):
                streams = logs.describe_log_streams(logGroupName=group, orderBy="LastEventTime", descending=True,
                                                    limit=1)["logStreams"]
        except NotFoundError:
            return []
        if not streams:
            return []
        with aws_errors(f"log stream {streams[0]['logStreamName']}"):
            events = logs.get_log_events(logGroupName=group, logStreamName=streams[0]["logStreamName"],
                                         limit=max_lines, startFromHead=False)["events"]
        return [str(e["message"]).rstrip("\n") for e in events]

    def delete(self, name: str) -> None:
        iam, role_name = self.session.client("iam"), role_name_for(name)
        with aws_errors(f"deleting Lambda function {name}"):
            self.session.client("lambda").delete_function(FunctionName=name)
        for call, what in ((lambda: iam.delete_role_policy(RoleName=role_name, PolicyName=POLICY_NAME), "policy"),
                           (lambda: iam.delete_role(RoleName=role_name), "role")):
            try:
                with aws_errors(f"deleting the {what} of IAM role {role_name}"):
                    call()
            except NotFoundError:
                pass


def _document(value: Any) -> dict[str, Any]:
    """IAM returns policy documents URL-encoded JSON strings (boto3 decodes them to dicts)."""
    if isinstance(value, dict):
        return value
    from urllib.parse import unquote

    try:
        return dict(json.loads(unquote(str(value))))
    except ValueError:
        raise InvalidInputError(f"a policy document is not JSON: {str(value)[:200]}") from None


def _timestamp(text: str | None) -> float:
    """Lambda's ``LastModified`` (``2026-11-29T17:00:00.000+0000``; moto writes nanoseconds and ``Z``)
    as epoch seconds; 0.0 when missing or unreadable."""
    from datetime import datetime

    try:
        return datetime.fromisoformat(text).timestamp() if text else 0.0
    except ValueError:
        return 0.0


def _tail_lines(log_result: str | None) -> list[str]:
    """Lambda's ``LogResult``: the last 4 KB of the invocation's log, base64."""
    if not log_result:
        return []
    text = base64.b64decode(log_result).decode("utf-8", errors="replace")
    return [line for line in text.splitlines() if line.strip()]


def _reported_duration(lines: list[str]) -> float | None:
    for line in reversed(lines):
        if line.startswith("REPORT ") and "Duration: " in line:
            try:
                return float(line.split("Duration: ", 1)[1].split(" ms", 1)[0])
            except ValueError:
                return None
    return None
