"""Backend health: the local workspace and job environment; AWS identity, bucket and
credentials problems, without ever showing a secret."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
from botocore.stub import Stubber
from moto import mock_aws

from core.aws import AwsSession
from core.backend import get_backend
from core.config import Settings
from core.health import BackendHealth
from tests.core.aws_fixtures import (  # noqa: F401  (fixtures register on import)
    BUCKET,
    FAKE_ACCESS_KEY,
    FAKE_SECRET,
    REGION,
    aws_credentials_fixture,
    aws_fixture,
    aws_settings_fixture,
    clear_aws_environment,
    no_network_fixture,
)


@pytest.fixture
def job_python(tmp_path: Path) -> Path:
    python = tmp_path / "venv-job" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)
    return python


def _text(health: BackendHealth) -> str:
    return "\n".join([health.title, *health.details])


# --- local ---------------------------------------------------------------------------------


def test_local_ready(tmp_path: Path, job_python: Path) -> None:
    (tmp_path / "ws").mkdir()
    health = get_backend(Settings(workspace=tmp_path / "ws", job_python=job_python)).health()
    assert health.ok
    assert health.title == "Local backend: ready"
    assert health.details[0] == f"Workspace {tmp_path / 'ws'}: writable"
    assert health.details[1].startswith("Free disk: ") and health.details[1].endswith(" GiB")
    assert health.details[2] == f"Job environment: {job_python}"


def test_local_workspace_to_be_created_is_fine(tmp_path: Path, job_python: Path) -> None:
    health = get_backend(Settings(workspace=tmp_path / "new" / "ws", job_python=job_python)).health()
    assert health.ok
    assert "will be created" in health.details[0]


def test_local_without_job_environment(tmp_path: Path) -> None:
    health = get_backend(Settings(workspace=tmp_path, job_python=tmp_path / "missing" / "python")).health()
    assert not health.ok
    assert health.title == "Local backend: not ready"
    assert "job environment missing: run scripts/setup" in _text(health)


def test_local_workspace_that_is_a_file(tmp_path: Path, job_python: Path) -> None:
    (tmp_path / "ws").write_text("not a folder")
    health = get_backend(Settings(workspace=tmp_path / "ws", job_python=job_python)).health()
    assert not health.ok
    assert "exists but is not a folder" in health.details[0]


# --- aws -----------------------------------------------------------------------------------


def _assert_no_secrets(health: BackendHealth) -> None:
    text = _text(health)
    environment = (os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY"))
    for secret in (FAKE_ACCESS_KEY, FAKE_SECRET, *environment):
        if secret:
            assert secret not in text


def test_aws_ready_shows_identity_region_and_bucket(aws: AwsSession, aws_settings: Settings) -> None:
    health = get_backend(aws_settings, aws_session=aws).health()
    assert health.ok, health
    assert health.title == f"AWS backend: account 123456789012 in {REGION}"
    assert health.details[:3] == [
        "Account: 123456789012",
        "Identity: arn:aws:sts::123456789012:user/moto",
        f"Region: {REGION}",
    ]
    assert f"Bucket: s3://{BUCKET}/sm-console reachable" in health.details
    assert f"Execution role: {aws_settings.role_arn}" in health.details
    _assert_no_secrets(health)


def test_aws_default_factory_builds_the_session_from_settings(aws: AwsSession, aws_settings: Settings) -> None:
    health = get_backend(aws_settings).health()  # a fresh AwsSession(aws_settings), inside moto
    assert health.ok, health
    _assert_no_secrets(health)


def test_aws_missing_bucket_and_role(aws: AwsSession, aws_settings: Settings) -> None:
    settings = replace(aws_settings, bucket="no-such-bucket-here", role_arn=None)
    health = get_backend(settings, aws_session=aws).health()
    assert not health.ok
    assert health.title.endswith("bucket unreachable")
    assert "Bucket no-such-bucket-here: does not exist; create it or change SMC_BUCKET" in health.details
    assert any(line.startswith("Execution role: not set (SMC_ROLE_ARN)") for line in health.details)


def test_aws_without_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, aws_settings: Settings) -> None:
    clear_aws_environment(monkeypatch, tmp_path)  # and no mock: boto3 must give up before any request
    health = get_backend(aws_settings).health()
    assert not health.ok
    assert health.title == "AWS backend: no usable credentials"
    assert health.details == [
        "No AWS credentials found: set a profile (SMC_AWS_PROFILE) or the AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY environment variables, or run `aws sso login` for an SSO profile"
    ]


def test_aws_unknown_profile(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, aws_settings: Settings) -> None:
    clear_aws_environment(monkeypatch, tmp_path)
    health = get_backend(replace(aws_settings, aws_profile="nobody")).health()
    assert not health.ok
    assert "AWS profile 'nobody' not found" in health.details[0]


def test_aws_expired_credentials(aws_credentials: None, aws_settings: Settings) -> None:
    with mock_aws():
        session = AwsSession(aws_settings)
        with Stubber(session.client("sts")) as stub:
            stub.add_client_error(
                "get_caller_identity", "ExpiredToken", "The security token included in the request is expired", 403
            )
            health = get_backend(aws_settings, aws_session=session).health()
            stub.assert_no_pending_responses()
    assert not health.ok
    assert health.title == "AWS backend: no usable credentials"
    assert "AWS refused the credentials (ExpiredToken)" in health.details[0]
    _assert_no_secrets(health)


def test_aws_without_a_region(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, aws_settings: Settings) -> None:
    clear_aws_environment(monkeypatch, tmp_path)
    health = get_backend(aws_settings, aws_session=AwsSession()).health()  # no region anywhere
    assert not health.ok
    assert health.title == "AWS backend: not configured"
    assert "SMC_REGION" in health.details[0]
