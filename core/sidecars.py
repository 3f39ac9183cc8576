"""Sidecar processes on this machine for training jobs that run elsewhere: at most one per job and kind.

A SageMaker job's Debugger trial and profiler output land in S3, and the console's own
analysers (``python -m analysers.<kind>_sidecar``, run with the job environment's interpreter) follow
the job from here. Each runs detached from the app (its own session, so it outlives an app
restart) in ``<workspace>/<folder>/<job>``, which holds its pid file and its log. The pid file
records the process's start time too, so a pid reused by another process is not mistaken for
it; the app reaps the process when it exits (a waiting thread), so no zombie is left behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from core.config import REPO_ROOT, Settings
from core.errors import BackendError
from core.processes import start_detached, start_time

PID_FILE = "sidecar.pid"
LOG_FILE = "sidecar.log"
LOCK_FILE = "start.lock"


class SidecarProcesses:
    """Starts and finds one kind of sidecar process, one per job.

    Args:
        settings: the backend's settings: workspace, job interpreter, AWS profile and region
            (given to each process through its environment).
        folder: the kind's folder under the workspace (``profiler-analysers``, ...).
    """

    def __init__(self, settings: Settings, folder: str) -> None:
        self.settings = settings
        self.root = settings.workspace / folder

    def folder(self, job_name: str) -> Path:
        """The job's sidecar folder (its working directory, pid file and log)."""
        return self.root / job_name

    @contextlib.contextmanager
    def exclusive(self, job_name: str) -> Iterator[None]:
        """Holds the job's start lock, across threads and processes: check-then-start happens once.

        Raises:
            BackendError: the folder cannot be made or locked.
        """
        try:
            self.folder(job_name).mkdir(parents=True, exist_ok=True)
            handle = open(self.folder(job_name) / LOCK_FILE, "a")
        except OSError as exc:
            raise BackendError(f"cannot prepare {self.folder(job_name)}: {exc}") from None
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def running(self, job_name: str) -> bool:
        """Whether the process the job's pid file names still runs (the same process: pid and start time)."""
        try:
            pid, started = (self.folder(job_name) / PID_FILE).read_text().split()
            return start_time(int(pid)) == started
        except (OSError, ValueError):
            return False

    def start(self, job_name: str, arguments: Sequence[str]) -> int:
        """Starts ``job_python arguments...`` in the job's folder, output to its log; returns the pid.

        Call it inside :meth:`exclusive`, after :meth:`running` said no.

        Raises:
            BackendError: the process could not be started.
        """
        folder = self.folder(job_name)
        program = arguments[1] if arguments[0] == "-m" else Path(arguments[0]).name
        what = f"{program} for {job_name}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            pid = start_detached([str(self.settings.job_python), *arguments], log=folder / LOG_FILE, cwd=folder,
                                 env=self.environment())
        except OSError as exc:
            raise BackendError(f"could not start {what}: {exc}") from None
        try:
            started = start_time(pid)
        except OSError:  # a zombie, or reaped already
            raise BackendError(f"{what} exited at once: see {folder / LOG_FILE}") from None
        try:
            (folder / PID_FILE).write_text(f"{pid} {started}")
        except OSError as exc:
            raise BackendError(f"could not record {what}: {exc}") from None
        return pid

    def log_tail(self, job_name: str, max_lines: int = 50) -> list[str]:
        """The last lines of the job's sidecar log ([] before it ever ran)."""
        try:
            return (self.folder(job_name) / LOG_FILE).read_text(errors="replace").splitlines()[-max_lines:]
        except OSError:
            return []

    def environment(self) -> dict[str, str]:
        """The app's environment without the job variables, with the backend's AWS profile and region,
        and the repository on the path (the analysers are a package there and use ``core``)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "SAGEMAKER_"))}
        if self.settings.aws_profile:
            env["AWS_PROFILE"] = self.settings.aws_profile
        if self.settings.region:
            env["AWS_DEFAULT_REGION"] = self.settings.region
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        return env
