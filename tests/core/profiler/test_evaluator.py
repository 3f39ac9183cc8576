"""Profiler analysis of SageMaker jobs on the console's machine: the sidecar mirrors the output the
script uploaded to S3 and asks SageMaker whether the job still runs (moto's server on 127.0.0.1
stands in for both)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.config import Settings
from core.entities import TrainingJob
from core.jobstore import JobStore
from core.profiler import ProfilerStore, load_profile
from core.profiler.evaluator import SageMakerProfilerAnalysers, profile_out_uri
from core.sidecars import PID_FILE
from core.types import JobStatus
from tests.entrypoints.test_profiler_sidecar import (  # noqa: F401  (moto_endpoint_fixture registers moto_endpoint)
    create_training_job,
    moto_endpoint_fixture,
    upload_folder,
    write_profile,
)

JOB = "sm-digits-1"
TEMPLATE = "s3://bucket/sm-console/jobs/{job_name}/profiler-output"


def _job(**hyperparameters: str) -> TrainingJob:
    return TrainingJob(name=JOB, status=JobStatus.COMPLETED, backend="aws", created_at=time.time(),
                       hyperparameters=hyperparameters)


@pytest.fixture
def analysers(tmp_path: Path) -> Iterator[SageMakerProfilerAnalysers]:
    """The analysers of a fresh workspace; an analysis still running at the end (a failed test) is killed."""
    store = ProfilerStore(JobStore(tmp_path / "console.db"))
    settings = Settings(workspace=tmp_path / "workspace", region="us-east-1", analysis_poll_s=0.1)
    started = SageMakerProfilerAnalysers(settings, store)
    yield started
    if started.processes.running(JOB):
        os.kill(int((started.processes.folder(JOB) / PID_FILE).read_text().split()[0]), signal.SIGKILL)


def test_the_output_location_comes_from_the_jobs_hyperparameters() -> None:
    expected = f"s3://bucket/sm-console/jobs/{JOB}/profiler-output"
    assert profile_out_uri(_job(**{"profile-out-dir": TEMPLATE})) == expected
    assert profile_out_uri(_job(**{"profile-out-dir": TEMPLATE, "profile": "false"})) is None
    assert profile_out_uri(_job(**{"profile-out-dir": "/opt/ml/output/profiler"})) is None  # inside the container
    assert profile_out_uri(_job()) is None


def test_a_job_without_an_upload_location_starts_nothing(analysers: SageMakerProfilerAnalysers, tmp_path: Path) -> None:
    assert analysers.ensure_running(_job(epochs="2")) == "no data location"
    assert not (tmp_path / "workspace").exists()


def test_a_finished_sagemaker_job_is_analysed_once_from_its_s3_output(
        moto_endpoint: str, analysers: SageMakerProfilerAnalysers, tmp_path: Path) -> None:
    local = tmp_path / "uploaded"
    write_profile(local, samples=30, steps=12)
    upload_folder(local, f"s3://bucket/sm-console/jobs/{JOB}/profiler-output")
    create_training_job(JOB, **{"profile-out-dir": TEMPLATE})
    store = analysers.store
    job = _job(**{"profile-out-dir": TEMPLATE})

    answers: list[str] = []
    callers = [threading.Thread(target=lambda: answers.append(analysers.ensure_running(job))) for _ in range(4)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    assert answers.count("started") == 1 and set(answers) <= {"started", "running", "concluded"}, answers
    deadline = time.time() + 120
    while analysers.processes.running(JOB) or (view := load_profile(store, JOB)) is None or view.is_collecting:
        assert time.time() < deadline, "\n".join(analysers.log_tail(JOB))
        time.sleep(0.2)
    assert view.summary["state"] == "complete", view.errors
    assert view.summary["samples"] == 30 and view.summary["steps"] == 12
    assert [f.rule for f in view.fired] == ["Dataloader"]
    assert store.report_html(JOB)
    assert "profiler analysis done" in "\n".join(analysers.log_tail(JOB))
    assert analysers.ensure_running(job) == "concluded"


def test_a_pid_file_naming_another_process_is_not_a_running_analysis(analysers: SageMakerProfilerAnalysers) -> None:
    name = "pid-reuse"  # not JOB: the fixture must never kill this test's own process
    folder = analysers.processes.folder(name)
    folder.mkdir(parents=True)
    fields = Path(f"/proc/{os.getpid()}/stat").read_text().rsplit(")", 1)[-1].split()
    (folder / PID_FILE).write_text(f"{os.getpid()} {fields[19]}")
    assert analysers.processes.running(name)
    (folder / PID_FILE).write_text(f"{os.getpid()} {int(fields[19]) + 1}")  # the pid, reused by another process
    assert not analysers.processes.running(name)
