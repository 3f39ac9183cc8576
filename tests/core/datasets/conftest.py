"""Fixtures for the datasets tests: tiny image trees, zips of them, the demo, an HTTP server."""

from __future__ import annotations

import http.server
import io
import threading
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from PIL import Image

from core.datasets import write_demo_folder

Layout = Mapping[str, Mapping[str, int]]
GOOD_LAYOUT: Layout = {
    "train": {"cat": 3, "dog": 3},
    "valid": {"cat": 1, "dog": 1},
    "test": {"cat": 1, "dog": 1},
}


def png_bytes(size: tuple[int, int] = (16, 12), color: int = 0) -> bytes:
    """A small valid PNG."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (color % 256, 80, 160)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def make_imagefolder() -> Callable[..., Path]:
    """Returns build(root, layout=GOOD_LAYOUT): writes root/<split>/<class>/<n>.png."""

    def build(root: Path, layout: Layout = GOOD_LAYOUT) -> Path:
        for split, per_class in layout.items():
            for cls, count in per_class.items():
                folder = root / split / cls
                folder.mkdir(parents=True, exist_ok=True)
                for index in range(count):
                    (folder / f"{index}.png").write_bytes(png_bytes(color=index))
        return root

    return build


@pytest.fixture
def zip_folder() -> Callable[..., Path]:
    """Returns pack(folder, zip_path, prefix=""): zips every file below folder under prefix."""

    def pack(folder: Path, zip_path: Path, prefix: str = "") -> Path:
        with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    archive.write(path, prefix + path.relative_to(folder).as_posix())
        return zip_path

    return pack


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo dataset at its default size, rendered once per test session."""
    return write_demo_folder(tmp_path_factory.mktemp("demo") / "digits")


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, bytes, bool]] = {}

    def do_GET(self) -> None:
        status, body, with_length = self.routes.get(self.path, (404, b"not found", True))
        self.send_response(status)
        if with_length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading, as it should for oversize bodies

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[Callable[[str, bytes, bool], str]]:
    """An HTTP/1.0 server on 127.0.0.1; yields serve(path, body, with_length) -> URL."""
    handler = type("Handler", (_Handler,), {"routes": {}})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"

    def serve(path: str, body: bytes, with_length: bool = True) -> str:
        handler.routes[path] = (200, body, with_length)
        return base + path

    yield serve
    server.shutdown()
    server.server_close()
    thread.join()
