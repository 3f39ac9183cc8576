"""download_url against a real HTTP server on 127.0.0.1, and against a closed port."""

from __future__ import annotations

import http.server
import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.datasets import download_url
from core.errors import AlreadyExistsError, InvalidInputError

Serve = Callable[..., str]
BODY = os.urandom(300_000)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("with_length", [True, False])
def test_downloads(tmp_path: Path, http_server: Serve, with_length: bool) -> None:
    url = http_server("/data.zip", BODY, with_length)
    seen: list[tuple[int, int | None]] = []
    dest = download_url(url, tmp_path / "data.zip", max_bytes=len(BODY), progress=lambda d, t: seen.append((d, t)))
    assert dest.read_bytes() == BODY
    assert seen[-1] == (len(BODY), len(BODY) if with_length else None)
    assert os.listdir(tmp_path) == ["data.zip"]


def test_refuses_announced_oversize(tmp_path: Path, http_server: Serve) -> None:
    url = http_server("/big.zip", BODY, True)
    with pytest.raises(InvalidInputError, match=r"is 0.3 MB, larger than the limit of 0.1 MB"):
        download_url(url, tmp_path / "big.zip", max_bytes=100_000)
    assert os.listdir(tmp_path) == []


def test_stops_unannounced_oversize(tmp_path: Path, http_server: Serve) -> None:
    url = http_server("/big.zip", bytes(5_000_000), False)
    seen: list[int] = []
    with pytest.raises(InvalidInputError, match=r"larger than the limit of 1.5 MB: download stopped"):
        download_url(url, tmp_path / "big.zip", max_bytes=1_500_000, progress=lambda d, t: seen.append(d))
    assert seen and max(seen) <= 1_500_000  # it received some bytes, then stopped at the limit
    assert os.listdir(tmp_path) == []


def test_http_error_status(tmp_path: Path, http_server: Serve) -> None:
    url = http_server("/exists.zip", BODY)
    with pytest.raises(InvalidInputError, match=r"download failed: 127.0.0.1 answered HTTP 404 Not Found"):
        download_url(url.replace("exists", "missing"), tmp_path / "x.zip", max_bytes=10**6)
    assert os.listdir(tmp_path) == []


def test_unreachable_host(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/data.zip"
    with pytest.raises(InvalidInputError, match=r"could not reach 127.0.0.1: is this machine offline?"):
        download_url(url, tmp_path / "x.zip", max_bytes=10**6, timeout_s=5)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("file:///etc/passwd", "not file:"),
        ("ftp://example.com/data.zip", "not ftp:"),
        ("example.com/data.zip", "not a full URL: start it with https://"),
        ("http:///data.zip", "has no host name"),
    ],
)
def test_refuses_other_urls(tmp_path: Path, url: str, shown: str) -> None:
    with pytest.raises(InvalidInputError, match=shown):
        download_url(url, tmp_path / "x.zip", max_bytes=10**6)
    assert os.listdir(tmp_path) == []


def test_refuses_existing_destination(tmp_path: Path, http_server: Serve) -> None:
    url = http_server("/data.zip", BODY)
    (tmp_path / "x.zip").write_bytes(b"mine")
    with pytest.raises(AlreadyExistsError):
        download_url(url, tmp_path / "x.zip", max_bytes=10**6)
    assert (tmp_path / "x.zip").read_bytes() == b"mine"


class _Flaky(http.server.BaseHTTPRequestHandler):
    """Serves BODY but breaks off each answer after CUT bytes; honours Range when RANGES is set."""

    ranges = True
    cut = 100_000
    requests_seen: list[str] = []

    def do_GET(self) -> None:
        asked = self.headers.get("Range", "")
        self.requests_seen.append(asked)
        start = int(asked.removeprefix("bytes=").rstrip("-")) if asked and self.ranges else 0
        self.send_response(206 if start else 200)
        if self.ranges:
            self.send_header("Accept-Ranges", "bytes")
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(BODY) - 1}/{len(BODY)}")
        self.send_header("Content-Length", str(len(BODY) - start))
        self.end_headers()
        self.wfile.write(BODY[start:start + self.cut])  # then the connection closes: the body is short

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def flaky_url(request: pytest.FixtureRequest) -> Iterator[tuple[str, type[_Flaky]]]:
    handler = type("Flaky", (_Flaky,), {"ranges": request.param, "requests_seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/dogImages.zip", handler
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.mark.parametrize("flaky_url", [True], indirect=True)
def test_a_download_that_breaks_off_is_resumed_where_ranges_are_allowed(
        tmp_path: Path, flaky_url: tuple[str, type[_Flaky]]) -> None:
    url, handler = flaky_url
    seen: list[tuple[int, int | None]] = []
    download_url(url, tmp_path / "d.zip", max_bytes=10**6, progress=lambda d, t: seen.append((d, t)))
    assert (tmp_path / "d.zip").read_bytes() == BODY
    first, *resumed = handler.requests_seen
    assert first == "" and len(resumed) >= 2  # each answer breaks off after 100 kB
    offsets = [int(r.removeprefix("bytes=").rstrip("-")) for r in resumed]
    assert offsets == sorted(offsets) and offsets[-1] < len(BODY)
    assert seen[-1] == (len(BODY), len(BODY))


@pytest.mark.parametrize("flaky_url", [False], indirect=True)
def test_a_download_that_stops_half_way_without_ranges_is_a_clear_error_and_leaves_nothing(
        tmp_path: Path, flaky_url: tuple[str, type[_Flaky]]) -> None:
    url, _ = flaky_url
    with pytest.raises(InvalidInputError, match=r"^the download from 127.0.0.1 broke off after 0.1 MB of 0.3 MB "
                                                r"and the server cannot resume it: "):
        download_url(url, tmp_path / "d.zip", max_bytes=10**6)
    assert list(tmp_path.iterdir()) == []
