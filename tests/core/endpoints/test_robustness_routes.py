"""Requests the local endpoint server has no answer for, and HTTP it must get right on its own
(it is not ``http.server``): unknown routes and methods, a body without a Content-Length,
malformed or oversized request heads, keep-alive, HTTP/1.0 and ``Expect: 100-continue``. Each
gets a clear answer, and the server keeps serving."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.config import DEFAULT_JOB_PYTHON
from core.endpoints import EndpointStatus, LocalEndpointManager
from core.jobstore import JobStore
from tests.core.endpoints.conftest import image_bytes


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory, model_tar: Path) -> Iterator[int]:
    workspace = tmp_path_factory.mktemp("routes")
    manager = LocalEndpointManager(JobStore(workspace / "console.db"), workspace, DEFAULT_JOB_PYTHON)
    manager.deploy("routes", model_tar.as_uri())
    try:
        endpoint = manager.wait("routes", timeout_s=120, poll_s=0.1)
        assert endpoint.status is EndpointStatus.IN_SERVICE, endpoint.failure_reason
        yield endpoint.port or 0
    finally:
        manager.delete("routes")


def request(port: int, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def raw_exchange(port: int, data: bytes, *, then: bytes = b"") -> bytes:
    """Sends ``data`` (then ``then`` once the server answered something), and reads until the
    server closes the connection or goes quiet for 2 s."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(data)
        received = b""
        sock.settimeout(2)
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            received += chunk
            if then:
                sock.sendall(then)
                then = b""
    return received


def test_unknown_routes_and_a_chunked_body_are_refused_clearly(port: int) -> None:
    status, body = request(port, "GET", "/health")
    assert (status, json.loads(body)["Message"]) == (404, "no route GET /health: use GET /ping")
    status, body = request(port, "POST", "/predict", b"{}", {"Content-Type": "application/json"})
    assert status == 404
    assert json.loads(body)["Message"] == "no route POST /predict: use /invocations or /endpoints/NAME/invocations"
    status, body = request(port, "PUT", "/invocations", b"{}")
    assert (status, json.loads(body)["Message"]) == (405, "PUT is not served: use GET /ping or POST /invocations")
    chunks = iter([b"abc"])  # an iterable body goes out chunked, with no Content-Length
    status, body = request(port, "POST", "/invocations", chunks,  # type: ignore[arg-type]
                           {"Content-Type": "image/jpeg", "Transfer-Encoding": "chunked"})
    assert status == 411 and "Content-Length" in json.loads(body)["Message"]
    assert request(port, "GET", "/ping")[0] == 200  # still serving


def test_malformed_and_oversized_heads_get_an_answer_and_a_closed_connection(port: int) -> None:
    answer = raw_exchange(port, b"HELLO THERE\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n") and b"Connection: close" in answer
    assert b"not an HTTP/1.x request line" in answer
    answer = raw_exchange(port, b"GET /ping HTTP/1.1\r\nX-Padding: " + b"a" * 70_000 + b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert b"over 65,536 bytes" in answer
    assert request(port, "GET", "/ping")[0] == 200


def test_keep_alive_http_1_0_and_expect_continue(port: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        for _ in range(3):  # one connection, three requests
            connection.request("POST", "/invocations", image_bytes(), {"Content-Type": "image/jpeg"})
            response = connection.getresponse()
            assert response.status == 200 and json.loads(response.read())["predictions"]
    finally:
        connection.close()
    answer = raw_exchange(port, b"GET /ping HTTP/1.0\r\n\r\n")  # HTTP/1.0: answered, then closed
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and b"Connection: close" in answer
    body = image_bytes()
    head = (f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: {len(body)}\r\n"
            "Expect: 100-continue\r\nConnection: close\r\n\r\n").encode()
    answer = raw_exchange(port, head, then=body)  # the body goes only after the interim answer
    assert answer.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")
    assert b'"predictions"' in answer
    refused = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n"
    answer = raw_exchange(port, refused)  # never asked for its body: answered, then closed
    assert answer.startswith(b"HTTP/1.1 404 Not Found\r\n") and b"Connection: close" in answer
    assert b"100 Continue" not in answer
