"""Ending a job script after a fatal error: the failure file, leftover children, a prompt exit.

Why the script needs this: DataLoader workers ignore SIGTERM (``imagedata.seed_worker``: the
main process owns the shutdown of a spot interruption), and at interpreter exit multiprocessing's
handler (``util._exit_function``) sends SIGTERM to daemon children and then *joins* them. An
exception raised in a worker is re-raised in the main process inside a reference cycle
(exception -> traceback -> frame -> exception) that also holds the DataLoader iterator, so the
iterator does not shut its workers down when the exception is handled. Collected later by the
garbage collector it cannot either: its index queues' feeder threads are stopped first (weakref
finalizers), so the workers never get their stop message, and each join waits out torch's 5 s
timeout. The workers kept waiting for work, the exit handler kept joining them, and the job,
its traceback printed, stayed InProgress.

So on the error path ``end_children`` stops every multiprocessing child itself (SIGTERM, a short
grace, then SIGKILL), ``write_failure`` leaves the reason where SageMaker takes the job's
FailureReason from, and ``exit_with`` ends the script at once (``os._exit``, after flushing) when
its code is not 0, so no exit handler and no non-daemon thread can hold it. A successful run
exits as before.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import NoReturn

FAILURE_FILE = "failure"
DEFAULT_OUTPUT_DIR = Path("/opt/ml/output")
MAX_FAILURE_CHARS = 1024  # SageMaker's FailureReason holds at most 1024 characters
CHILD_GRACE_S = 1.0
SETTLE_S = 1.0  # how long signalled_children() waits for a dying worker's exit status


def failure_path(environ: Mapping[str, str] | None = None) -> Path | None:
    """Where the failure reason goes: ``$SM_OUTPUT_DIR/failure``, or ``/opt/ml/output/failure``
    when that folder exists (a SageMaker container); None elsewhere."""
    environ = os.environ if environ is None else environ
    if environ.get("SM_OUTPUT_DIR"):
        return Path(environ["SM_OUTPUT_DIR"]) / FAILURE_FILE
    if DEFAULT_OUTPUT_DIR.is_dir():
        return DEFAULT_OUTPUT_DIR / FAILURE_FILE
    return None


def write_failure(reason: str, path: Path | None = None) -> Path | None:
    """Writes ``reason`` (cut to SageMaker's limit) to the failure file; returns its path.

    Never raises: a failure that cannot be written is still in the log's last line.
    """
    path = path or failure_path()
    if path is None:
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(reason[:MAX_FAILURE_CHARS] + "\n", encoding="utf-8")
    except OSError:
        return None
    return path


def signalled_children(settle_s: float = SETTLE_S) -> dict[int, str]:
    """This process's multiprocessing children that a signal ended and that nobody has reaped yet
    (pid -> signal name): a DataLoader worker that the kernel's OOM killer or a person killed.

    A worker killed a moment ago may still be tearing down: its sockets are closed (which is how
    the main process learnt of it, as a reset connection) before its exit status is there. While
    there are children and none is found, they are looked at again for up to ``settle_s``.
    """
    children = list(getattr(multiprocessing.process, "_children", ()))  # active_children() forgets them
    deadline = time.monotonic() + settle_s
    while True:
        found: dict[int, str] = {}
        for child in children:
            code = child.exitcode
            if child.pid is not None and code is not None and code < 0:
                try:
                    found[child.pid] = signal.Signals(-code).name
                except ValueError:
                    found[child.pid] = f"signal {-code}"
        if found or not children or time.monotonic() >= deadline:
            return found
        time.sleep(0.05)


def end_children(grace_s: float = CHILD_GRACE_S) -> list[int]:
    """Stops this process's multiprocessing children; returns the pids that needed SIGKILL.

    Each gets SIGTERM, then SIGKILL if still alive ``grace_s`` later (DataLoader workers ignore
    SIGTERM). SIGCHLD is left to its default action meanwhile, so torch's handler does not raise
    "DataLoader worker killed" in the middle of this.
    """
    children = multiprocessing.active_children()
    if not children:
        return []
    try:
        previous = signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    except ValueError:  # not the main thread: leave the handler alone
        previous = None
    try:
        for child in children:
            child.terminate()
        deadline = time.monotonic() + grace_s
        for child in children:
            child.join(timeout=max(0.0, deadline - time.monotonic()))
        killed = [child for child in children if child.is_alive()]
        for child in killed:
            child.kill()
        for child in killed:
            child.join(timeout=grace_s)
    finally:
        if previous is not None:
            signal.signal(signal.SIGCHLD, previous)
    return [child.pid for child in killed if child.pid is not None]


def flush_output() -> None:
    """Flushes every logging handler, then stdout and stderr (errors ignored: a closed pipe)."""
    for handler in logging.getLogger().handlers:
        try:
            handler.flush()
        except Exception:
            pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def exit_with(code: int) -> NoReturn:
    """Ends the script with ``code``: ``sys.exit`` for 0; otherwise, once children are ended and
    output flushed, ``os._exit``, so neither exit handlers nor stray threads can keep it alive."""
    if code == 0:
        sys.exit(0)
    end_children()
    flush_output()
    os._exit(code)
