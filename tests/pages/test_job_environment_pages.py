"""While scripts/start builds the job environment in the background: the sidebar shows its
progress (or the end of its log when it failed) and job-side actions wait for it."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.backend import Backend
from core.job_environment import LOCK_FILE, STATUS_FILE
from tests.pages.conftest import open_page
from tests.pages.test_training_page import add_dataset


@pytest.fixture
def job_python(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    python = tmp_path / "venv-job" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)
    monkeypatch.setenv("SMC_JOB_PYTHON", str(python))
    return python


def _status(job_python: Path, phase: str, *log_lines: str) -> None:
    folder = job_python.parent.parent
    (folder / ".setup.log").write_text("".join(f"{line}\n" for line in log_lines))
    (folder / STATUS_FILE).write_text(json.dumps({"phase": phase, "started_at": "2026-12-05T13:00:00Z",
                                                  "finished_at": None, "log": str(folder / ".setup.log")}))


@pytest.fixture
def installing(job_python: Path) -> Iterator[None]:
    """An install under way: its status says so and its lock is held."""
    fd = os.open(job_python.parent.parent / LOCK_FILE, os.O_WRONLY | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    _status(job_python, "installing", "Collecting smdebug==1.0.34", "Collecting torch==2.14.1")
    yield
    os.close(fd)


def test_training_waits_for_the_job_environment(local_backend: Backend, tmp_path: Path, installing: None) -> None:
    add_dataset(local_backend, tmp_path)
    at = open_page("training")
    assert not at.exception
    assert any(i.value.startswith("Job environment installing") for i in at.sidebar.info)
    assert "Collecting torch==2.14.1" in [c.value for c in at.sidebar.caption]
    start = next(b for b in at.button if b.label == "Start training")
    assert start.disabled
    assert any(c.value.startswith("Job environment still installing") for c in at.main.caption)


def test_a_failed_install_shows_its_log_and_training_stays_off(local_backend: Backend, tmp_path: Path,
                                                              job_python: Path) -> None:
    _status(job_python, "failed", "Collecting torch==2.14.1", "ERROR: No space left on device")
    add_dataset(local_backend, tmp_path)
    at = open_page("training")
    assert not at.exception
    assert any("failed to install" in e.value for e in at.sidebar.error)
    assert any("No space left on device" in c.value for c in at.sidebar.code)
    assert next(b for b in at.button if b.label == "Start training").disabled


def test_once_ready_training_can_start(local_backend: Backend, tmp_path: Path, job_python: Path) -> None:
    _status(job_python, "ready", "Successfully installed torch-2.14.1")
    add_dataset(local_backend, tmp_path)
    at = open_page("training")
    assert not at.exception
    assert not at.sidebar.info and not at.sidebar.error
    assert not next(b for b in at.button if b.label == "Start training").disabled


@pytest.mark.parametrize(("page", "label"), [("tuning", "Launch tuning job"), ("spot", "Launch")])
def test_other_job_side_launches_wait_too(local_backend: Backend, tmp_path: Path, installing: None,
                                         page: str, label: str) -> None:
    add_dataset(local_backend, tmp_path)
    at = open_page(page)
    assert not at.exception
    assert next(b for b in at.button if b.label == label).disabled


def test_the_end_of_the_install_enables_training(local_backend: Backend, tmp_path: Path, job_python: Path,
                                                 installing: None) -> None:
    add_dataset(local_backend, tmp_path)
    at = open_page("training")
    assert next(b for b in at.button if b.label == "Start training").disabled
    _status(job_python, "ready", "Successfully installed torch-2.14.1")
    at.run()  # what the sidebar's poll does when it sees the change
    assert not at.exception
    assert any(s.value.startswith("Job environment ready") for s in at.sidebar.success)
    assert not next(b for b in at.button if b.label == "Start training").disabled
