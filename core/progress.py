"""Run a blocking call in a worker thread and relay its progress to the calling thread.

Some callers may only act on the thread they run on: a Streamlit page may touch its widgets
from the script thread alone, yet s3transfer reports upload progress from its own worker
threads. :func:`run_with_progress` bridges the two: the call runs in a worker thread and
reports through a thread-safe hand-off, while the calling thread wakes every poll interval
and passes the newest report (older ones are dropped) to ``on_progress``, on its own thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, wait
from typing import Any, Generic, ParamSpec, TypeVar

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

POLL_INTERVAL_S = 0.15
"""How often the calling thread wakes to pass on progress while it waits."""


class Cancelled(BaseException):
    """Raised inside a call whose caller stopped waiting, at its next progress report on its own thread.

    A BaseException, like KeyboardInterrupt: it passes through ``except Exception`` and through
    :class:`core.storage.SafeProgress`, so the work stops and its own clean-up runs (an upload
    deletes what it had uploaded).
    """


class LatestReport(Generic[P]):
    """The newest progress report from any thread, taken at most once.

    Reporting is callable from any number of threads at once; a report replaces an untaken one.
    Once :meth:`cancel` is called, a report made on the owner thread raises :class:`Cancelled`
    (reports from other threads, such as s3transfer's, are dropped: raising there would not stop
    the work, only break a transfer thread).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: tuple[tuple[Any, ...], dict[str, Any]] | None = None
        self._owner: int | None = None
        self._cancelled = False

    def own(self) -> None:
        """Makes the calling thread the one that :meth:`cancel` stops."""
        self._owner = threading.get_ident()

    def cancel(self) -> None:
        """The owner's next report raises Cancelled."""
        self._cancelled = True

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> None:
        if self._cancelled:
            if threading.get_ident() == self._owner:
                raise Cancelled()
            return
        with self._lock:
            self._pending = (args, kwargs)

    def take(self) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
        """The newest report's arguments, or None if nothing was reported since the last take."""
        with self._lock:
            pending, self._pending = self._pending, None
        return pending


def run_with_progress(
    call: Callable[[Callable[P, None]], T],
    on_progress: Callable[P, None],
    *,
    poll_interval_s: float = POLL_INTERVAL_S,
    name: str = "progress-relay",
) -> T:
    """Runs ``call(report)`` in a worker thread; calls ``on_progress`` only on this thread.

    ``call`` receives ``report``, a progress callback with ``on_progress``'s signature that any
    thread may call. This thread wakes every ``poll_interval_s`` (and at once when the call ends)
    and calls ``on_progress`` with the arguments of the newest report since it last woke, if any;
    the last report is passed on before this function returns or raises.

    If this thread is interrupted while it waits (KeyboardInterrupt, Streamlit's StopException or
    RerunException when the user clicks elsewhere or leaves, or an exception from ``on_progress``),
    that exception propagates at once and the call is cancelled: Python cannot stop a thread, so
    the call's next progress report on its own thread raises :class:`Cancelled`, and the call
    cleans up after itself as after any failure (``register_dataset`` deletes what it uploaded).
    A call that reports only from other threads runs to its end. The abandonment is logged as a
    warning, and the call's outcome (its exception with traceback, if it failed) is logged when it
    ends. The worker is not a daemon
    thread (Streamlit's script threads are, and the threads they start inherit that): at
    interpreter exit Python waits for the call to end, so an upload completes or cleans up after
    itself rather than being cut off halfway.

    Args:
        call: the blocking work; it must report progress only through the callback it is given.
        on_progress: called on this thread, never on another.
        poll_interval_s: how long this thread sleeps between looks at the newest report.
        name: the worker thread's name, also used in log messages.

    Returns:
        What ``call`` returned.

    Raises:
        ValueError: poll_interval_s is not positive.
        BaseException: whatever ``call`` raised, re-raised here with its original traceback.
    """
    if poll_interval_s <= 0:
        raise ValueError(f"poll_interval_s must be positive, not {poll_interval_s}")
    latest: LatestReport[P] = LatestReport()
    future: Future[T] = Future()

    def work() -> None:
        latest.own()
        future.set_running_or_notify_cancel()
        try:
            result = call(latest)
        except BaseException as exc:
            future.set_exception(exc)
        else:
            future.set_result(result)

    worker = threading.Thread(target=work, name=name, daemon=False)
    worker.start()
    try:
        finished = False
        while not finished:
            finished = bool(wait([future], timeout=poll_interval_s).done)
            pending = latest.take()
            if pending is not None:
                args, kwargs = pending
                on_progress(*args, **kwargs)
    except BaseException as exc:
        if not future.done():
            latest.cancel()
            logger.warning("%s: stopped waiting (%s); the call stops at its next progress report",
                           name, type(exc).__name__)
        future.add_done_callback(lambda done: _log_outcome(name, done))
        raise
    return future.result()


def _log_outcome(name: str, future: Future[Any]) -> None:
    """Logs how a call whose caller stopped waiting ended: nobody else will hear of it."""
    error = future.exception()
    if isinstance(error, Cancelled):
        logger.info("%s: the call was cancelled; its caller had stopped waiting", name)
    elif error is None:
        logger.info("%s: the call finished; its caller had stopped waiting", name)
    else:
        logger.error("%s: the call failed; its caller had stopped waiting", name, exc_info=error)


class TimeLeft:
    """Estimates the time left of work that reports the fraction it has done, from its pace so far."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._started = clock()

    def text(self, fraction: float) -> str:
        """``"42%, about 1 min 05 s left"``; just the percentage until the pace is known."""
        done = f"{min(max(fraction, 0.0), 1.0):.0%}"
        elapsed = self._clock() - self._started
        if not 0.01 <= fraction < 1 or elapsed < 1:
            return done
        minutes, seconds = divmod(round(elapsed * (1 - fraction) / fraction), 60)
        return f"{done}, about {minutes} min {seconds:02d} s left" if minutes else f"{done}, about {seconds} s left"
