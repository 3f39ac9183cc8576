"""The JobAnalysis contract (core/analysis.py), held to the same assertions on both backends.

A job trains ``entrypoints/train.py`` for real (one short epoch of the demo digits) with the
Debugger and the Profiler on; whatever runs the analysis (locally the sidecars beside the job;
on aws the console's own evaluators, reading what the job uploaded to S3 from a SageMaker
job run by the stand-in in container mode), the job store ends with the same things: a complete
trial with its rules and loss series, and a final profiler summary. A job that fails before its
first step ends its analysis too, with the reason. Pages call ``ensure_analysed`` on every
render, so it must be idempotent: nothing is started twice, nothing is restarted once concluded.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.analysis import AnalysisNotes
from core.backend import Backend
from core.config import DEFAULT_JOB_PYTHON
from core.datasets.demo import write_demo_folder
from core.debugger import DebugStore, TrialState
from core.entities import TrainingJob
from core.profiler import ProfilerStore
from core.training import TrainingJobSpec
from core.types import BackendKind, JobStatus
from tests.standins.containers import LocalContainers
from tests.standins.sagemaker import SageMakerStandIn

pytestmark = pytest.mark.slow
WAIT_S = 600.0
"""How long a job and its analysis may take before a test gives up (a guard against hangs, not a measure)."""
IMAGES_PER_CLASS = {"train": 12, "valid": 4, "test": 4}
HYPERPARAMETERS = {"epochs": 1, "batch-size": 16, "max-steps-per-epoch": 4, "image-size": 32, "num-workers": 0,
                   "pretrained": "false", "debug-save-interval": 1, "profile-window": "0:1"}
TRIAL_ENDED = (TrialState.COMPLETE, TrialState.MISSING, TrialState.FAILED, TrialState.DISABLED)
PROFILE_ENDED = ("complete", "failed")


@pytest.fixture
def local_job_python() -> Path:
    """Local jobs train with torch: the job environment's interpreter."""
    return DEFAULT_JOB_PYTHON


@pytest.fixture(scope="module")
def sagemaker_stand_in(moto_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SageMakerStandIn]:
    """SageMaker in container mode for this module: its jobs run train.py and upload what they write."""
    containers = LocalContainers(job_python=DEFAULT_JOB_PYTHON, workdir=tmp_path_factory.mktemp("containers"),
                                 log_flush_s=0.2)
    with SageMakerStandIn(moto_url, containers=containers) as stand_in:
        yield stand_in


@pytest.fixture(scope="module")
def small_digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few demo digits per class and split: enough for an epoch of 4 steps."""
    folder = write_demo_folder(tmp_path_factory.mktemp("demo") / "digits", image_size=32)
    for split, keep in IMAGES_PER_CLASS.items():
        for label in (folder / split).iterdir():
            for extra in sorted(label.iterdir())[keep:]:
                extra.unlink()
    return folder


def _start(backend: Backend, name: str, dataset: Path) -> TrainingJob:
    data_uri = backend.storage.put_folder(dataset, f"datasets/{dataset.name}")
    return backend.runner.start(TrainingJobSpec(name=name, inputs={"training": data_uri},
                                                hyperparameters=dict(HYPERPARAMETERS)))


def _analysed(backend: Backend, name: str) -> tuple[TrainingJob, AnalysisNotes]:
    """Shows the job to the analysis as a page does, every second, until the job and its analysis have ended."""
    debug, profile = DebugStore(backend.store), ProfilerStore(backend.store)
    deadline = time.monotonic() + WAIT_S
    while True:
        job = backend.runner.describe(name)
        notes = backend.analysis.ensure_analysed(job)
        trial = debug.trial(name)
        summary = profile.documents(name).get("summary", {})
        if (job.status.is_terminal and trial is not None and trial.state in TRIAL_ENDED
                and summary.get("state") in PROFILE_ENDED):
            return job, notes
        assert time.monotonic() < deadline, (job.status, trial, summary.get("state"), backend.runner.log_tail(name))
        time.sleep(1.0)


def test_a_trained_jobs_trial_and_profile_are_analysed_once(backend: Backend, small_digits: Path) -> None:
    _start(backend, "analysed-1", small_digits)

    job, _ = _analysed(backend, "analysed-1")

    assert job.status is JobStatus.COMPLETED, (job.failure_reason, backend.runner.log_tail("analysed-1"))
    debug = DebugStore(backend.store)
    trial = debug.trial("analysed-1")
    assert trial is not None and trial.state is TrialState.COMPLETE and trial.steps > 0, trial
    rules = debug.rules("analysed-1")
    assert rules and all(r.status.value != "Error" for r in rules), {r.rule: r.message for r in rules}
    assert debug.series("analysed-1", "losses", ["value"], modes=["TRAIN"])
    summary = ProfilerStore(backend.store).documents("analysed-1")["summary"]
    assert summary["state"] == "complete" and summary["samples"] > 0 and summary["steps"] > 0, summary
    updated = ProfilerStore(backend.store).updated_at("analysed-1")
    again = backend.analysis.ensure_analysed(job)  # a page shows the job again: nothing restarts
    assert not again.debugger_reading and not again.profiler_reading
    assert debug.trial("analysed-1") == trial and ProfilerStore(backend.store).updated_at("analysed-1") == updated


def test_a_job_that_fails_before_its_first_step_ends_its_analysis_with_the_reason(
    backend: Backend, small_digits: Path, tmp_path: Path
) -> None:
    no_train = tmp_path / "no-train"
    shutil.copytree(small_digits / "valid", no_train / "valid")  # train.py needs train/: it fails at start-up

    _start(backend, "unanalysable-1", no_train)
    job, notes = _analysed(backend, "unanalysable-1")

    assert job.status is JobStatus.FAILED
    assert not notes.debugger_reading and not notes.profiler_reading
    trial = DebugStore(backend.store).trial("unanalysable-1")
    assert trial is not None and trial.state is TrialState.MISSING and trial.message, trial
    assert trial.steps == 0


def test_a_job_of_two_instances_is_analysed_from_its_first_host(backend: Backend, small_digits: Path) -> None:
    """Data-parallel training: the first host (rank 0) records the trial and the profile for the job."""
    data_uri = backend.storage.put_folder(small_digits, f"datasets/{small_digits.name}")
    backend.runner.start(TrainingJobSpec(name="analysed-2", inputs={"training": data_uri},
                                         hyperparameters=dict(HYPERPARAMETERS), instance_count=2))

    job, _ = _analysed(backend, "analysed-2")

    assert job.status is JobStatus.COMPLETED, (job.failure_reason, backend.runner.log_tail("analysed-2"))
    log = backend.runner.log_tail("analysed-2")
    assert any(" processes=2 " in line for line in log)
    if backend.settings.backend is BackendKind.AWS:  # one stream per host, merged: "[algo-2-<epoch s>] ..."
        assert any(line.startswith("[algo-2-") and "rank 1 of 2" in line for line in log), log
    debug = DebugStore(backend.store)
    trial = debug.trial("analysed-2")
    assert trial is not None and trial.state is TrialState.COMPLETE and trial.steps > 0, trial
    assert debug.series("analysed-2", "losses", ["value"], modes=["TRAIN"])
    summary = ProfilerStore(backend.store).documents("analysed-2")["summary"]
    assert summary["state"] == "complete" and summary["samples"] > 0 and summary["steps"] > 0, summary
