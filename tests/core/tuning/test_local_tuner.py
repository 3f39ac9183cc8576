"""The local tuner end to end with a stand-in job interpreter (no torch): real supervisor,
real Optuna, real training-job records. The stand-in's accuracy depends on the sampled
hyperparameters, so the search has something to find and the pruner something to prune."""

from __future__ import annotations

import json
import os
import signal
import stat
import sys
import textwrap
import time
from pathlib import Path

import pytest

from core.errors import AlreadyExistsError, InvalidInputError
from core.jobstore import JobStore
from core.training import LocalJobRunner
from core.tuning import (
    CategoricalRange,
    ContinuousRange,
    EarlyStopping,
    LocalTuner,
    Strategy,
    TrialStatus,
    TuningJobSpec,
)
from core.types import JobStatus

# Stands in for the job environment's python: ignores the script path it is given and acts
# like a training script whose validation accuracy depends on --lr and --optimizer.
FAKE_PYTHON = textwrap.dedent(
    f"""\
    #!{sys.executable}
    import argparse, math, os, sys, time
    parser = argparse.ArgumentParser()
    parser.add_argument("script")
    parser.add_argument("--lr", type=float, default=0.001)
    parser.add_argument("--optimizer", default="adamw")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--mode", default="ok")
    args, _ = parser.parse_known_args()
    if args.mode == "crash" or args.lr > 0.5:
        print("ERROR: diverged", flush=True)
        sys.exit(1)
    print(f"SM_NUM_CPUS={{os.environ['SM_NUM_CPUS']}}", flush=True)
    quality = max(0.0, 1.0 - abs(math.log10(args.lr) + 3) / 4) * (0.3 if args.optimizer == "sgd" else 1.0)
    for epoch in range(1, args.epochs + 1):
        acc = quality * epoch / args.epochs
        if args.mode == "silent":
            print(f"epoch={{epoch}} nothing to scrape", flush=True)
        else:
            print(f"epoch={{epoch}}/{{args.epochs}} train_loss={{1 - acc:.4f}} valid_acc={{acc:.4f}}", flush=True)
        time.sleep(float(os.environ.get("FAKE_EPOCH_S", "0.05")) * (3 if args.optimizer == "sgd" else 1))
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.pth"), "w") as f:
        f.write("w")
    """
)


@pytest.fixture
def tuner(tmp_path: Path) -> LocalTuner:
    fake = tmp_path / "fake-python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    workspace = tmp_path / "ws"
    runner = LocalJobRunner(JobStore(workspace / "console.db"), workspace / "jobs", fake, sidecars=())
    return LocalTuner(runner, workspace)


@pytest.fixture
def data_uri(tmp_path: Path) -> str:
    (tmp_path / "data" / "train").mkdir(parents=True)
    return (tmp_path / "data").as_uri()


def wait_terminal(tuner: LocalTuner, name: str, timeout: float = 120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = tuner.describe(name)
        if job.status.is_terminal:
            return job
        time.sleep(0.3)
    raise AssertionError(f"tuning job still {tuner.describe(name)}; trials {tuner.trials(name)}")


def test_bayesian_search_runs_every_trial_and_finds_the_best(tuner: LocalTuner, data_uri: str) -> None:
    spec = TuningJobSpec(name="bayes", inputs={"training": data_uri}, max_jobs=5, max_parallel_jobs=2,
                         ranges=[ContinuousRange("lr", 1e-5, 1e-1)], static_hyperparameters={"epochs": 2})
    assert tuner.start(spec).status is JobStatus.IN_PROGRESS
    job = wait_terminal(tuner, "bayes")
    assert job.status is JobStatus.COMPLETED, job.failure_reason
    trials = tuner.trials("bayes")
    assert [t.job_name for t in trials] == [f"bayes-{i:03d}" for i in range(1, 6)]
    assert all(t.status is TrialStatus.COMPLETED and t.epochs_run == 2 for t in trials)
    best = tuner.best_trial("bayes")
    assert best is not None
    assert best.trial.objective == max(t.objective for t in trials)
    assert job.best_job_name == best.trial.job_name and job.best_objective == best.trial.objective
    assert best.hyperparameters["epochs"] == "2"
    assert best.hyperparameters["lr"] == best.trial.hyperparameters["lr"]
    assert best.training_job.status is JobStatus.COMPLETED
    assert job.counts == {"Completed": 5}


@pytest.mark.parametrize(("cpus", "share"), [(None, max(1, (os.cpu_count() or 1) // 2)), (4, 2), (1, 1)])
def test_trials_running_together_share_the_cpus(tmp_path: Path, data_uri: str, cpus: int | None, share: int) -> None:
    """Each trial's SM_NUM_CPUS (its torch threads) is its share of the CPUs the local jobs have
    (Settings.job_cpus; None: the machine's), not all of them: more threads than cores cost far
    more than they give (core.training.layout.cpu_share)."""
    fake = tmp_path / "fake-python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    workspace = tmp_path / "ws"
    runner = LocalJobRunner(JobStore(workspace / "console.db"), workspace / "jobs", fake, sidecars=(), cpus=cpus)
    tuner = LocalTuner(runner, workspace)
    tuner.start(TuningJobSpec(name="shared", inputs={"training": data_uri}, max_jobs=2, max_parallel_jobs=2,
                              ranges=[ContinuousRange("lr", 1e-4, 1e-2)], static_hyperparameters={"epochs": 1}))
    assert wait_terminal(tuner, "shared").status is JobStatus.COMPLETED
    for trial in tuner.trials("shared"):
        assert f"SM_NUM_CPUS={share}" in runner.log_tail(trial.job_name)


def test_tuning_jobs_started_together_on_a_fresh_workspace_each_have_their_own_study(
    tuner: LocalTuner, data_uri: str, tmp_path: Path
) -> None:
    """Supervisors started at once used to share one fresh SQLite file and race to create Optuna's
    schema (``UNIQUE constraint failed: alembic_version``): one tuning job failed."""
    names = [f"together-{i}" for i in range(4)]
    for name in names:
        tuner.start(TuningJobSpec(name=name, inputs={"training": data_uri}, max_jobs=1, max_parallel_jobs=1,
                                  ranges=[ContinuousRange("lr", 1e-4, 1e-2)], static_hyperparameters={"epochs": 1}))

    for name in names:
        job = wait_terminal(tuner, name)
        assert job.status is JobStatus.COMPLETED, job.failure_reason
    assert sorted(p.name for p in (tmp_path / "ws" / "optuna").glob("*.db")) == [f"{name}.db" for name in names]


def test_early_stopping_prunes_weak_trials(tuner: LocalTuner, data_uri: str, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_EPOCH_S", "0.6")
    spec = TuningJobSpec(
        name="prune", inputs={"training": data_uri}, strategy=Strategy.GRID, max_jobs=4, max_parallel_jobs=1,
        ranges=[CategoricalRange("optimizer", ("adamw", "sgd")), CategoricalRange("lr", ("0.001", "0.0001"))],
        static_hyperparameters={"epochs": 4}, early_stopping=EarlyStopping.AUTO,
    )
    tuner.start(spec)
    job = wait_terminal(tuner, "prune", timeout=180)
    trials = tuner.trials("prune")
    pruned = [t for t in trials if t.status is TrialStatus.PRUNED]
    assert pruned, trials
    assert all(t.hyperparameters["optimizer"] == "sgd" or t.hyperparameters["lr"] == "0.0001" for t in pruned)
    assert all(t.epochs_run < 4 for t in pruned)
    assert job.status is JobStatus.COMPLETED
    assert tuner.runner.describe(pruned[0].job_name).status is JobStatus.STOPPED


def test_crashing_trial_and_missing_objective_fail_alone(tuner: LocalTuner, data_uri: str) -> None:
    spec = TuningJobSpec(
        name="mixed", inputs={"training": data_uri}, strategy=Strategy.GRID, max_jobs=3, max_parallel_jobs=3,
        ranges=[CategoricalRange("lr", ("0.9", "0.001", "0.01"))], static_hyperparameters={"epochs": 1},
    )
    tuner.start(spec)
    job = wait_terminal(tuner, "mixed")
    by_lr = {t.hyperparameters["lr"]: t for t in tuner.trials("mixed")}
    assert by_lr["0.9"].status is TrialStatus.FAILED and "diverged" in by_lr["0.9"].failure_reason
    assert by_lr["0.001"].status is TrialStatus.COMPLETED
    assert job.status is JobStatus.COMPLETED

    silent = TuningJobSpec(name="silent", inputs={"training": data_uri}, max_jobs=1, max_parallel_jobs=1,
                           ranges=[ContinuousRange("lr", 1e-4, 1e-2)],
                           static_hyperparameters={"epochs": 1, "mode": "silent"})
    # "mode" is not a tunable name, but static hyperparameters are passed through as given.
    tuner.start(silent)
    job = wait_terminal(tuner, "silent")
    [trial] = tuner.trials("silent")
    assert trial.status is TrialStatus.FAILED
    assert "validation:accuracy never appeared in the log" in trial.failure_reason
    assert job.status is JobStatus.FAILED and "no trial completed" in job.failure_reason


def test_stop_stops_running_trials(tuner: LocalTuner, data_uri: str, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_EPOCH_S", "5")
    spec = TuningJobSpec(name="stopme", inputs={"training": data_uri}, max_jobs=4, max_parallel_jobs=2,
                         ranges=[ContinuousRange("lr", 1e-4, 1e-2)], static_hyperparameters={"epochs": 5})
    tuner.start(spec)
    deadline = time.time() + 60
    while len(tuner.trials("stopme")) < 2 and time.time() < deadline:
        time.sleep(0.2)
    tuner.stop("stopme")
    job = wait_terminal(tuner, "stopme")
    assert job.status is JobStatus.STOPPED
    trials = tuner.trials("stopme")
    assert len(trials) == 2 and all(t.status is TrialStatus.STOPPED for t in trials)
    assert all(tuner.runner.describe(t.job_name).status is JobStatus.STOPPED for t in trials)


def test_killed_supervisor_is_detected_after_restart(tuner: LocalTuner, data_uri: str, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_EPOCH_S", "5")
    spec = TuningJobSpec(name="orphan", inputs={"training": data_uri}, max_jobs=2, max_parallel_jobs=1,
                         ranges=[ContinuousRange("lr", 1e-4, 1e-2)], static_hyperparameters={"epochs": 5})
    tuner.start(spec)
    deadline = time.time() + 60
    # The trial is recorded just before its training job: kill once both exist.
    while not (trials := tuner.trials("orphan")) or trials[0].job_name not in {j.name for j in tuner.runner.list_jobs()}:
        assert time.time() < deadline, trials
        time.sleep(0.2)
    os.kill(tuner.store.runtime("orphan")["supervisor_pid"], signal.SIGKILL)
    time.sleep(0.5)
    restarted = LocalTuner(LocalJobRunner(JobStore(tuner.runner.store.path), tuner.runner.jobs_root,
                                          tuner.runner.job_python, sidecars=()), tuner.workspace)
    [job] = restarted.list_tuning_jobs()
    assert job.status is JobStatus.FAILED and "supervisor disappeared" in job.failure_reason
    [trial] = restarted.trials("orphan")
    assert trial.status is TrialStatus.FAILED
    training = wait_until_terminal_training(restarted.runner, trial.job_name)
    assert training.status in (JobStatus.STOPPED, JobStatus.FAILED)


def wait_until_terminal_training(runner: LocalJobRunner, name: str):
    deadline = time.time() + 60
    while time.time() < deadline:
        job = runner.describe(name)
        if job.status.is_terminal:
            return job
        time.sleep(0.2)
    raise AssertionError(runner.describe(name))


def test_start_refuses_duplicates_and_unknown_warm_start(tuner: LocalTuner, data_uri: str) -> None:
    spec = TuningJobSpec(name="dup", inputs={"training": data_uri}, max_jobs=1, max_parallel_jobs=1,
                         ranges=[ContinuousRange("lr", 1e-4, 1e-2)], static_hyperparameters={"epochs": 1})
    tuner.start(spec)
    with pytest.raises(AlreadyExistsError):
        tuner.start(spec)
    with pytest.raises(InvalidInputError, match="warm start"):
        tuner.start(TuningJobSpec(name="warm", inputs={"training": data_uri}, warm_start_from=("nope",),
                                  ranges=[ContinuousRange("lr", 1e-4, 1e-2)]))
    wait_terminal(tuner, "dup")


@pytest.mark.parametrize(("compute", "expected"), [
    ({"use_spot": True, "max_wait_s": 48 * 3600}, "managed spot training: SageMaker's"),
    ({"instance_type": "ml.g5.xlarge"}, "ml.g5.xlarge: the local backend runs jobs on this machine"),
    ({"instance_count": (os.cpu_count() or 1) + 1}, "locally each instance is a training process"),
])
def test_start_refuses_compute_this_machine_cannot_give_before_any_trial(tuner: LocalTuner, data_uri: str,
                                                                         compute: dict, expected: str) -> None:
    with pytest.raises(InvalidInputError, match=expected):
        tuner.start(TuningJobSpec(name="too-much", inputs={"training": data_uri}, max_jobs=1, max_parallel_jobs=1,
                                  ranges=[ContinuousRange("lr", 1e-4, 1e-2)], **compute))
    assert tuner.list_tuning_jobs() == []


def test_each_trial_runs_on_the_tuning_jobs_compute(tmp_path: Path, data_uri: str) -> None:
    fake = tmp_path / "fake-python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    workspace = tmp_path / "ws"
    runner = LocalJobRunner(JobStore(workspace / "console.db"), workspace / "jobs", fake, sidecars=())
    tuner = LocalTuner(runner, workspace)
    tuner.start(TuningJobSpec(name="pairs", inputs={"training": data_uri}, max_jobs=1, max_parallel_jobs=1,
                              ranges=[ContinuousRange("lr", 1e-4, 1e-2)], static_hyperparameters={"epochs": 1},
                              instance_count=2, max_runtime_s=600))
    assert wait_terminal(tuner, "pairs").status is JobStatus.COMPLETED
    (trial,) = tuner.trials("pairs")
    spec = json.loads(runner.job_folder(trial.job_name).spec_path.read_text())
    assert (spec["instance_count"], spec["max_runtime_s"]) == (2, 600)
    assert runner.job_folder(trial.job_name).log_path.with_name("algo-2.log").is_file()  # two processes ran


def test_trials_run_with_the_runners_sidecars(tmp_path: Path, data_uri: str) -> None:
    """Trials are training jobs like any other: the Debugger's and Profiler's analysers (here a
    stand-in, run by the stand-in interpreter) run beside each one."""
    fake = tmp_path / "fake-python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    sidecar = tmp_path / "stand_in_sidecar.py"
    sidecar.write_text("# run by the stand-in interpreter, which ignores it\n")
    workspace = tmp_path / "ws"
    runner = LocalJobRunner(JobStore(workspace / "console.db"), workspace / "jobs", fake, sidecars=[[str(sidecar)]])
    tuner = LocalTuner(runner, workspace)
    tuner.start(TuningJobSpec(name="watched", inputs={"training": data_uri}, max_jobs=2, max_parallel_jobs=2,
                              ranges=[ContinuousRange("lr", 1e-4, 1e-2)], static_hyperparameters={"epochs": 1}))
    assert wait_terminal(tuner, "watched").status is JobStatus.COMPLETED
    for trial in tuner.trials("watched"):
        assert "valid_acc=" in (workspace / "jobs" / trial.job_name / "logs" / "stand_in_sidecar.log").read_text()
