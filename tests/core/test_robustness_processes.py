"""An app restart while work runs: a training job and a tuning job keep running under their
detached supervisors and finish; a stop asked for after the supervisor was killed still ends
the job. (SIGKILL of the training process, of a job's or a tuning job's supervisor and of an
endpoint server are in the runner, tuner and endpoint tests.)"""

from __future__ import annotations

import os
import signal
import stat
import sys
import textwrap
import time
from pathlib import Path

import pytest

from core.jobstore import JobStore
from core.processes import is_process_alive
from core.training import LocalJobRunner, TrainingJobSpec
from core.tuning import ContinuousRange, LocalTuner, TrialStatus, TuningJobSpec
from core.types import JobStatus
from tests.core.tuning.test_local_tuner import FAKE_PYTHON

SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    print("started", flush=True)
    time.sleep(float(sys.argv[sys.argv.index("--sleep") + 1]))
    print("epoch=1/1 train_loss=0.5000 valid_acc=0.9000", flush=True)
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.pth"), "w") as f:
        f.write("weights")
    """
)


@pytest.fixture
def spec(tmp_path: Path) -> TrainingJobSpec:
    source = tmp_path / "src"
    source.mkdir()
    (source / "train.py").write_text(SCRIPT)
    (tmp_path / "data" / "train").mkdir(parents=True)
    return TrainingJobSpec(name="survivor", inputs={"training": (tmp_path / "data").as_uri()},
                           hyperparameters={"sleep": 3}, source_dir=source)


def restarted(runner: LocalJobRunner) -> LocalJobRunner:
    """A new runner over the same store and folders: what a restarted app builds."""
    return LocalJobRunner(JobStore(runner.store.path), runner.jobs_root, runner.job_python)


def wait_terminal(runner: LocalJobRunner, name: str, timeout: float = 60.0) -> JobStatus:
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = runner.describe(name)
        if job.status.is_terminal:
            return job.status
        time.sleep(0.2)
    raise AssertionError(f"still {runner.describe(name)}")


def wait_for_log(runner: LocalJobRunner, name: str, text: str, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while not any(text in line for line in runner.log_tail(name)):
        assert time.time() < deadline, runner.log_tail(name)
        time.sleep(0.1)


def test_app_restart_during_a_training_job_leaves_it_running_to_completion(tmp_path: Path,
                                                                           spec: TrainingJobSpec) -> None:
    first = LocalJobRunner(JobStore(tmp_path / "ws" / "console.db"), tmp_path / "ws" / "jobs", Path(sys.executable))
    first.start(spec)
    wait_for_log(first, "survivor", "started")
    second = restarted(first)  # nothing of the job belonged to the app process that started it
    job = second.describe("survivor")
    assert job.status is JobStatus.IN_PROGRESS and job.failure_reason is None
    assert wait_terminal(second, "survivor") is JobStatus.COMPLETED
    assert second.describe("survivor").final_metrics == {"train:loss": 0.5, "validation:accuracy": 0.9}


def test_stop_after_the_supervisor_was_killed_ends_the_job_and_its_process(tmp_path: Path,
                                                                          spec: TrainingJobSpec) -> None:
    runner = LocalJobRunner(JobStore(tmp_path / "ws" / "console.db"), tmp_path / "ws" / "jobs", Path(sys.executable))
    runner.start(TrainingJobSpec(name="orphan", inputs=spec.inputs, hyperparameters={"sleep": 120},
                                 source_dir=spec.source_dir))
    wait_for_log(runner, "orphan", "started")
    runtime = runner.store.job_runtime("orphan")
    runner.store.update_job("orphan", status=JobStatus.STOPPING)  # the user pressed Stop ...
    os.kill(runtime["supervisor_pid"], signal.SIGKILL)  # ... and the supervisor died before acting on it
    time.sleep(0.5)
    assert restarted(runner).describe("orphan").status is JobStatus.STOPPED
    deadline = time.time() + 10
    while is_process_alive(runtime["worker_pid"], runtime["job_dir"]) and time.time() < deadline:
        time.sleep(0.1)
    assert not is_process_alive(runtime["worker_pid"], runtime["job_dir"])  # no training process left behind


def test_app_restart_during_a_tuning_job_leaves_it_running_to_completion(tmp_path: Path) -> None:
    fake = tmp_path / "fake-python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    (tmp_path / "data" / "train").mkdir(parents=True)
    workspace = tmp_path / "ws"
    first = LocalTuner(LocalJobRunner(JobStore(workspace / "console.db"), workspace / "jobs", fake, sidecars=()), workspace)
    first.start(TuningJobSpec(name="survivor", inputs={"training": (tmp_path / "data").as_uri()}, max_jobs=2,
                              max_parallel_jobs=1, ranges=[ContinuousRange("lr", 1e-4, 1e-2)],
                              static_hyperparameters={"epochs": 2}))
    deadline = time.time() + 60
    while not first.trials("survivor") and time.time() < deadline:
        time.sleep(0.2)
    second = LocalTuner(restarted(first.runner), workspace)
    assert second.describe("survivor").status is JobStatus.IN_PROGRESS
    deadline = time.time() + 120
    while not (job := second.describe("survivor")).status.is_terminal:
        assert time.time() < deadline, second.trials("survivor")
        time.sleep(0.3)
    assert job.status is JobStatus.COMPLETED, job.failure_reason
    assert [t.status for t in second.trials("survivor")] == [TrialStatus.COMPLETED] * 2
