"""The Lambda function that calls an endpoint: its policies, package, and where it runs.

The backend (``core.backend``) holds the local runner (a process per invocation against the
local endpoint servers, with local IAM) or AWS Lambda, behind one interface.
"""

from __future__ import annotations

from core.lambdas._base import FunctionManager, encode_event
from core.lambdas.entities import FunctionInfo, FunctionInvocation, FunctionSpec
from core.lambdas.policies import PolicyScope, endpoint_arn, execution_policy, explain, trust_policy

__all__ = [
    "FunctionInfo", "FunctionInvocation", "FunctionManager", "FunctionSpec", "PolicyScope", "encode_event",
    "endpoint_arn", "execution_policy", "explain", "trust_policy",
]
