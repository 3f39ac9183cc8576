"""Is the configured backend usable? A short report for the app's sidebar.

The checks never raise: whatever goes wrong becomes a line of the report. Nothing in a
report is secret: the AWS account id and caller ARN are shown, access keys never are.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core.aws import AwsSession, aws_errors
from core.config import Settings
from core.errors import ConfigError, ConsoleError, CredentialsError, NotFoundError

SessionFactory = Callable[[Settings], AwsSession]
"""Builds the AWS session to check (tests inject one bound to moto)."""


@dataclass(frozen=True)
class BackendHealth:
    """The outcome of a backend check.

    Attributes:
        ok: the backend can do its work.
        title: one line for the sidebar.
        details: what was checked, one finding per line.
        pages_need_it: no page can show anything useful while it is not ok (every page lists
            remote resources), so the app says once what is wrong instead of showing the pages.
    """

    ok: bool
    title: str
    details: list[str] = field(default_factory=list)
    pages_need_it: bool = False


def _existing_ancestor(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _workspace_writable(workspace: Path) -> tuple[bool, str]:
    if workspace.is_dir():
        try:
            with tempfile.TemporaryFile(dir=workspace):
                pass
        except OSError as exc:
            return False, f"Workspace {workspace}: not writable ({exc.strerror or exc})"
        return True, f"Workspace {workspace}: writable"
    if workspace.exists():
        return False, f"Workspace {workspace}: exists but is not a folder"
    parent = _existing_ancestor(workspace)
    if os.access(parent, os.W_OK | os.X_OK):
        return True, f"Workspace {workspace}: will be created"
    return False, f"Workspace {workspace}: cannot be created ({parent} is not writable)"


def check_local(settings: Settings) -> BackendHealth:
    """Workspace writable, free disk space, job environment present."""
    writable, workspace_line = _workspace_writable(settings.workspace)
    free_gib = shutil.disk_usage(_existing_ancestor(settings.workspace)).free / 2**30
    job_python = settings.job_python
    has_python = job_python.is_file() and os.access(job_python, os.X_OK)
    details = [
        workspace_line,
        f"Free disk: {free_gib:.1f} GiB",
        f"Job environment: {job_python}"
        if has_python
        else f"job environment missing: run scripts/setup (expected {job_python})",
    ]
    ok = writable and has_python
    return BackendHealth(ok, "Local backend: ready" if ok else "Local backend: not ready", details)


def check_aws(settings: Settings, session_factory: SessionFactory = AwsSession) -> BackendHealth:
    """Caller identity (STS), region, bucket reachable (HeadBucket), execution role set."""
    try:
        session = session_factory(settings)
        region = session.region
        with aws_errors("checking the AWS identity"):
            identity = session.client("sts").get_caller_identity()
    except CredentialsError as exc:
        return BackendHealth(False, "AWS backend: no usable credentials", [str(exc)], pages_need_it=True)
    except ConfigError as exc:
        return BackendHealth(False, "AWS backend: not configured", [str(exc)], pages_need_it=True)
    except ConsoleError as exc:
        return BackendHealth(False, "AWS backend: not reachable", [str(exc)], pages_need_it=True)
    details = [
        f"Account: {identity['Account']}",
        f"Identity: {identity['Arn']}",
        f"Region: {region}",
    ]
    bucket_ok = False
    try:
        with aws_errors(f"S3 bucket {settings.bucket}"):
            session.client("s3").head_bucket(Bucket=settings.bucket)
        bucket_ok = True
        details.append(f"Bucket: s3://{settings.bucket}/{settings.prefix} reachable")
    except NotFoundError:
        details.append(f"Bucket {settings.bucket}: does not exist; create it or change SMC_BUCKET")
    except ConsoleError as exc:
        details.append(f"Bucket {settings.bucket}: {exc}")
    if settings.role_arn:
        details.append(f"Execution role: {settings.role_arn}")
    else:
        details.append("Execution role: not set (SMC_ROLE_ARN); training jobs and endpoints need one")
    title = f"AWS backend: account {identity['Account']} in {region}"
    return BackendHealth(bucket_ok, title if bucket_ok else f"{title}, bucket unreachable", details, pages_need_it=True)
