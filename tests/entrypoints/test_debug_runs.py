"""Real training runs on the digits demo, judged by the Debugger's rule evaluator.

Each test starts ``train.py`` as a local job (``LocalJobRunner`` with the debug sidecar), as
the console does, and reads the rule results from the job store: a healthy default run ends
NoIssuesFound on every default rule; lr=10 fires LossNotDecreasing (or ExplodingTensor) and,
with StopTraining on, is stopped by it; lr=1e-7 fires LossNotDecreasing.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from core.config import DEFAULT_JOB_PYTHON
from core.datasets import write_demo_folder
from core.debugger import DebugStore, RuleStatus, TrialState
from core.entities import TrainingJob
from core.jobstore import JobStore
from core.training import LocalJobRunner, TrainingJobSpec
from core.types import JobStatus

pytestmark = pytest.mark.slow

SHORT = {"epochs": 2, "max-steps-per-epoch": 20, "image-size": 32, "num-workers": 0, "batch-size": 32, "seed": 42}
DEFAULT_RULES = ["VanishingGradient", "ExplodingTensor", "Overfit", "Overtraining", "LossNotDecreasing",
                 "WeightUpdateRatio", "AllZero", "ClassImbalance"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_folder(tmp_path_factory.mktemp("demo") / "digits", image_size=32)


@pytest.fixture
def runner(tmp_path: Path) -> LocalJobRunner:
    store = JobStore(tmp_path / "console.db")
    return LocalJobRunner(store, tmp_path / "jobs", DEFAULT_JOB_PYTHON, sidecars=[("-m", "analysers.debug_sidecar")])


def _run(runner: LocalJobRunner, demo: Path, name: str, **hyperparameters: object) -> TrainingJob:
    spec = TrainingJobSpec(name=name, inputs={"training": demo.as_uri()},
                           hyperparameters={**SHORT, **hyperparameters})  # type: ignore[dict-item]
    runner.start(spec)
    deadline = time.time() + 900
    while not (job := runner.describe(name)).status.is_terminal:
        assert time.time() < deadline, runner.log_tail(name, 30)
        time.sleep(1)
    return job


def _rules(runner: LocalJobRunner, name: str) -> dict[str, RuleStatus]:
    return {r.rule: r.status for r in DebugStore(runner.store).rules(name)}


def test_healthy_run_passes_every_default_rule(runner: LocalJobRunner, demo: Path) -> None:
    job = _run(runner, demo, "healthy")
    assert job.status is JobStatus.COMPLETED, job.failure_reason
    store = DebugStore(runner.store)
    trial = store.trial("healthy")
    assert trial is not None and trial.state is TrialState.COMPLETE and trial.steps > 40
    results = {r.rule: r for r in store.rules("healthy")}
    assert list(results) == DEFAULT_RULES
    assert all(r.status is RuleStatus.NO_ISSUES_FOUND for r in results.values()), {n: r.message for n, r in results.items()}
    assert all((r.message or "").startswith("no issue in") for r in results.values())
    assert store.notifications("healthy") == []


def test_lr_10_is_stopped_by_its_rule(runner: LocalJobRunner, demo: Path) -> None:
    job = _run(runner, demo, "diverging", lr=10, epochs=4, **{"debug-rules": "ExplodingTensor:stop,LossNotDecreasing:stop"})
    assert job.status is JobStatus.STOPPED, job.failure_reason
    store = DebugStore(runner.store)
    fired = [r for r in store.rules("diverging") if r.status is RuleStatus.ISSUES_FOUND]
    assert fired and fired[0].rule in ("ExplodingTensor", "LossNotDecreasing") and fired[0].stop_training
    assert any(n.action == "StopTraining" and n.message.startswith("Stopping the job") for n in store.notifications("diverging"))
    assert "epoch=4/4" not in "\n".join(runner.log_tail("diverging", 400))


def test_tiny_learning_rate_fires_loss_not_decreasing(runner: LocalJobRunner, demo: Path) -> None:
    job = _run(runner, demo, "stalled", lr=1e-7)
    assert job.status is JobStatus.COMPLETED, job.failure_reason
    assert _rules(runner, "stalled")["LossNotDecreasing"] is RuleStatus.ISSUES_FOUND
