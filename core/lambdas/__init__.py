"""The Lambda function that calls an endpoint: its policies, package, and where it runs.

``get_function_manager(backend)`` gives the local runner (a process per invocation against
the local endpoint servers, with local IAM) or AWS Lambda, behind one interface.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.lambdas._base import FunctionManager, encode_event
from core.lambdas.entities import FunctionInfo, FunctionInvocation, FunctionSpec
from core.lambdas.policies import PolicyScope, endpoint_arn, execution_policy, explain, trust_policy
from core.types import BackendKind

if TYPE_CHECKING:
    from core.backend import Backend

DEFAULT_LOCAL_REGION = "us-east-1"


def get_function_manager(backend: Backend) -> FunctionManager:
    """The function manager of the backend's kind (boto3 loads only for aws).

    Raises:
        ConfigError: the aws settings are incomplete.
    """
    if backend.kind is BackendKind.AWS:
        from core.aws import AwsSession
        from core.lambdas._aws import AwsFunctionManager

        return AwsFunctionManager(AwsSession(backend.settings))
    from core.lambdas._local import LocalFunctionManager

    return LocalFunctionManager(backend.settings.workspace, backend.settings.job_python, backend.endpoints,
                                region=backend.settings.region or DEFAULT_LOCAL_REGION)


__all__ = [
    "FunctionInfo", "FunctionInvocation", "FunctionManager", "FunctionSpec", "PolicyScope", "encode_event",
    "endpoint_arn", "execution_policy", "explain", "get_function_manager", "trust_policy",
]
