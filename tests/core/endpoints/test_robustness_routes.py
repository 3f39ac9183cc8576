"""Requests the local endpoint server has no answer for: unknown routes and a body without a
Content-Length. Each gets a JSON error naming what to send instead, and the server keeps serving."""

from __future__ import annotations

import http.client
import json
from pathlib import Path

from core.config import DEFAULT_JOB_PYTHON
from core.endpoints import EndpointStatus, LocalEndpointManager
from core.jobstore import JobStore


def request(port: int, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def test_unknown_routes_and_a_chunked_body_are_refused_clearly(tmp_path: Path, model_tar: Path) -> None:
    manager = LocalEndpointManager(JobStore(tmp_path / "console.db"), tmp_path, DEFAULT_JOB_PYTHON)
    manager.deploy("routes", model_tar.as_uri())
    try:
        endpoint = manager.wait("routes", timeout_s=120, poll_s=0.1)
        assert endpoint.status is EndpointStatus.IN_SERVICE, endpoint.failure_reason
        port = endpoint.port or 0
        status, body = request(port, "GET", "/health")
        assert (status, json.loads(body)["Message"]) == (404, "no route GET /health: use GET /ping")
        status, body = request(port, "POST", "/predict", b"{}", {"Content-Type": "application/json"})
        assert status == 404
        assert json.loads(body)["Message"] == "no route POST /predict: use /invocations or /endpoints/NAME/invocations"
        chunks = iter([b"abc"])  # an iterable body goes out chunked, with no Content-Length
        status, body = request(port, "POST", "/invocations", chunks,  # type: ignore[arg-type]
                               {"Content-Type": "image/jpeg", "Transfer-Encoding": "chunked"})
        assert status == 411 and "Content-Length" in json.loads(body)["Message"]
        assert request(port, "GET", "/ping")[0] == 200  # still serving
    finally:
        manager.delete("routes")
