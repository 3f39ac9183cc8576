"""entrypoints/shutdown.py: the DataLoader workers a failing training names in its last line."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

from entrypoints import shutdown


def _sleep() -> None:
    time.sleep(120)


def test_a_worker_killed_a_moment_ago_is_named_with_its_signal() -> None:
    """Right after SIGKILL the worker may still be tearing down, its exit status not there yet."""
    worker = multiprocessing.get_context("fork").Process(target=_sleep)
    worker.start()
    try:
        assert worker.pid is not None
        os.kill(worker.pid, signal.SIGKILL)
        assert shutdown.signalled_children().get(worker.pid) == "SIGKILL"
    finally:
        worker.join(timeout=10)


def test_a_live_worker_is_not_named() -> None:
    worker = multiprocessing.get_context("fork").Process(target=_sleep)
    worker.start()
    try:
        assert worker.pid not in shutdown.signalled_children(settle_s=0.2)
    finally:
        worker.kill()
        worker.join(timeout=10)
