"""Large uploads written to disk piece by piece (core/uploads.py) and the routes that take them (server.py)."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from core.errors import InvalidInputError, NotFoundError
from core.uploads import MAX_UPLOAD_BYTES, UploadSpool


def test_pieces_arrive_in_order_and_the_last_one_finishes_the_upload(tmp_path: Path) -> None:
    spool = UploadSpool(tmp_path)
    data = os.urandom(10_000)
    upload_id = spool.announce("dogs.zip", len(data))
    assert spool.received(upload_id) == 0 and spool.finished(upload_id) is None
    assert spool.append(upload_id, 0, data[:4000]) == 4000
    with pytest.raises(InvalidInputError, match="starts at byte 3,000 but 4,000 bytes have arrived"):
        spool.append(upload_id, 3000, data[3000:6000])  # a resumed browser must ask first
    assert spool.received(upload_id) == 4000
    assert spool.append(upload_id, 4000, data[4000:]) == len(data)
    finished = spool.finished(upload_id)
    assert finished is not None and finished.filename == "dogs.zip" and finished.path.read_bytes() == data
    with pytest.raises(NotFoundError, match="finished or discarded"):
        spool.append(upload_id, len(data), b"x")
    spool.discard(upload_id)
    assert not spool.exists(upload_id) and list(spool.folder.iterdir()) == []


def test_bad_announcements_and_pieces_are_refused(tmp_path: Path) -> None:
    spool = UploadSpool(tmp_path)
    with pytest.raises(InvalidInputError, match="largest file accepted is 16 GiB"):
        spool.announce("huge.zip", MAX_UPLOAD_BYTES + 1)
    with pytest.raises(InvalidInputError):
        spool.announce("empty.zip", 0)
    upload_id = spool.announce("a.zip", 10)
    with pytest.raises(InvalidInputError, match="more bytes than the announced 10"):
        spool.append(upload_id, 0, b"x" * 11)
    assert spool.received(upload_id) == 0
    for unknown in ("../../etc/passwd", "x" * 30):
        with pytest.raises(NotFoundError):
            spool.append(unknown, 0, b"x")


def test_abandoned_uploads_are_swept(tmp_path: Path) -> None:
    spool = UploadSpool(tmp_path)
    old, fresh = spool.announce("old.zip", 5), spool.announce("new.zip", 5)
    spool.append(old, 0, b"ab")
    for path in spool.folder.glob(f"{old}.*"):
        os.utime(path, (0, 0))
    assert spool.sweep() == 1
    assert not spool.exists(old) and spool.exists(fresh)


class _Client:
    """requests against the upload routes served by uvicorn on a loopback port."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __getattr__(self, method: str) -> Any:
        return lambda path, **kwargs: requests.request(method.upper(), self.url + path, timeout=10, **kwargs)


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[_Client]:
    import uvicorn
    from starlette.applications import Starlette

    import server

    monkeypatch.setenv("SMC_WORKSPACE", str(tmp_path))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    web = uvicorn.Server(uvicorn.Config(Starlette(routes=server.ROUTES), host="127.0.0.1", port=port,
                                        log_level="warning"))
    thread = threading.Thread(target=web.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not web.started and time.time() < deadline:
        time.sleep(0.05)
    try:
        yield _Client(f"http://127.0.0.1:{port}")
    finally:
        web.should_exit = True
        thread.join(timeout=10)


def test_the_routes_take_pieces_resume_and_cancel(client: _Client, tmp_path: Path) -> None:
    data = os.urandom(3000)
    upload_id = client.post("/smc/uploads", json={"filename": "dogs.zip", "size": len(data)}).json()["id"]
    assert client.put(f"/smc/uploads/{upload_id}?offset=0", data=data[:1000]).json() == {"received": 1000}
    stale = client.put(f"/smc/uploads/{upload_id}?offset=500", data=data[500:])
    assert stale.status_code == 409 and stale.json()["received"] == 1000
    assert client.get(f"/smc/uploads/{upload_id}").json() == {"received": 1000}
    assert client.put(f"/smc/uploads/{upload_id}?offset=1000", data=data[1000:]).json() == {"received": 3000}
    assert (tmp_path / "uploads" / f"{upload_id}.done").read_bytes() == data
    assert client.delete(f"/smc/uploads/{upload_id}").status_code == 204
    assert client.get(f"/smc/uploads/{upload_id}").status_code == 404
    assert list((tmp_path / "uploads").iterdir()) == []
    too_big = client.post("/smc/uploads", json={"filename": "x.zip", "size": MAX_UPLOAD_BYTES + 1})
    assert too_big.status_code == 413 and "largest file accepted" in too_big.json()["error"]
    assert client.post("/smc/uploads", json={"size": "many"}).status_code == 400
