"""Local IAM: roles with inline policies, and short-lived sessions that act as a role.

The files are the contract with the local endpoint servers (``entrypoints/local_iam.py``
reads them on every Runtime request): ``<iam>/roles/<role>.json`` and
``<iam>/credentials/<access key id>.json``. Every write is atomic (a temp file renamed), so
a server never reads half a policy. Secrets are generated per session, handed to the one
process that uses them, and never written anywhere.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import BackendError, InvalidInputError, NotFoundError
from core.lambdas.iam import validate_policy

LOCAL_KEY_PREFIX = "ASIALOCAL"
"""Must match ``entrypoints/local_iam.py``: keys the local servers authorise."""
ROLE_NAME_RE = re.compile(r"^[\w+=,.@-]{1,64}$")


@dataclass(frozen=True)
class SessionCredentials:
    """Temporary credentials of a role session (the secret is never stored or logged)."""

    access_key_id: str
    secret_access_key: str
    session_token: str

    def __repr__(self) -> str:
        return f"SessionCredentials(access_key_id={self.access_key_id!r}, secret=<hidden>)"


class LocalIam:
    """Roles and sessions of the local account, kept as JSON files under ``iam_dir``."""

    def __init__(self, iam_dir: Path, account: str) -> None:
        self.iam_dir = Path(iam_dir)
        self.account = account

    def role_arn(self, role_name: str) -> str:
        return f"arn:aws:iam::{self.account}:role/{role_name}"

    def put_role(self, role_name: str, trust_policy: Mapping[str, Any], policy_name: str,
                 policy: Mapping[str, Any]) -> str:
        """Creates or replaces the role with exactly one inline policy; returns its ARN.

        Raises:
            InvalidInputError: a bad role name or a malformed policy (IAM's
                MalformedPolicyDocument).
        """
        self._check_name(role_name)
        try:
            validate_policy(policy)
        except ValueError as exc:
            raise InvalidInputError(f"policy {policy_name}: {exc}") from None
        document = {"RoleName": role_name, "Arn": self.role_arn(role_name),
                    "AssumeRolePolicyDocument": dict(trust_policy), "RolePolicies": {policy_name: dict(policy)}}
        self._write(self.iam_dir / "roles" / f"{role_name}.json", document)
        return self.role_arn(role_name)

    def get_role(self, role_name: str) -> dict[str, Any]:
        """The role's document. Raises NotFoundError."""
        self._check_name(role_name)
        path = self.iam_dir / "roles" / f"{role_name}.json"
        try:
            return dict(json.loads(path.read_text()))
        except FileNotFoundError:
            raise NotFoundError(f"role {role_name!r} not found") from None
        except (OSError, ValueError) as exc:
            raise BackendError(f"cannot read role {role_name!r} ({path}): {exc}") from None

    def delete_role(self, role_name: str) -> None:
        self._check_name(role_name)
        (self.iam_dir / "roles" / f"{role_name}.json").unlink(missing_ok=True)

    @contextmanager
    def session(self, role_name: str, session_name: str) -> Iterator[SessionCredentials]:
        """Credentials that act as the role while the block runs; invalid afterwards."""
        self.get_role(role_name)
        credentials = SessionCredentials(
            access_key_id=LOCAL_KEY_PREFIX + secrets.token_hex(6).upper(),
            secret_access_key=secrets.token_urlsafe(30),
            session_token=secrets.token_urlsafe(48),
        )
        path = self.iam_dir / "credentials" / f"{credentials.access_key_id}.json"
        self._write(path, {"role": role_name, "session": session_name})
        try:
            yield credentials
        finally:
            path.unlink(missing_ok=True)

    @staticmethod
    def _check_name(role_name: str) -> None:
        if not ROLE_NAME_RE.match(role_name):
            raise InvalidInputError(f"role name {role_name!r}: 1 to 64 letters, digits and +=,.@_-")

    @staticmethod
    def _write(path: Path, document: Mapping[str, Any]) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
            with os.fdopen(fd, "w") as out:
                json.dump(document, out, indent=2)
            os.replace(tmp, path)
        except OSError as exc:
            raise BackendError(f"cannot write {path}: {exc}") from None
