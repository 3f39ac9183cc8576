"""Processes that outlive their starter: started detached, recognised by pid, stopped.

Local work runs in processes of their own session, so an app restart (or a Ctrl-C in its
terminal) does not end it. A supervisor (a training job's, a tuning job's, a spot run's) is
started as ``python -m <module> ...`` by :func:`start_supervisor`; the module calls
:func:`detach_and_run`, which forks once so the launcher returns at once. Servers and sidecars
are started with :func:`start_detached`.

Their pids are recorded, and a recorded pid may since have been reused by another process. Two
guards tell the recorded process from a stranger: :func:`is_process_alive` looks for a marker
(the job's or endpoint's folder) in the command line, and :func:`start_time` gives what a pid
file can record beside the pid (for processes whose command line names no folder of their own).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NoReturn

from core.config import REPO_ROOT
from core.errors import BackendError

SUPERVISOR_START_TIMEOUT_S = 60.0
KILL_WAIT_S = 5.0
"""How long a SIGKILLed process may take to be gone before it counts as surviving."""
_POLL_S = 0.05


def start_detached(argv: Sequence[str], *, log: Path, cwd: Path, env: Mapping[str, str]) -> int:
    """Starts ``argv`` in a session of its own, stdin closed, output appended to ``log``; returns its pid.

    A thread of this process waits for it, so it leaves no zombie behind; it outlives this
    process all the same.

    Raises:
        OSError: the log cannot be opened, or the program cannot be started.
    """
    with open(log, "ab") as out:
        process = subprocess.Popen(
            list(argv), cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    threading.Thread(target=process.wait, name=f"reap-{process.pid}", daemon=True).start()
    return process.pid


def start_supervisor(module: str, *args: str, what: str) -> None:
    """Runs ``python -m module args...`` from the repository and waits for it to detach.

    The module calls :func:`detach_and_run`, whose parent exits once the supervisor runs on
    its own (its output goes to its log, so the launcher's pipes close).

    Args:
        module: the supervisor's module (``core.training._supervisor``).
        args: its command-line arguments.
        what: the supervisor, for the error message ("the job supervisor").

    Raises:
        BackendError: the launcher failed (its last error output is in the message).
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    try:
        launcher = subprocess.run(
            [sys.executable, "-m", module, *args], cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=SUPERVISOR_START_TIMEOUT_S,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise BackendError(f"could not start {what}: {exc}") from None
    if launcher.returncode != 0:
        raise BackendError(f"could not start {what}: {launcher.stderr.strip()[-500:]}")


def detach_and_run(log: Path, run: Callable[[], int], on_crash: Callable[[Exception], None]) -> NoReturn:
    """Forks; the parent exits at once, the child starts a new session and exits with ``run()``'s code.

    Args:
        log: the supervisor's log (stdout and stderr, appended; its folder is created).
        run: the supervisor's work; returns the exit code.
        on_crash: records a crash of ``run`` (the work must not stay running because of it).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    out = open(log, "a", buffering=1)
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    os.dup2(out.fileno(), sys.stdout.fileno())
    os.dup2(out.fileno(), sys.stderr.fileno())
    code = 1
    try:
        code = run()
    except Exception as exc:
        traceback.print_exc()
        on_crash(exc)
    finally:
        os._exit(code)


def is_process_alive(pid: int | None, marker: str) -> bool:
    """True if ``pid`` runs and its command line contains ``marker`` (guards against pid reuse).

    A zombie (exited, not yet reaped) counts as gone.
    """
    if not pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X") and marker in cmdline


def start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (``/proc/PID/stat`` field 22).

    With the pid it names one process for good: a reused pid has another start time.

    Raises:
        OSError: no such process, or it has exited (a zombie counts as gone).
    """
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    if fields[0] in ("Z", "X"):
        raise ProcessLookupError(pid)
    return fields[19]


def signal_process(pid: int | None, marker: str, sig: int, *, group: bool = False) -> bool:
    """Sends ``sig`` to the recorded process (to its process group with ``group``) if it still runs.

    Returns:
        False when it does not: gone, or the pid is another process's now (see :func:`is_process_alive`).
    """
    if pid is None or not is_process_alive(pid, marker):
        return False
    try:
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def stop_process(pid: int | None, marker: str, *, grace_s: float, group: bool = False) -> bool:
    """SIGTERM, then SIGKILL if the process still runs ``grace_s`` later; True once it is gone.

    Args:
        pid: the recorded pid (None: nothing to stop).
        marker: what its command line contains (see :func:`is_process_alive`).
        grace_s: how long it may take to stop on SIGTERM.
        group: signal its whole process group (it leads one: started in its own session).

    Returns:
        False if it still ran :data:`KILL_WAIT_S` after SIGKILL.
    """
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, KILL_WAIT_S)):
        if not signal_process(pid, marker, sig, group=group):
            return True
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and is_process_alive(pid, marker):
            time.sleep(_POLL_S)
    return not is_process_alive(pid, marker)


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now (a local server's, or where a job's
    processes meet)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
