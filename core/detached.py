"""Running a supervisor as a detached process: nobody's child in the app, its own session.

Local training jobs and spot runs are started as ``python -m <module> FOLDER``; the module
calls :func:`detach_and_run`, which forks once so the launcher returns at once, and the
supervisor survives app restarts. Its output goes to ``FOLDER/logs/supervisor.log``.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Callable, NoReturn


def detach_and_run(folder: Path, run: Callable[[], int], on_crash: Callable[[Exception], None]) -> NoReturn:
    """Forks; the parent exits at once, the child starts a new session and exits with ``run()``'s code.

    Args:
        folder: the job's or run's folder (its ``logs/`` receives the supervisor's output).
        run: the supervisor's work; returns the exit code.
        on_crash: records a crash of ``run`` (the job must not stay running because of it).
    """
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    log = open(Path(folder) / "logs" / "supervisor.log", "a", buffering=1)
    os.dup2(log.fileno(), sys.stdout.fileno())
    os.dup2(log.fileno(), sys.stderr.fileno())
    code = 1
    try:
        code = run()
    except Exception as exc:
        traceback.print_exc()
        on_crash(exc)
    finally:
        os._exit(code)
