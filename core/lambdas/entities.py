"""Frozen records of Lambda functions and their invocations, the same for both backends."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.errors import InvalidInputError
from core.lambdas.policies import FUNCTION_NAME_RE, INVOKE_SID

HANDLER = "lambda_function.lambda_handler"
RUNTIME = "python3.12"


@dataclass(frozen=True)
class FunctionSpec:
    """What to deploy: a function bound to one endpoint, with its limits.

    Attributes:
        function_name: Lambda's rules (1 to 64 letters, digits, hyphens, underscores).
        endpoint_name: the SageMaker endpoint it calls (its ``ENDPOINT_NAME``).
        s3_input_prefix: ``s3://bucket/prefix/`` to accept ``s3_uri`` inputs there; None: off.
        reserved_concurrency: at most this many invocations at once (0 throttles every call);
            None: the account's unreserved pool.
        timeout_s: Lambda's timeout (1 to 900 s).
        memory_mb: Lambda's memory size (128 to 10,240 MB).
        allow_invoke: False deploys the policy without ``sagemaker:InvokeEndpoint``.
    """

    function_name: str
    endpoint_name: str
    s3_input_prefix: str | None = None
    reserved_concurrency: int | None = None
    timeout_s: int = 30
    memory_mb: int = 256
    allow_invoke: bool = True

    def __post_init__(self) -> None:
        if not FUNCTION_NAME_RE.match(self.function_name or ""):
            raise InvalidInputError(
                f"function name {self.function_name!r}: use 1 to 64 letters, digits, hyphens and underscores")
        if not self.endpoint_name:
            raise InvalidInputError("endpoint: pick the endpoint the function calls")
        if self.reserved_concurrency is not None and not 0 <= self.reserved_concurrency <= 1000:
            raise InvalidInputError(f"reserved concurrency: 0 to 1000, not {self.reserved_concurrency}")
        if not 1 <= self.timeout_s <= 900:
            raise InvalidInputError(f"timeout: 1 to 900 seconds, not {self.timeout_s}")
        if not 128 <= self.memory_mb <= 10240:
            raise InvalidInputError(f"memory: 128 to 10,240 MB, not {self.memory_mb}")

    @property
    def environment(self) -> dict[str, str]:
        """The function's environment variables."""
        variables = {"ENDPOINT_NAME": self.endpoint_name}
        if self.s3_input_prefix:
            variables["S3_INPUT_PREFIX"] = self.s3_input_prefix
        return variables


@dataclass(frozen=True)
class FunctionInfo:
    """A deployed function as both backends describe it.

    Attributes:
        spec: what it was deployed with (``allow_invoke`` read back from its policy).
        backend: ``local`` or ``aws``.
        arn: the function's ARN.
        role_arn: its execution role.
        policy: the role's least-privilege inline policy, as attached now.
        trust_policy: who may assume the role.
        code_sha256: base64 SHA-256 of the deployed zip (Lambda's CodeSha256).
        code_size: bytes of the zip.
        last_modified: epoch seconds of the last deploy.
        region, account: where it lives.
    """

    spec: FunctionSpec
    backend: str
    arn: str
    role_arn: str
    policy: Mapping[str, Any]
    trust_policy: Mapping[str, Any]
    code_sha256: str
    code_size: int
    last_modified: float
    region: str
    account: str

    @property
    def name(self) -> str:
        return self.spec.function_name

    @property
    def allows_invoke(self) -> bool:
        """Whether the attached policy holds the invoke statement."""
        return any(s.get("Sid") == INVOKE_SID for s in self.policy.get("Statement", []))


@dataclass(frozen=True)
class FunctionInvocation:
    """One synchronous invocation.

    Attributes:
        status_code: the ``statusCode`` the function answered (None if it crashed).
        body: its decoded JSON ``body`` (or the raw payload when it is not a proxy answer).
        function_error: Lambda's ``FunctionError`` (``Unhandled``) when the handler raised or
            timed out; None otherwise.
        latency_ms: round trip seen by the console (a local run includes starting Python).
        duration_ms: time in the handler, as Lambda's REPORT line says, when known.
        log_lines: the invocation's log (Lambda's tail of it on AWS).
        throttled: the call was refused by the reserved-concurrency limit.
    """

    status_code: int | None
    body: Any
    function_error: str | None
    latency_ms: float
    duration_ms: float | None = None
    log_lines: list[str] = field(default_factory=list)
    throttled: bool = False

    @property
    def top_1(self) -> tuple[str, float] | None:
        """The most probable label and its probability, on a 200 answer."""
        if self.status_code != 200 or not isinstance(self.body, Mapping):
            return None
        predictions = self.body.get("predictions") or []
        if not predictions:
            return None
        return str(predictions[0]["label"]), float(predictions[0]["probability"])
