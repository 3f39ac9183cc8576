"""Progress callbacks in storage: called one at a time from any thread, and a broken one never fails a transfer."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest

from core.storage import LocalStorage
from core.storage._base import SafeProgress


class _Stop(BaseException):
    """Stands for Streamlit's StopException: stopping on purpose."""


def _folder(root: Path) -> Path:
    for name, size in (("train/a/1.jpg", 3), ("train/b/2.jpg", 4), ("valid/a/3.jpg", 5)):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x" * size)
    return root


def test_calls_from_many_threads_never_overlap() -> None:
    inside = 0
    most_inside = 0
    calls = 0

    def progress(done: int, total: int) -> None:
        nonlocal inside, most_inside, calls
        inside += 1
        most_inside = max(most_inside, inside)
        time.sleep(0.001)  # widens the window in which an unserialised call would overlap
        calls += 1
        inside -= 1

    report = SafeProgress(progress)
    threads = [threading.Thread(target=lambda: [report(i, 20) for i in range(20)]) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (most_inside, calls) == (1, 160)


def test_no_callback_is_a_no_op() -> None:
    SafeProgress(None)(1, 2)


def test_a_callback_that_raises_is_logged_once_and_dropped(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> None:
        calls.append((done, total))
        raise RuntimeError()  # an empty message, like Streamlit's NoSessionContext

    report = SafeProgress(progress)
    with caplog.at_level(logging.WARNING, logger="core.storage._base"):
        report(1, 3)
        report(2, 3)
    assert calls == [(1, 3)]
    [record] = caplog.records
    assert "the transfer goes on without progress reports" in record.getMessage()
    assert record.exc_info and isinstance(record.exc_info[1], RuntimeError)


def test_a_raising_callback_does_not_fail_a_local_folder_upload(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "store")

    def progress(done: int, total: int) -> None:
        raise RuntimeError("the progress bar is gone")

    storage.put_folder(_folder(tmp_path / "ds"), "datasets/ds", progress)
    storage.put_file(tmp_path / "ds" / "train" / "a" / "1.jpg", "one.jpg", progress)
    assert [(o.key, o.size) for o in storage.list()] == [
        ("datasets/ds/train/a/1.jpg", 3),
        ("datasets/ds/train/b/2.jpg", 4),
        ("datasets/ds/valid/a/3.jpg", 5),
        ("one.jpg", 3),
    ]


def test_a_callback_that_stops_on_purpose_stops_the_upload_and_leaves_nothing(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "store")
    seen: list[int] = []

    def progress(done: int, total: int) -> None:
        seen.append(done)
        if len(seen) == 2:
            raise _Stop()

    with pytest.raises(_Stop):
        storage.put_folder(_folder(tmp_path / "ds"), "datasets/ds", progress)
    assert storage.list() == []
