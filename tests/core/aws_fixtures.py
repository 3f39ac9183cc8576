"""Fixtures for the aws backend's tests: fake credentials, moto, and no network at all.

A test module imports the ``*_fixture`` functions it uses; each registers under the name
without the suffix (``aws``, ``aws_credentials``, ``aws_settings``), so test arguments do
not shadow the imports. ``no_network`` is autouse wherever ``no_network_fixture`` is imported.
"""

from __future__ import annotations

import os
import socket
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from core.aws import AwsSession
from core.config import Settings
from core.types import BackendKind

REGION = "us-east-1"
BUCKET = "smc-test-bucket"
PREFIX = "sm-console"
ROLE_ARN = "arn:aws:iam::123456789012:role/smc-training"
FAKE_ACCESS_KEY = "AKIAFAKEKEYFORTESTS12"
FAKE_SECRET = "fake-secret-for-tests-only"
_LOCAL_HOSTS = {"127.0.0.1", "::1", "localhost"}


def clear_aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No AWS_* variable, empty AWS config files, no instance metadata lookups."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    (tmp_path / "aws-config").write_text("")
    (tmp_path / "aws-credentials").write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(autouse=True, name="no_network")
def no_network_fixture(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails the test if anything tries to resolve or connect to a non-local host."""
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def connect(sock: socket.socket, address: Any) -> Any:
        if sock.family != socket.AF_UNIX and address[0] not in _LOCAL_HOSTS:
            raise AssertionError(f"a test tried to reach the network: {address}")
        return real_connect(sock, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in _LOCAL_HOSTS and host is not None:
            raise AssertionError(f"a test tried to resolve {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture(name="aws_credentials")
def aws_credentials_fixture(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake static credentials and the test region, nothing from the developer's machine."""
    clear_aws_environment(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


@pytest.fixture(name="aws_settings")
def aws_settings_fixture(tmp_path: Path) -> Settings:
    """Settings of the aws backend for the test bucket and role."""
    return Settings(
        backend=BackendKind.AWS,
        workspace=tmp_path / "ws",
        region=REGION,
        bucket=BUCKET,
        prefix=PREFIX,
        role_arn=ROLE_ARN,
    )


@pytest.fixture(name="aws")
def aws_fixture(aws_credentials: None, aws_settings: Settings) -> Iterator[AwsSession]:
    """An AwsSession inside moto, with the test bucket created."""
    with mock_aws():
        session = AwsSession(aws_settings)
        session.client("s3").create_bucket(Bucket=BUCKET)
        yield session


@contextmanager
def moto_server() -> Iterator[str]:
    """moto's server on a free 127.0.0.1 port, with empty state, stopped at the end; yields its URL.

    moto keeps its state per process: what an earlier test made (jobs, endpoints, rules) would be
    there, so the server is reset first.
    """
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=30).close()
        yield url
    finally:
        server.stop()

