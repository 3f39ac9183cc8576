"""A small evaluator of IAM identity-based policies, for the local stand-in of AWS.

No maintained library evaluates IAM policies offline (moto has no policy simulator), so the
local endpoint server uses this one to decide whether a caller may
``sagemaker:InvokeEndpoint``, and the console uses the same module (loaded by path, see
``core.lambdas.iam``) to test and explain the policies it writes. Standard library only:
``entrypoints/`` imports nothing from ``core``.

What it follows from AWS's evaluation logic for one account and identity-based policies:

- an explicit ``Deny`` that matches wins over everything;
- otherwise an ``Allow`` that matches is needed; nothing matching is an implicit deny;
- actions match case-insensitively (``SageMaker:invokeendpoint``), with ``*`` and ``?``
  wildcards, and ``NotAction`` inverts the match;
- resources match case-sensitively on the whole ARN (``*`` and ``?``; ``*`` alone is any
  resource), and ``NotResource`` inverts the match; SageMaker lower-cases endpoint names in
  its ARNs, so the caller passes the ARN as AWS builds it.

What it does not evaluate: resource-based policies, permission boundaries, SCPs, session
policies and ``Condition`` blocks. A statement with a ``Condition`` is applied the safe way
round: an ``Allow`` with a condition does not grant, a ``Deny`` with one still denies.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from typing import Any

VERSIONS = ("2012-10-17", "2008-10-17")
_ACTION_RE = re.compile(r"^(\*|[A-Za-z0-9*?-]+:[A-Za-z0-9*?]+)$")


class Decision(str, Enum):
    """The outcome of an evaluation, as IAM's policy simulator names it."""

    ALLOWED = "allowed"
    EXPLICIT_DENY = "explicitDeny"
    IMPLICIT_DENY = "implicitDeny"


@dataclass(frozen=True)
class Evaluation:
    """The decision and the statement that made it (None for an implicit deny)."""

    decision: Decision
    statement_id: str | None = None

    @property
    def is_allowed(self) -> bool:
        return self.decision is Decision.ALLOWED

    def denial_reason(self, action: str) -> str:
        """How AWS ends its AccessDenied message for this outcome."""
        if self.decision is Decision.EXPLICIT_DENY:
            return "with an explicit deny in an identity-based policy"
        return f"because no identity-based policy allows the {action} action"


def validate_policy(document: Mapping[str, Any]) -> None:
    """Checks the grammar IAM checks when a policy is put.

    Raises:
        ValueError: the message names the statement and what is wrong with it.
    """
    if not isinstance(document, Mapping):
        raise ValueError("a policy is a JSON object")
    if document.get("Version") not in VERSIONS:
        raise ValueError(f"Version must be one of {', '.join(VERSIONS)}")
    statements = _statements(document)
    if not statements:
        raise ValueError("Statement: a policy needs at least one statement")
    for index, statement in enumerate(statements):
        where = f"Statement {statement.get('Sid', index)!s}" if isinstance(statement, Mapping) else f"Statement {index}"
        if not isinstance(statement, Mapping):
            raise ValueError(f"{where}: a statement is a JSON object")
        if statement.get("Effect") not in ("Allow", "Deny"):
            raise ValueError(f"{where}: Effect must be Allow or Deny")
        if ("Action" in statement) == ("NotAction" in statement):
            raise ValueError(f"{where}: give exactly one of Action and NotAction")
        if ("Resource" in statement) == ("NotResource" in statement):
            raise ValueError(f"{where}: give exactly one of Resource and NotResource")
        if "Principal" in statement or "NotPrincipal" in statement:
            raise ValueError(f"{where}: an identity-based policy has no Principal")
        for key in ("Action", "NotAction"):
            for action in _strings(statement[key], f"{where}: {key}") if key in statement else ():
                if not _ACTION_RE.match(action):
                    raise ValueError(f"{where}: {action!r} is not an action (service:Action)")
        for key in ("Resource", "NotResource"):
            for resource in _strings(statement[key], f"{where}: {key}") if key in statement else ():
                if resource != "*" and not resource.startswith("arn:"):
                    raise ValueError(f"{where}: {resource!r} is not an ARN or *")


def evaluate(policies: Iterable[Mapping[str, Any]], action: str, resource: str) -> Evaluation:
    """Whether the identity holding ``policies`` may perform ``action`` on ``resource``.

    Args:
        policies: the identity's policy documents (each validated first).
        action: ``service:Action`` as the request names it.
        resource: the resource's ARN as AWS builds it.

    Raises:
        ValueError: a policy is not valid (see :func:`validate_policy`).
    """
    allowed_by: str | None = None
    allowed = False
    for document in policies:
        validate_policy(document)
        for index, statement in enumerate(_statements(document)):
            if not _applies(statement, action, resource):
                continue
            sid = str(statement.get("Sid", f"#{index}"))
            if statement["Effect"] == "Deny":
                return Evaluation(Decision.EXPLICIT_DENY, sid)
            if "Condition" not in statement and not allowed:
                allowed, allowed_by = True, sid
    return Evaluation(Decision.ALLOWED, allowed_by) if allowed else Evaluation(Decision.IMPLICIT_DENY)


def _statements(document: Mapping[str, Any]) -> list[Any]:
    statements = document.get("Statement", [])
    return [statements] if isinstance(statements, Mapping) else list(statements)


def _strings(value: Any, where: str) -> Sequence[str]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise ValueError(f"{where}: a string or a non-empty list of strings")
    return values


def _applies(statement: Mapping[str, Any], action: str, resource: str) -> bool:
    if "Action" in statement:
        action_matches = _any_match(statement["Action"], action, ignore_case=True)
    else:
        action_matches = not _any_match(statement["NotAction"], action, ignore_case=True)
    if "Resource" in statement:
        resource_matches = _any_match(statement["Resource"], resource, ignore_case=False)
    else:
        resource_matches = not _any_match(statement["NotResource"], resource, ignore_case=False)
    return action_matches and resource_matches


def _any_match(patterns: str | Sequence[str], value: str, *, ignore_case: bool) -> bool:
    values = [patterns] if isinstance(patterns, str) else patterns
    return any(_pattern(p, ignore_case).fullmatch(value) for p in values)


@lru_cache(maxsize=512)
def _pattern(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    """IAM's wildcards: ``*`` any run of characters (``:`` and ``/`` included), ``?`` one."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)
