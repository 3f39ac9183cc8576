"""core.processes: detached starts, supervisors forked away, pid-reuse guards, stopping.

Run as ``python -m tests.core.test_processes FOLDER MODE`` it is itself a tiny supervisor
(see :func:`_supervise`), so :func:`start_supervisor` and :func:`detach_and_run` are tested
for real.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from core.errors import BackendError
from core.processes import (
    detach_and_run,
    is_process_alive,
    signal_process,
    start_detached,
    start_supervisor,
    start_time,
    stop_process,
)

THIS_MODULE = "tests.core.test_processes"
WAIT_S = 60.0


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"still not {what} after {WAIT_S} s"
        time.sleep(0.05)


def _state(pid: int) -> str | None:
    """The process's state letter (``Z`` for a zombie), None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return None


def _python(tmp_path: Path, code: str) -> list[str]:
    """A command running ``code``; its command line names tmp_path (the marker)."""
    script = tmp_path / "child.py"
    script.write_text(code)
    return [sys.executable, str(script)]


def test_a_detached_process_has_its_own_session_closed_stdin_and_its_log(tmp_path: Path) -> None:
    command = _python(tmp_path, "import os, sys\nprint(os.getsid(0), repr(sys.stdin.read()), flush=True)\n"
                                "print('to stderr', file=sys.stderr)\n")
    log = tmp_path / "out.log"
    log.write_text("earlier\n")
    pid = start_detached(command, log=log, cwd=tmp_path, env=os.environ)
    _wait_until(lambda: "to stderr" in log.read_text(), "logged")
    lines = log.read_text().splitlines()
    assert lines[0] == "earlier"  # appended, not truncated
    assert lines[1] == f"{pid} ''"  # its own session; stdin is empty
    _wait_until(lambda: _state(pid) is None, "reaped")  # no zombie left behind


def test_a_program_that_cannot_start_raises(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        start_detached([str(tmp_path / "missing")], log=tmp_path / "out.log", cwd=tmp_path, env=os.environ)


def test_a_live_process_is_recognised_by_its_marker_and_its_start_time(tmp_path: Path) -> None:
    child = subprocess.Popen(_python(tmp_path, "import time\ntime.sleep(60)\n"))
    try:
        _wait_until(lambda: str(tmp_path) in Path(f"/proc/{child.pid}/cmdline").read_text(), "started")
        assert is_process_alive(child.pid, str(tmp_path))
        assert not is_process_alive(child.pid, str(tmp_path / "another-job"))  # a reused pid
        assert not is_process_alive(None, str(tmp_path))
        assert start_time(child.pid) == start_time(child.pid)
        assert start_time(child.pid) != start_time(os.getpid())
    finally:
        child.kill()
        child.wait()


def test_a_zombie_or_a_gone_process_is_not_alive(tmp_path: Path) -> None:
    child = subprocess.Popen(_python(tmp_path, "pass\n"))
    _wait_until(lambda: _state(child.pid) == "Z", "a zombie")  # exited, not reaped yet
    assert not is_process_alive(child.pid, str(tmp_path))
    with pytest.raises(OSError):
        start_time(child.pid)
    child.wait()
    assert not is_process_alive(child.pid, str(tmp_path))
    with pytest.raises(OSError):
        start_time(child.pid)


def test_a_signal_goes_only_to_the_recorded_process(tmp_path: Path) -> None:
    child = subprocess.Popen(_python(tmp_path, "import time\ntime.sleep(60)\n"))
    try:
        _wait_until(lambda: is_process_alive(child.pid, str(tmp_path)), "started")
        assert not signal_process(child.pid, "another-job", signal.SIGKILL)
        assert child.poll() is None
        assert signal_process(child.pid, str(tmp_path), signal.SIGKILL)
        assert child.wait(timeout=WAIT_S) == -signal.SIGKILL
        assert not signal_process(child.pid, str(tmp_path), signal.SIGKILL)
        assert not signal_process(None, str(tmp_path), signal.SIGKILL)
    finally:
        child.kill()
        child.wait()


def test_stop_is_sigterm_then_sigkill_after_the_grace(tmp_path: Path) -> None:
    polite = subprocess.Popen(_python(tmp_path, "import time\ntime.sleep(60)\n"))
    _wait_until(lambda: is_process_alive(polite.pid, str(tmp_path)), "started")
    assert stop_process(polite.pid, str(tmp_path), grace_s=30)
    assert polite.wait(timeout=WAIT_S) == -signal.SIGTERM

    stubborn = subprocess.Popen(_python(tmp_path, "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                                                  "print('ready', flush=True)\ntime.sleep(60)\n"),
                                stdout=subprocess.PIPE, text=True)
    assert stubborn.stdout is not None and stubborn.stdout.readline() == "ready\n"
    started = time.monotonic()
    assert stop_process(stubborn.pid, str(tmp_path), grace_s=0.5)
    assert time.monotonic() - started >= 0.5
    assert stubborn.wait(timeout=WAIT_S) == -signal.SIGKILL
    assert stop_process(stubborn.pid, str(tmp_path), grace_s=30)  # gone already: nothing to do
    assert stop_process(None, str(tmp_path), grace_s=30)


def test_stop_of_a_group_reaches_its_children(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    code = ("import subprocess, sys, time\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
            f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
            "time.sleep(60)\n")
    leader = subprocess.Popen(_python(tmp_path, code), start_new_session=True)
    _wait_until(lambda: pid_file.is_file() and pid_file.read_text().isdigit(), "started")
    grandchild = int(pid_file.read_text())
    try:
        assert stop_process(leader.pid, str(tmp_path), grace_s=30, group=True)
        leader.wait(timeout=WAIT_S)
        _wait_until(lambda: _state(grandchild) in (None, "Z"), "stopped with its group")
    finally:
        if _state(grandchild) not in (None, "Z"):
            os.kill(grandchild, signal.SIGKILL)


def test_a_supervisor_detaches_into_its_own_session_and_logs(tmp_path: Path) -> None:
    started = time.monotonic()
    start_supervisor(THIS_MODULE, str(tmp_path), "work", what="the test supervisor")
    assert time.monotonic() - started < 30  # returned while the supervisor still works
    result = tmp_path / "result.json"
    _wait_until(result.is_file, "done")
    ran = json.loads(result.read_text())
    assert ran["sid"] == ran["pid"]  # a new session: nobody's child in the app
    log = tmp_path / "logs" / "supervisor.log"  # created with its folder
    _wait_until(lambda: "working" in log.read_text() and "warning on stderr" in log.read_text(), "logged")


def test_a_crashing_supervisor_is_recorded_and_logged(tmp_path: Path) -> None:
    start_supervisor(THIS_MODULE, str(tmp_path), "crash", what="the test supervisor")
    crash = tmp_path / "crash.txt"
    _wait_until(crash.is_file, "recorded")
    assert crash.read_text() == "the work failed"
    log = tmp_path / "logs" / "supervisor.log"
    _wait_until(lambda: "RuntimeError: the work failed" in log.read_text(), "logged")  # the traceback


def test_a_supervisor_that_cannot_start_raises_with_its_error(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match=r"could not start the test supervisor: .*No module named"):
        start_supervisor("tests.core.no_such_module", what="the test supervisor")


def _supervise(folder: Path, mode: str) -> None:
    """The supervisor run by ``python -m tests.core.test_processes FOLDER MODE``."""

    def run() -> int:
        print("working", flush=True)
        print("warning on stderr", file=sys.stderr, flush=True)
        if mode == "crash":
            raise RuntimeError("the work failed")
        (folder / "result.json").write_text(json.dumps({"pid": os.getpid(), "sid": os.getsid(0)}))
        return 0

    def on_crash(exc: Exception) -> None:
        (folder / "crash.txt").write_text(str(exc))

    detach_and_run(folder / "logs" / "supervisor.log", run, on_crash)


if __name__ == "__main__":
    _supervise(Path(sys.argv[1]), sys.argv[2])
