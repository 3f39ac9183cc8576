"""The local servers' stand-in for AWS's request authorisation.

On AWS, SageMaker Runtime checks a caller's IAM permissions before the model container sees
the request. Locally, ``serve.py --iam-dir DIR`` does the same on its Runtime path for requests
signed with a *local role's* credentials, which the console writes into ``DIR``, and so does
the loopback SageMaker and SNS the local rule actions call (``core.rule_actions._control``):

- ``DIR/credentials/<access key id>.json``: ``{"role": ROLE_NAME, "session": NAME}``, one per
  running session (the local Lambda runner writes it for an invocation and removes it after);
- ``DIR/roles/<role name>.json``: ``{"Arn": ..., "RolePolicies": {NAME: POLICY_DOCUMENT}}``.

The access key id is read from the SigV4 ``Authorization`` header's credential scope, with the
region; the signature itself is not verified (the server listens on 127.0.0.1 only, and the
secret never leaves the caller). The policy files are read on every request, so a changed
policy applies at once. Requests that are unsigned, or signed with any key that is not a local
role's (the Deploy page, the boto3 example with ``aws_access_key_id="local"``), are served
as before. Standard library only; see ``iam_eval`` for the evaluation itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__:  # imported by the console as entrypoints.local_iam (core.rule_actions._control)
    from .iam_eval import evaluate
else:  # beside serve.py, as shipped
    from iam_eval import evaluate  # type: ignore[no-redef]

LOCAL_KEY_PREFIX = "ASIALOCAL"
"""Access key ids of local role sessions start with this (AWS's temporary keys start ASIA)."""
INVOKE_ACTION = "sagemaker:InvokeEndpoint"
_INVALID_TOKEN = "The security token included in the request is invalid."
_CREDENTIAL = re.compile(r"Credential=([A-Z0-9]{16,128})/\d{8}/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request")


@dataclass(frozen=True)
class Refusal:
    """What SageMaker Runtime answers instead of invoking: HTTP status, error code, message."""

    status: int
    code: str
    message: str


def endpoint_arn(region: str, account: str, name: str) -> str:
    """The endpoint's ARN as SageMaker builds it: the name lower-cased."""
    return f"arn:aws:sagemaker:{region}:{account}:endpoint/{name.lower()}"


def authorize_invoke(iam_dir: Path, account: str, authorization: str | None, endpoint: str) -> Refusal | None:
    """None if the request may invoke ``endpoint``, else the refusal AWS would send.

    Args:
        iam_dir: the folder the console keeps local roles and sessions in.
        account: the endpoint's account id.
        authorization: the request's ``Authorization`` header (None when unsigned).
        endpoint: the endpoint name in the request path.
    """
    return authorize(iam_dir, account, authorization, INVOKE_ACTION, lambda region: endpoint_arn(region, account, endpoint))


def authorize(iam_dir: Path, account: str, authorization: str | None, action: str,
              resource_of: Callable[[str], str], *, denied: tuple[int, str] = (400, "AccessDeniedException"),
              roles_only: bool = False) -> Refusal | None:
    """None if the request may perform ``action`` on the resource, else the refusal AWS would send.

    Args:
        resource_of: the resource's ARN in the request's region (read from its credential scope).
        denied: the HTTP status and error code the service answers a denied call with.
        roles_only: refuse requests not signed by a local role's session (else they are served).
    """
    match = _CREDENTIAL.search(authorization or "")
    if match is None or not match.group(1).startswith(LOCAL_KEY_PREFIX):
        return Refusal(403, "UnrecognizedClientException", _INVALID_TOKEN) if roles_only else None
    access_key_id, region = match.group(1), match.group(2)
    session = _read_json(iam_dir / "credentials" / f"{access_key_id}.json")
    if session is None or not isinstance(session.get("role"), str) or "/" in session["role"]:
        return Refusal(403, "UnrecognizedClientException", _INVALID_TOKEN)
    role = _read_json(iam_dir / "roles" / f"{session['role']}.json") or {}
    policies = list((role.get("RolePolicies") or {}).values())
    principal = (f"arn:aws:sts::{account}:assumed-role/{session['role']}/{session.get('session', 'local')}")
    resource = resource_of(region)
    status, code = denied
    try:
        outcome = evaluate(policies, action, resource)
    except ValueError as exc:  # a broken policy grants nothing
        return Refusal(status, code, f"User: {principal} is not authorized to perform: {action} on resource: "
                       f"{resource} (the role's policy is invalid: {exc})")
    if outcome.is_allowed:
        return None
    return Refusal(status, code, f"User: {principal} is not authorized to perform: {action} "
                   f"on resource: {resource} {outcome.denial_reason(action)}")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None
