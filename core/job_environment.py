"""Whether the job environment (torch, smdebug) can run job-side processes yet.

``scripts/start`` serves the app as soon as the app's own environment is ready and builds the
job environment in the background (a few minutes: torch). ``scripts/setup job`` records each
phase in ``<environment>/.setup-status.json`` (replaced at once, never half written) and holds
``<environment>/.setup.lock`` while it works. A half-built environment already has
``bin/python``, so only that status says whether the environment can be used; a status that says
"installing" while nobody holds the lock is left from an installer that was stopped. An
interpreter no installer records (``SMC_JOB_PYTHON`` naming one made elsewhere) is ready if it
exists.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Protocol, runtime_checkable

from core.errors import BackendError

STATUS_FILE = ".setup-status.json"
"""Beside the environment's ``bin/``: ``{"phase", "started_at", "finished_at", "log"}``."""
LOCK_FILE = ".setup.lock"
"""Held (flock) by the installer while it runs."""
LOG_TAIL_BYTES = 16_000


class JobEnvironmentPhase(str, Enum):
    """Where the job environment's install stands."""

    INSTALLING = "installing"
    READY = "ready"
    FAILED = "failed"
    MISSING = "missing"


@dataclass(frozen=True)
class JobEnvironmentState:
    """The job environment as its installer last recorded it.

    Attributes:
        job_python: the environment's interpreter.
        phase: installing, ready, failed (the install failed or was stopped) or missing.
        started_at: when the install began (None without a status file).
        finished_at: when it ended (None while installing, or without a status file).
        log: the installer's output (None without a status file).
        reason: why a failed install failed, in words.
    """

    job_python: Path
    phase: JobEnvironmentPhase
    started_at: datetime | None = None
    finished_at: datetime | None = None
    log: Path | None = None
    reason: str = ""

    @property
    def is_ready(self) -> bool:
        return self.phase is JobEnvironmentPhase.READY

    def elapsed(self, now: datetime | None = None) -> str:
        """How long the install has run (or ran), in words: ``"2 min 05 s"``; "" if unknown."""
        if self.started_at is None:
            return ""
        end = self.finished_at or now or datetime.now(UTC)
        seconds = max(0, int((end - self.started_at).total_seconds()))
        return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the installer's output ("" if there is none)."""
        if self.log is None:
            return ""
        try:
            with self.log.open("rb") as file:
                file.seek(max(0, file.seek(0, os.SEEK_END) - LOG_TAIL_BYTES))
                text = file.read().decode(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def message(self) -> str:
        """What stands in the way of a job-side action, as an error message ("" when ready)."""
        log = f"log: {self.log}"
        if self.phase is JobEnvironmentPhase.INSTALLING:
            return (f"the job environment is still installing ({self.elapsed()} so far; {log}): "
                    "try again once the sidebar says it is ready")
        if self.phase is JobEnvironmentPhase.FAILED:
            return f"the job environment failed to install ({self.reason}; {log}): run scripts/setup to retry"
        if self.phase is JobEnvironmentPhase.MISSING:
            return f"the job environment is missing ({self.job_python}): run scripts/setup"
        return ""


@runtime_checkable
class RunsInJobEnvironment(Protocol):
    """A capability that starts its processes with the job environment's interpreter (the local
    backend's runner, endpoints, spot runs and functions; AWS runs them elsewhere)."""

    job_python: Path


def read_state(job_python: Path) -> JobEnvironmentState:
    """The state of the environment that ``job_python`` belongs to (never raises)."""
    folder = job_python.parent.parent
    try:
        status = json.loads((folder / STATUS_FILE).read_text())
        phase = JobEnvironmentPhase(status["phase"])
        started_at = _timestamp(status.get("started_at"))
        finished_at = _timestamp(status.get("finished_at"))
        log = Path(status["log"]) if status.get("log") else None
    except FileNotFoundError:
        return JobEnvironmentState(job_python, JobEnvironmentPhase.READY if job_python.exists()
                                   else JobEnvironmentPhase.MISSING)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return JobEnvironmentState(job_python, JobEnvironmentPhase.FAILED,
                                   reason=f"its status file {folder / STATUS_FILE} is unreadable: {exc}")
    reason = ""
    if phase is JobEnvironmentPhase.INSTALLING and not _installer_running(folder):
        phase, reason = JobEnvironmentPhase.FAILED, "the installer stopped before it finished"
    elif phase is JobEnvironmentPhase.FAILED:
        reason = "the installer reported an error"
    elif phase is JobEnvironmentPhase.READY and not job_python.exists():
        phase = JobEnvironmentPhase.MISSING
    return JobEnvironmentState(job_python, phase, started_at, finished_at, log, reason)


def require_ready(job_python: Path) -> None:
    """Refuses a job-side action while the job environment cannot run it.

    Raises:
        BackendError: the environment is still installing, failed to install, or is missing.
    """
    state = read_state(job_python)
    if not state.is_ready:
        raise BackendError(state.message())


def waiting_notice(capability: object) -> str | None:
    """A caption for the disabled button of an action the job environment is not ready for;
    None when the action can run (or the capability does not run in the job environment)."""
    if not isinstance(capability, RunsInJobEnvironment):
        return None
    state = read_state(Path(capability.job_python))
    if state.phase is JobEnvironmentPhase.INSTALLING:
        return f"Job environment still installing ({state.elapsed()} so far): this waits until it is ready."
    if state.phase is JobEnvironmentPhase.FAILED:
        return "Job environment failed to install: run scripts/setup (the sidebar shows its log)."
    if state.phase is JobEnvironmentPhase.MISSING:
        return f"Job environment missing ({state.job_python}): run scripts/setup."
    return None


def _installer_running(folder: Path) -> bool:
    """True while an installer holds the environment's lock."""
    try:
        fd = os.open(folder / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _timestamp(value: object) -> datetime | None:
    """An ISO 8601 time of the status file (``2026-12-05T13:05:00Z``), or None."""
    if not isinstance(value, str):
        return None
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
