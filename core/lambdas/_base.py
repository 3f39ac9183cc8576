"""The Lambda interface shared by the local runner and AWS Lambda."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from typing import Any

from core.errors import InvalidInputError
from core.lambdas.entities import FunctionInfo, FunctionInvocation, FunctionSpec

MAX_EVENT_BYTES = 6 * 1024 * 1024
"""Lambda's synchronous invocation payload limit."""


class FunctionManager(ABC):
    """Deploys ``lambda/`` as a function bound to one endpoint, with its role, and invokes it.

    Invariants: every function runs the same zip (``core.lambdas.bundle``) with the same
    handler; its role holds exactly one inline policy, the least-privilege one of
    ``core.lambdas.policies`` (with or without the invoke statement); deploying a name that
    exists updates it (code, role policy, environment, limits); returned objects are frozen.
    """

    backend_name: str
    runs_where: str
    """One sentence on where the function runs and who checks its permissions."""
    default_s3_prefix: str | None = None
    """The S3 prefix offered for object inputs; None where this backend's storage is not S3."""
    policy_note: str | None = None
    """What to expect after a policy change, where that needs saying."""
    latency_note: str = ""
    """What the round trip includes besides the function's own time."""

    def location(self, info: FunctionInfo) -> str:
        """Where a deployed function lives, for a notice (its ARN)."""
        return info.arn

    def deploy(self, spec: FunctionSpec) -> FunctionInfo:
        """Creates or updates the function, its role and the role's policy; returns it.

        Raises:
            InvalidInputError: the endpoint or a setting cannot be used.
            BackendError: the backend refused (permissions, quotas, ...).
        """
        return self._deploy(spec)

    @abstractmethod
    def _deploy(self, spec: FunctionSpec) -> FunctionInfo:
        """Backend part of :meth:`deploy` (same Raises)."""

    @abstractmethod
    def describe(self, name: str) -> FunctionInfo:
        """The function as deployed now. Raises NotFoundError, BackendError."""

    @abstractmethod
    def list_functions(self) -> list[FunctionInfo]:
        """The functions this console deployed (they carry ``ENDPOINT_NAME``). Raises BackendError."""

    def set_invoke_permission(self, name: str, allowed: bool) -> FunctionInfo:
        """Puts the role's policy back with (or without) ``sagemaker:InvokeEndpoint``.

        Raises:
            NotFoundError: no such function.
            BackendError: the policy could not be written.
        """
        current = self.describe(name)
        spec = dataclasses.replace(current.spec, allow_invoke=allowed)
        self._put_policy(current, spec)
        return self.describe(name)

    @abstractmethod
    def _put_policy(self, current: FunctionInfo, spec: FunctionSpec) -> None:
        """Writes the role's inline policy for spec."""

    def invoke(self, name: str, event: Any) -> FunctionInvocation:
        """Runs the function once, synchronously, with ``event`` (any JSON value).

        Raises:
            NotFoundError: no such function.
            InvalidInputError: the event is not JSON-serialisable or is over 6 MB.
            BackendError: the function could not be run.
        """
        payload = encode_event(event)
        return self._invoke(self.describe(name), payload)

    @abstractmethod
    def _invoke(self, function: FunctionInfo, payload: bytes) -> FunctionInvocation:
        """Backend part of :meth:`invoke`, with the encoded event."""

    @abstractmethod
    def recent_log_lines(self, name: str, max_lines: int = 50) -> list[str]:
        """The function's latest log lines, oldest first. Raises NotFoundError, BackendError."""

    @abstractmethod
    def delete(self, name: str) -> None:
        """Removes the function and its role. Raises NotFoundError, BackendError."""


def encode_event(event: Any) -> bytes:
    """The event as Lambda receives it: JSON, at most 6 MB.

    Raises:
        InvalidInputError: not JSON-serialisable, or too large.
    """
    import json

    try:
        payload = json.dumps(event).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"the test event is not JSON: {exc}") from None
    if len(payload) > MAX_EVENT_BYTES:
        raise InvalidInputError(
            f"the test event is {len(payload):,} bytes; Lambda accepts at most {MAX_EVENT_BYTES:,} (6 MB)")
    return payload


def invocation_from_result(result: Any, *, function_error: str | None, latency_ms: float,
                           duration_ms: float | None = None, log_lines: list[str] | None = None) -> FunctionInvocation:
    """A FunctionInvocation from what the function returned (a proxy answer or anything else)."""
    import json

    status: int | None = None
    body: Any = result
    if function_error is None and isinstance(result, dict) and isinstance(result.get("statusCode"), int):
        status = int(result["statusCode"])
        body = result.get("body")
        if isinstance(body, str):
            try:
                body = json.loads(body)
            except json.JSONDecodeError:
                pass
    return FunctionInvocation(status_code=status, body=body, function_error=function_error, latency_ms=latency_ms,
                              duration_ms=duration_ms, log_lines=list(log_lines or []))
