"""The job environment's install state: the status scripts/setup writes, read by the sidebar, the
pages' job-side buttons and the local backend's refusal; then scripts/setup's job step itself."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.config import REPO_ROOT
from core.errors import BackendError
from core.job_environment import (
    LOCK_FILE,
    STATUS_FILE,
    JobEnvironmentPhase,
    JobEnvironmentState,
    read_state,
    require_ready,
    waiting_notice,
)


class _Runner:
    """Stands in for a capability that runs its processes with the job interpreter."""

    def __init__(self, job_python: Path) -> None:
        self.job_python = job_python


@pytest.fixture
def job_python(tmp_path: Path) -> Path:
    """The interpreter of a half-built environment: bin/python exists from the first seconds on."""
    python = tmp_path / "venv-job" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)
    return python


def write_status(job_python: Path, phase: str, *, log_lines: tuple[str, ...] = ("Collecting torch==2.14.1",),
                 started_at: str = "2026-12-05T13:00:00Z", finished_at: str | None = None) -> Path:
    folder = job_python.parent.parent
    log = folder / ".setup.log"
    log.write_text("".join(f"{line}\n" for line in log_lines))
    (folder / STATUS_FILE).write_text(json.dumps({"phase": phase, "started_at": started_at,
                                                  "finished_at": finished_at, "log": str(log)}))
    return log


@pytest.fixture
def installer(job_python: Path) -> Iterator[None]:
    """Holds the environment's lock, as a running scripts/setup does."""
    fd = os.open(job_python.parent.parent / LOCK_FILE, os.O_WRONLY | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    yield
    os.close(fd)


def test_an_interpreter_no_installer_records_is_ready_if_it_exists(job_python: Path, tmp_path: Path) -> None:
    assert read_state(job_python).is_ready
    require_ready(job_python)
    assert waiting_notice(_Runner(job_python)) is None
    missing = read_state(tmp_path / "nowhere" / "bin" / "python")
    assert missing.phase is JobEnvironmentPhase.MISSING
    with pytest.raises(BackendError, match=r"job environment is missing .*: run scripts/setup"):
        require_ready(missing.job_python)
    assert "Job environment missing" in (waiting_notice(_Runner(missing.job_python)) or "")


def test_a_half_built_environment_is_still_installing(job_python: Path, installer: None) -> None:
    write_status(job_python, "installing", log_lines=("Collecting smdebug==1.0.34", "Collecting torch==2.14.1"))
    state = read_state(job_python)
    assert state.phase is JobEnvironmentPhase.INSTALLING and not state.is_ready
    assert state.log_tail(1) == "Collecting torch==2.14.1"
    with pytest.raises(BackendError, match="job environment is still installing") as refused:
        require_ready(job_python)
    assert str(state.log) in str(refused.value)
    notice = waiting_notice(_Runner(job_python))
    assert notice is not None and notice.startswith("Job environment still installing")


def test_an_install_nobody_runs_any_more_failed(job_python: Path) -> None:
    write_status(job_python, "installing")  # the installer was killed: its lock went with it
    state = read_state(job_python)
    assert state.phase is JobEnvironmentPhase.FAILED
    assert state.reason == "the installer stopped before it finished"
    with pytest.raises(BackendError, match=r"failed to install .*run scripts/setup to retry"):
        require_ready(job_python)


def test_a_failed_install_shows_the_end_of_its_log(job_python: Path) -> None:
    lines = (*(f"line {n}" for n in range(100)), "ERROR: No matching distribution found for torch==9")
    write_status(job_python, "failed", log_lines=lines, finished_at="2026-12-05T13:02:05Z")
    state = read_state(job_python)
    assert state.phase is JobEnvironmentPhase.FAILED
    assert state.log_tail().splitlines() == [*lines[-20:]]
    assert state.elapsed() == "2 min 05 s"
    assert "failed to install" in (waiting_notice(_Runner(job_python)) or "")


def test_a_finished_install_is_ready(job_python: Path) -> None:
    write_status(job_python, "ready", finished_at="2026-12-05T13:00:42Z")
    state = read_state(job_python)
    assert state.is_ready and state.elapsed() == "42 s"
    assert state.finished_at == datetime(2026, 12, 5, 13, 0, 42, tzinfo=UTC)
    require_ready(job_python)
    assert waiting_notice(_Runner(job_python)) is None


def test_an_unreadable_status_is_a_failure_that_names_the_file(job_python: Path) -> None:
    (job_python.parent.parent / STATUS_FILE).write_text('{"phase": "install')
    state = read_state(job_python)
    assert state.phase is JobEnvironmentPhase.FAILED and STATUS_FILE in state.reason


def test_capabilities_that_run_elsewhere_never_wait(job_python: Path, installer: None) -> None:
    write_status(job_python, "installing")
    assert waiting_notice(object()) is None  # e.g. a SageMaker runner: it has no job interpreter here


def test_elapsed_counts_until_now_while_installing(job_python: Path) -> None:
    state = JobEnvironmentState(job_python, JobEnvironmentPhase.INSTALLING,
                                started_at=datetime(2026, 12, 5, 13, 0, tzinfo=UTC))
    assert state.elapsed(datetime(2026, 12, 5, 13, 3, 7, tzinfo=UTC)) == "3 min 07 s"
    assert JobEnvironmentState(job_python, JobEnvironmentPhase.READY).elapsed() == ""


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of scripts/setup beside requirements that install nothing (pip needs no index for them)."""
    root = tmp_path / "checkout"
    (root / "scripts").mkdir(parents=True)
    (root / "entrypoints").mkdir()
    shutil.copy2(REPO_ROOT / "scripts" / "setup", root / "scripts" / "setup")
    (root / "requirements-job.txt").write_text("# nothing\n")
    (root / "entrypoints" / "requirements.txt").write_text("# nothing\n")
    return root


def _setup_job(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(root / "scripts" / "setup"), "job"], capture_output=True, text=True, timeout=300)


def test_setup_records_the_install_for_the_app_and_builds_once(checkout: Path) -> None:
    built = _setup_job(checkout)
    assert built.returncode == 0, built.stderr
    assert "building .venv-job" in built.stdout
    job_python = checkout / ".venv-job" / "bin" / "python"
    state = read_state(job_python)
    assert state.is_ready and state.started_at and state.finished_at
    assert state.log == checkout / ".venv-job" / ".setup.log"
    again = _setup_job(checkout)  # same requirements: nothing to do
    assert again.returncode == 0 and "building" not in again.stdout
    (checkout / "entrypoints" / "requirements.txt").write_text("./no-such-package\n")
    failed = _setup_job(checkout)
    assert failed.returncode != 0
    assert "no-such-package" in failed.stderr  # the end of the log, for CI
    state = read_state(job_python)
    assert state.phase is JobEnvironmentPhase.FAILED and "no-such-package" in state.log_tail()
