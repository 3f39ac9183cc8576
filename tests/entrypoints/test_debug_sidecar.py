"""The rule evaluator sidecar (analysers/debug_sidecar.py) on synthetic trials.

Trials are written with smdebug in the job environment (``write_trial.py``), the sidecar
runs as the supervisor runs it, and the results are read back through ``DebugStore``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.config import DEFAULT_JOB_PYTHON, REPO_ROOT
from core.debugger import DebugStore, RuleStatus, TrialState
from core.entities import TrainingJob
from core.jobstore import JobStore
from core.types import JobStatus

SIDECAR = "analysers.debug_sidecar"
WRITER = Path(__file__).with_name("write_trial.py")
JOB = "job-1"


@pytest.fixture
def job_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "jobs" / JOB
    (folder / "input" / "config").mkdir(parents=True)
    return folder


@pytest.fixture
def store(tmp_path: Path, job_dir: Path) -> DebugStore:
    jobs = JobStore(tmp_path / "console.db")
    jobs.insert_job(TrainingJob(name=JOB, status=JobStatus.IN_PROGRESS, backend="local", created_at=time.time()),
                    job_dir=job_dir)
    return DebugStore(jobs)


def _hyperparameters(job_dir: Path, **values: str) -> None:
    (job_dir / "input" / "config" / "hyperparameters.json").write_text(json.dumps(values))


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "SAGEMAKER_"))}
    env["PYTHONPATH"] = str(REPO_ROOT)
    return env


def _write(job_dir: Path, scenario: str, *args: str) -> None:
    done = subprocess.run([str(DEFAULT_JOB_PYTHON), str(WRITER), str(job_dir / "debug-output"), scenario, *args],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def _sidecar(store: DebugStore, job_dir: Path, pid: int = 0, *, wait: bool = True) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [str(DEFAULT_JOB_PYTHON), "-m", SIDECAR, "--job-dir", str(job_dir), "--database", str(store.jobs.path),
         "--job-name", JOB, "--training-pid", str(pid), "--poll-s", "0.3"],
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    if wait:
        output, _ = process.communicate(timeout=180)
        assert process.returncode == 0, output[-3000:]
    return process


def _sidecar_beside_a_supervisor(store: DebugStore, job_dir: Path) -> int | None:
    """Runs the sidecar to its end beside a stand-in supervisor process (its command line names the job
    folder, as the real one's does); the supervisor's exit code by then (-SIGTERM: it was stopped),
    or None when it still ran."""
    supervisor = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", str(job_dir)])
    try:
        store.jobs.update_job(JOB, supervisor_pid=supervisor.pid)
        _sidecar(store, job_dir)
        try:
            return supervisor.wait(timeout=30)
        except subprocess.TimeoutExpired:
            return None
    finally:
        supervisor.kill()


def _wait_for(predicate, timeout: float = 120) -> None:  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, "timed out"
        time.sleep(0.3)


def test_healthy_trial_is_copied_and_every_default_rule_passes(store: DebugStore, job_dir: Path) -> None:
    _hyperparameters(job_dir)
    _write(job_dir, "healthy", "--end")
    _sidecar(store, job_dir)
    trial = store.trial(JOB)
    assert trial is not None and trial.state is TrialState.COMPLETE and trial.steps == 72
    rules = {r.rule: r for r in store.rules(JOB)}
    assert list(rules) == ["VanishingGradient", "ExplodingTensor", "Overfit", "Overtraining", "LossNotDecreasing",
                           "WeightUpdateRatio", "AllZero", "ClassImbalance"]
    statuses = {name: r.status for name, r in rules.items()}
    assert statuses == dict.fromkeys(rules, RuleStatus.NO_ISSUES_FOUND), {n: r.message for n, r in rules.items()}
    assert (rules["ClassImbalance"].message or "").startswith("no issue in")
    losses = store.series(JOB, "losses", ["value"])
    assert {row[1] for row in losses} == {"TRAIN", "EVAL"} and len(losses) == 72
    gradients = store.series(JOB, "gradients", ["l2", "abs_mean", "zero_fraction"], modes=["TRAIN"])
    assert sorted({row[2] for row in gradients}) == [0, 5, 10, 15, 24, 29, 34, 39, 48, 53, 58, 63]
    assert all(None not in row for row in gradients)
    weights = store.series(JOB, "weights", ["update_ratio"], tensors=["Net_layer0.weight"])
    assert weights and all(row[4] == pytest.approx(1e-3) for row in weights)
    assert [t for t, _ in store.tensors(JOB, "weights")] == ["Net_layer0.weight", "Net_layer1.weight",
                                                              "Net_layer2.weight"]


def test_reads_while_the_job_writes(store: DebugStore, job_dir: Path) -> None:
    _hyperparameters(job_dir)
    training = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        _write(job_dir, "healthy", "--stop", "30")
        sidecar = _sidecar(store, job_dir, training.pid, wait=False)
        _wait_for(lambda: (t := store.trial(JOB)) is not None and t.state is TrialState.READING and t.steps == 30)
        assert {r.status for r in store.rules(JOB)} == {RuleStatus.IN_PROGRESS}
        _write(job_dir, "healthy", "--start", "30", "--end")
        _wait_for(lambda: store.trial(JOB).steps == 72)  # type: ignore[union-attr]
        assert store.trial(JOB).state is TrialState.READING  # type: ignore[union-attr]
    finally:
        training.kill()
        training.wait()
    output, _ = sidecar.communicate(timeout=120)
    assert sidecar.returncode == 0, output[-3000:]
    trial = store.trial(JOB)
    assert trial is not None and trial.state is TrialState.COMPLETE and trial.steps == 72
    assert len(store.series(JOB, "losses", ["value"])) == 72
    assert all(r.status is RuleStatus.NO_ISSUES_FOUND for r in store.rules(JOB))


def test_missing_debug_folder_says_why(store: DebugStore, job_dir: Path) -> None:
    _hyperparameters(job_dir)
    _sidecar(store, job_dir)
    trial = store.trial(JOB)
    assert trial is not None and trial.state is TrialState.MISSING
    assert "no debug folder" in (trial.message or "") and str(job_dir / "debug-output") in (trial.message or "")
    assert {r.status for r in store.rules(JOB)} == {RuleStatus.ERROR}
    assert all("no debug folder" in (r.message or "") for r in store.rules(JOB))


def test_empty_debug_folder_says_why(store: DebugStore, job_dir: Path) -> None:
    _hyperparameters(job_dir)
    (job_dir / "debug-output").mkdir()
    _sidecar(store, job_dir)
    trial = store.trial(JOB)
    assert trial is not None and trial.state is TrialState.MISSING
    assert "holds no saved step" in (trial.message or "")


def test_debug_false_is_recorded(store: DebugStore, job_dir: Path) -> None:
    _hyperparameters(job_dir, debug="False")
    _sidecar(store, job_dir)
    trial = store.trial(JOB)
    assert trial is not None and trial.state is TrialState.DISABLED and "--debug false" in (trial.message or "")
    assert store.rules(JOB) == []


def test_a_failed_capture_is_reported(store: DebugStore, job_dir: Path) -> None:
    _hyperparameters(job_dir)
    (job_dir / "debug-output").mkdir()
    (job_dir / "debug-output" / "capture.json").write_text(json.dumps({"error": "ImportError: no smdebug"}))
    _sidecar(store, job_dir)
    trial = store.trial(JOB)
    assert trial is not None and trial.state is TrialState.FAILED and "ImportError: no smdebug" in (trial.message or "")
    assert {r.status for r in store.rules(JOB)} == {RuleStatus.ERROR}


def test_rules_without_their_data_or_with_bad_parameters_end_in_error(store: DebugStore, job_dir: Path) -> None:
    _hyperparameters(job_dir, **{"debug-rules": "DeadRelu,LossNotDecreasing(bogus=1),ClassImbalance"})
    _write(job_dir, "diverging", "--end")  # no labels, no activations
    _sidecar(store, job_dir)
    rules = {r.rule: r for r in store.rules(JOB)}
    assert rules["DeadRelu"].status is RuleStatus.ERROR and "--debug-activations true" in (rules["DeadRelu"].message or "")
    assert rules["LossNotDecreasing"].status is RuleStatus.ERROR and "bogus" in (rules["LossNotDecreasing"].message or "")
    assert rules["ClassImbalance"].status is RuleStatus.ERROR
    assert "labels, predictions" in (rules["ClassImbalance"].message or "")


def test_stop_training_action_stops_the_job(store: DebugStore, job_dir: Path) -> None:
    _hyperparameters(job_dir, **{"debug-rules": "LossNotDecreasing:stop,AllZero"})
    _write(job_dir, "diverging", "--end")
    assert _sidecar_beside_a_supervisor(store, job_dir) == -signal.SIGTERM
    rule = {r.rule: r for r in store.rules(JOB)}["LossNotDecreasing"]
    assert rule.status is RuleStatus.ISSUES_FOUND and rule.stop_training and rule.step == 10
    assert store.jobs.get_job(JOB).status is JobStatus.STOPPING
    notes = [(n.level, n.action, n.message) for n in store.notifications(JOB)]
    assert ("info", "StopTraining", "Stopping the job: LossNotDecreasing fired and its action is StopTraining") in notes
    assert any(level == "warning" and "LossNotDecreasing found an issue at step 10" in text for level, _, text in notes)


def test_stop_training_cannot_stop_a_finished_job(store: DebugStore, job_dir: Path) -> None:
    _hyperparameters(job_dir, **{"debug-rules": "LossNotDecreasing:stop"})
    _write(job_dir, "diverging", "--end")
    store.jobs.update_job(JOB, status=JobStatus.COMPLETED)
    _sidecar(store, job_dir)
    notes = [n.message for n in store.notifications(JOB) if n.level == "error"]
    assert notes == ["StopTraining of LossNotDecreasing could not stop the job: the job is already Completed"]


def test_series_are_thinned_past_the_limit() -> None:
    code = (
        "import analysers.debug_sidecar as d\n"
        "t = d.Thinner(4)\n"
        "halvings = []\n"
        "for step in range(20):\n"
        "    if t.keep(step) and t.over(): halvings.append(step)\n"
        "print(t.kept, t.stride, halvings)\n"
    )
    done = subprocess.run([str(DEFAULT_JOB_PYTHON), "-c", code], cwd=REPO_ROOT, env=_env(), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[0, 8, 16] 8 [4, 8, 16]"


def test_with_an_event_bus_a_fired_rule_goes_through_the_rule_actions(store: DebugStore, job_dir: Path,
                                                                      tmp_path: Path) -> None:
    """The sidecar puts the fired rule on the workspace's local bus; the deployed action function,
    in its own process, stops the job (SIGTERM to its supervisor, as LocalJobRunner.stop does)."""
    from core.rule_actions import ActionsSpec
    from core.rule_actions._local import LocalRuleActions
    from core.training import LocalJobRunner

    actions = LocalRuleActions(tmp_path, DEFAULT_JOB_PYTHON, LocalJobRunner(store.jobs, tmp_path / "jobs",
                                                                           DEFAULT_JOB_PYTHON))
    actions.deploy(ActionsSpec())
    _hyperparameters(job_dir, **{"debug-rules": "LossNotDecreasing:stop,AllZero", "debug-event-bus": "default"})
    _write(job_dir, "diverging", "--end")
    assert _sidecar_beside_a_supervisor(store, job_dir) == -signal.SIGTERM
    [event] = store.events(JOB)
    assert event.rule == "LossNotDecreasing" and event.event_id and event.error is None
    assert json.loads(str(event.entry["Detail"]))["step"] == 10
    [record] = actions.history(JOB)
    assert record.event_id == event.event_id
    assert [(o.action, o.outcome) for o in record.outcomes] == [("StopTrainingJob", "stopped")]
    notes = [n.message for n in store.notifications(JOB)]
    assert f"LossNotDecreasing: event {event.event_id} put on the default bus; the rule actions stop the job" in notes
    assert not any(n.startswith("Stopping the job") for n in notes)  # the evaluator left the stop to the actions
