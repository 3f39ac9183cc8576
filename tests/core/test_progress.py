"""The progress relay: a call runs in a worker thread, its progress reaches the caller's thread only."""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable

import pytest

from core.progress import Cancelled, LatestReport, TimeLeft, run_with_progress

WAIT_S = 30  # how long a test waits for a thread before calling it stuck (never reached when it passes)
NEVER_WAKE_S = 3600  # a poll interval the test never sees elapse: the caller wakes only when the call ends


class _Stop(BaseException):
    """Stands for Streamlit's StopException / RerunException, raised on the script thread."""


class _Recorder:
    """An on_progress that remembers what it got and on which thread."""

    def __init__(self) -> None:
        self.values: list[tuple[object, ...]] = []
        self.threads: set[int] = set()
        self.first = threading.Event()

    def __call__(self, *values: object) -> None:
        self.values.append(values)
        self.threads.add(threading.get_ident())
        self.first.set()


def test_a_report_from_the_worker_reaches_the_caller_thread_while_the_call_runs() -> None:
    caller = threading.get_ident()
    seen = _Recorder()
    workers: list[int] = []

    def call(report: Callable[[int, int], None]) -> str:
        workers.append(threading.get_ident())
        report(5, 10)
        assert seen.first.wait(WAIT_S), "the caller never passed the report on"
        report(10, 10)
        return "uploaded"

    assert run_with_progress(call, seen, poll_interval_s=0.01) == "uploaded"
    assert workers and workers[0] != caller
    assert seen.values[0] == (5, 10) and seen.values[-1] == (10, 10)
    assert seen.threads == {caller}


def test_reports_from_many_threads_are_coalesced_to_the_newest() -> None:
    seen = _Recorder()
    reporters: set[int] = set()

    all_started = threading.Barrier(4, timeout=WAIT_S)  # four live threads at once: four distinct idents

    def call(report: Callable[[int], None]) -> int:
        def burst(start: int) -> None:
            reporters.add(threading.get_ident())
            all_started.wait()
            for i in range(start, start + 200):
                report(i)

        threads = [threading.Thread(target=burst, args=(1000 * n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        report(-1)
        return 42

    assert run_with_progress(call, seen, poll_interval_s=NEVER_WAKE_S) == 42
    assert len(reporters) == 4
    assert seen.values == [(-1,)]  # 801 reports, one delivery: the newest
    assert seen.threads == {threading.get_ident()}


def test_keyword_reports_are_passed_on_as_given() -> None:
    seen: list[tuple[str, float]] = []

    def call(report: Callable[..., None]) -> None:
        report("extract", fraction=0.5)

    run_with_progress(call, lambda stage, fraction: seen.append((stage, fraction)), poll_interval_s=NEVER_WAKE_S)
    assert seen == [("extract", 0.5)]


def test_no_report_means_no_progress_call() -> None:
    seen = _Recorder()
    assert run_with_progress(lambda report: None, seen, poll_interval_s=NEVER_WAKE_S) is None
    assert seen.values == []


def _explode(report: Callable[[int], None]) -> None:
    report(3)
    raise ValueError("the bucket is gone")


def test_the_call_exception_is_re_raised_with_its_traceback_after_the_last_report() -> None:
    seen = _Recorder()
    with pytest.raises(ValueError, match="the bucket is gone") as caught:
        run_with_progress(_explode, seen, poll_interval_s=NEVER_WAKE_S)
    assert "_explode" in [frame.name for frame in traceback.extract_tb(caught.value.__traceback__)]
    assert seen.values == [(3,)]
    assert seen.threads == {threading.get_ident()}


def test_a_base_exception_of_the_call_is_re_raised_too() -> None:
    def stop(report: Callable[[], None]) -> None:
        raise _Stop()

    with pytest.raises(_Stop):
        run_with_progress(stop, _Recorder(), poll_interval_s=NEVER_WAKE_S)


def _abandon(outcome: Callable[[], object], caplog: pytest.LogCaptureFixture) -> threading.Thread:
    """Runs a call whose caller is stopped by its first progress report; returns the call's thread,
    still running, and lets the call end with ``outcome()`` once the caller has given up."""
    release = threading.Event()
    workers: list[threading.Thread] = []

    def call(report: Callable[[int], None]) -> object:
        workers.append(threading.current_thread())
        report(1)
        assert release.wait(WAIT_S), "the caller never gave up"
        return outcome()

    def on_progress(_: int) -> None:
        raise _Stop()

    with caplog.at_level(logging.INFO, logger="core.progress"):
        with pytest.raises(_Stop):
            run_with_progress(call, on_progress, poll_interval_s=0.01, name="upload-cats")
        assert workers[0].is_alive() and not workers[0].daemon
        release.set()
        workers[0].join(WAIT_S)
    assert not workers[0].is_alive()
    return workers[0]


def test_a_stopped_caller_leaves_the_call_to_finish_and_logs_it(caplog: pytest.LogCaptureFixture) -> None:
    finished: list[bool] = []
    _abandon(lambda: finished.append(True), caplog)
    assert finished == [True]
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    warning = "upload-cats: stopped waiting (_Stop); the call stops at its next progress report"
    assert (logging.WARNING, warning) in messages
    assert (logging.INFO, "upload-cats: the call finished; its caller had stopped waiting") in messages


def test_a_call_that_fails_after_its_caller_stopped_is_logged_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def fail() -> None:
        raise RuntimeError("rolled back")

    _abandon(fail, caplog)
    [failure] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert failure.getMessage() == "upload-cats: the call failed; its caller had stopped waiting"
    assert failure.exc_info and isinstance(failure.exc_info[1], RuntimeError)


def test_a_stopped_caller_cancels_the_call_at_its_next_report_on_its_own_thread(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = threading.Event()
    seen: list[str] = []

    def call(report: Callable[[int], None]) -> object:
        report(1)
        assert release.wait(WAIT_S), "the caller never gave up"

        def other_thread() -> None:
            report(2)  # an s3transfer thread's report: dropped, never raised there
            seen.append("other thread went on")

        helper = threading.Thread(target=other_thread)
        helper.start()
        helper.join(WAIT_S)
        try:
            report(3)
        except Cancelled:
            seen.append("cancelled")
            raise
        return "not reached"

    def on_progress(_: int) -> None:
        raise _Stop()

    with caplog.at_level(logging.INFO, logger="core.progress"):
        with pytest.raises(_Stop):
            run_with_progress(call, on_progress, poll_interval_s=0.01, name="upload-dogs")
        [worker] = [t for t in threading.enumerate() if t.name == "upload-dogs"]
        release.set()
        worker.join(WAIT_S)
    assert seen == ["other thread went on", "cancelled"]
    assert (logging.INFO, "upload-dogs: the call was cancelled; its caller had stopped waiting") in [
        (r.levelno, r.getMessage()) for r in caplog.records]


def test_the_poll_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="poll_interval_s"):
        run_with_progress(lambda report: None, _Recorder(), poll_interval_s=0)


def test_latest_report_is_taken_once() -> None:
    latest: LatestReport[[int]] = LatestReport()
    assert latest.take() is None
    latest(1)
    latest(2)
    assert latest.take() == ((2,), {})
    assert latest.take() is None


def test_time_left_follows_the_pace_so_far() -> None:
    now = [100.0]
    clock = TimeLeft(lambda: now[0])
    assert clock.text(0.0) == "0%"
    now[0] = 100.5
    assert clock.text(0.2) == "20%"  # under a second in: no pace yet
    now[0] = 110.0
    assert clock.text(0.25) == "25%, about 30 s left"
    now[0] = 130.0
    assert clock.text(0.25) == "25%, about 1 min 30 s left"
    assert clock.text(1.0) == "100%"
