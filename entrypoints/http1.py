"""HTTP/1.1 on the wire for the endpoint server: request heads, bodies read or drained, answers encoded.

Only what SageMaker's hosting contract and a boto3 client need: ``Content-Length`` bodies (no
chunked encoding), keep-alive, ``Expect: 100-continue``. Routing and the answers' meaning live in
``model_server.py``.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import time
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus

IDLE_TIMEOUT_S = 5.0
"""An idle keep-alive connection is closed after this long, freeing its worker."""
DRAIN_LIMIT_BYTES = 64 * 1024 * 1024
"""Refused bodies up to this size are read and dropped; larger ones close the connection."""
MAX_HEAD_BYTES = 64 * 1024
"""Longest request line and headers accepted (431 beyond)."""
MIN_UPLOAD_BYTES_PER_S = 64 * 1024
"""A body must arrive at least this fast (after IDLE_TIMEOUT_S of grace), or the connection closes."""
SERVER_NAME = "sm-console-serve/2"


@dataclass
class Request:
    """One request's head: method, target path (no query) and lower-cased header names."""

    method: str
    path: str
    version: str
    headers: dict[str, str]

    @property
    def body_length(self) -> int | None:
        """The declared body length; None when there is none or it is not a number."""
        try:
            return int(self.headers.get("content-length", ""))
        except ValueError:
            return None

    @property
    def keep_alive(self) -> bool:
        connection = self.headers.get("connection", "").lower()
        return connection != "close" if self.version == "HTTP/1.1" else connection == "keep-alive"


def parse_head(head: bytes) -> Request:
    """The request line and headers of ``head`` (up to and including the blank line).

    Raises:
        ValueError: not an HTTP/1.x request head.
    """
    lines = head.lstrip(b"\r\n").split(b"\r\n")
    parts = lines[0].decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise ValueError(f"not an HTTP/1.x request line: {lines[0][:100]!r}")
    headers = {}
    for line in lines[1:]:
        if not line:
            continue
        name, colon, value = line.partition(b":")
        if not colon or not name.strip():
            raise ValueError(f"not a header line: {line[:100]!r}")
        headers[name.strip().decode("latin-1").lower()] = value.strip().decode("latin-1")
    return Request(parts[0], parts[1].split("?", 1)[0], parts[2], headers)


@dataclass
class Answer:
    """What the server sends back; ``batch_size`` (of the forward pass that answered) is only logged."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    batch_size: int = 0


def encode_answer(answer: Answer, latency_ms: float, *, close: bool) -> bytes:
    """The status line, headers and body of ``answer``; ``latency_ms`` goes in ``X-Inference-Latency-Ms``."""
    lines = [f"HTTP/1.1 {answer.status} {HTTPStatus(answer.status).phrase}", f"Server: {SERVER_NAME}",
             f"Date: {http_date()}", f"Content-Type: {answer.content_type}",
             f"Content-Length: {len(answer.body)}", f"X-Inference-Latency-Ms: {latency_ms:.2f}",
             f"x-amzn-RequestId: {uuid.uuid4()}"]
    lines += [f"{name}: {value}" for name, value in answer.headers.items()]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + answer.body


@functools.lru_cache(maxsize=2)
def _http_date(second: int) -> str:
    return email.utils.formatdate(second, usegmt=True)


def http_date() -> str:
    return _http_date(int(time.time()))


class RequestBody:
    """A request's body, read once, or read away unread so the connection can carry the next
    request (the client then gets the answer rather than a reset connection)."""

    def __init__(self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.request, self.reader, self.writer = request, reader, writer
        self.length = request.body_length
        self._unread = self.length is not None and self.length > 0 and not request.headers.get("transfer-encoding")

    async def read(self) -> bytes:
        """The whole body (its length was checked by the caller)."""
        if not self._unread:
            return b""
        self._unread = False
        length = self.length or 0
        if self._expects_continue():
            self.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        async with asyncio.timeout(upload_time_s(length)):
            return await self.reader.readexactly(length)

    async def discard(self) -> bool:
        """Reads an unread body away; False when the connection cannot carry another request:
        a body without a length, chunked, over DRAIN_LIMIT_BYTES, or one the client waits to
        be asked for (``Expect: 100-continue``: it is never asked, and the connection closes)."""
        if self.request.headers.get("transfer-encoding") or (self.length is None and self.request.method == "POST"):
            return False
        if not self._unread:
            return True
        self._unread = False
        if self.length is None or self.length > DRAIN_LIMIT_BYTES or self._expects_continue():
            return False
        left = self.length
        async with asyncio.timeout(upload_time_s(left)):
            while left > 0:
                chunk = await self.reader.read(min(left, 1 << 16))
                if not chunk:
                    return False
                left -= len(chunk)
        return True

    def _expects_continue(self) -> bool:
        return self.request.headers.get("expect", "").lower() == "100-continue"


def upload_time_s(length: int) -> float:
    """How long a body of ``length`` bytes may take to arrive (see MIN_UPLOAD_BYTES_PER_S)."""
    return IDLE_TIMEOUT_S + length / MIN_UPLOAD_BYTES_PER_S
