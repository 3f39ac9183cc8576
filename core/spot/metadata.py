"""A local instance metadata service (IMDSv2 subset) for the spot simulator, on 127.0.0.1.

It answers what the EC2 script reads on a real instance:

- ``PUT /latest/api/token`` with ``X-aws-ec2-metadata-token-ttl-seconds`` (1-21600) returns a
  session token; every ``GET`` needs it in ``X-aws-ec2-metadata-token`` (401 otherwise, and
  once it has expired), as IMDSv2 requires;
- ``GET /latest/meta-data/spot/instance-action``: 404 until :meth:`serve_notice`, then
  ``{"action": ..., "time": ...}`` (the reclaim time, ISO-8601 UTC);
- ``GET /latest/meta-data/instance-id``, ``instance-type``, ``placement/availability-zone``.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN_HEADER = "X-aws-ec2-metadata-token"
TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
MAX_TTL_S = 21600
_HOST = "127.0.0.1"


def iso_utc(timestamp: float) -> str:
    """``2026-11-29T18:02:00Z``, the format of EC2's notice time."""
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class LocalMetadataServer:
    """Serves one simulated instance's metadata; start it, point the script at :attr:`url`.

    Thread-safe: the simulator changes the instance and serves notices while the server's
    threads answer requests.
    """

    def __init__(self, *, instance_id: str = "i-local-0", instance_type: str = "local",
                 zone: str = "local-1a") -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}
        self._notice: dict[str, str] | None = None
        self.instance = {"instance-id": instance_id, "instance-type": instance_type,
                         "placement/availability-zone": zone}
        self.requests = 0
        self._server = ThreadingHTTPServer((_HOST, 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{_HOST}:{self._server.server_port}"

    def start(self) -> LocalMetadataServer:
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-imds", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> LocalMetadataServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def new_instance(self, instance_id: str) -> None:
        """A fresh instance: new id, no notice, old tokens invalid."""
        with self._lock:
            self.instance["instance-id"] = instance_id
            self._notice = None
            self._tokens.clear()

    def serve_notice(self, *, action: str = "terminate", at: float) -> dict[str, str]:
        """From now on ``spot/instance-action`` announces ``action`` at time ``at``."""
        with self._lock:
            self._notice = {"action": action, "time": iso_utc(at)}
            return dict(self._notice)

    @property
    def notice(self) -> dict[str, str] | None:
        with self._lock:
            return dict(self._notice) if self._notice else None

    # --- request handling ------------------------------------------------------------------

    def _issue_token(self, ttl_header: str | None) -> tuple[int, str]:
        try:
            ttl = int(ttl_header or "")
        except ValueError:
            return 400, "missing or invalid X-aws-ec2-metadata-token-ttl-seconds"
        if not 1 <= ttl <= MAX_TTL_S:
            return 400, f"token TTL must be 1-{MAX_TTL_S} seconds"
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = time.monotonic() + ttl
        return 200, token

    def _answer(self, path: str, token: str | None) -> tuple[int, str, str]:
        with self._lock:
            self.requests += 1
            expires = self._tokens.get(token or "")
            if expires is None or expires < time.monotonic():
                return 401, "text/plain", "Unauthorized"
            if path == "/latest/meta-data/spot/instance-action":
                if self._notice is None:
                    return 404, "text/plain", "Not Found"
                return 200, "application/json", json.dumps(self._notice)
            key = path.removeprefix("/latest/meta-data/")
            if key in self.instance:
                return 200, "text/plain", self.instance[key]
        return 404, "text/plain", "Not Found"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                if self.path != "/latest/api/token":
                    self._send(404, "text/plain", "Not Found")
                    return
                status, body = server._issue_token(self.headers.get(TTL_HEADER))
                self._send(status, "text/plain", body)

            def do_GET(self) -> None:
                self._send(*server._answer(self.path, self.headers.get(TOKEN_HEADER)))

            def _send(self, status: int, content_type: str, body: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # quiet: the simulator logs events
                return

        return Handler
