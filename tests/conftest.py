"""Shared fixtures: a fresh workspace per test, and no AWS credentials leaking in."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server logs every request at INFO


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's settings, AWS credentials or instance metadata."""
    for name in ("SMC_BACKEND", "SMC_WORKSPACE", "SMC_SETTINGS", "SMC_AWS_PROFILE", "SMC_REGION",
                 "SMC_BUCKET", "SMC_ROLE_ARN", "SMC_ANALYSIS_POLL_S", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                 "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("SMC_SETTINGS", str(tmp_path / "no-settings.toml"))
