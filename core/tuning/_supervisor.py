"""The detached process that runs one local tuning job with Optuna.

Started by :class:`LocalTuner` as ``python -m core.tuning._supervisor RUNTIME_JSON NAME``; it
forks away (``core.processes.detach_and_run``), its log in ``<workspace>/tuning/<name>/``. It
owns the Optuna study (its own SQLite file, ``optuna/<name>.db`` in the workspace; Optuna
advises one process per SQLite study), keeps up to
max-parallel trials running as real local training jobs, reports each trial's per-epoch
objective to the pruner, stops the trials the pruner rejects, and records every trial in
the console database. SIGTERM stops the tuning job and its running trials.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from core.jobstore import JobStore
from core.processes import detach_and_run
from core.training import DEFAULT_METRIC_DEFINITIONS, LocalJobRunner, TrainingJobSpec
from core.training.layout import cpu_share
from core.tuning import search
from core.tuning._store import TuningStore
from core.tuning.entities import Trial, TrialStatus
from core.types import JobStatus

POLL_S = 1.0
STOP_WAIT_S = 90.0
RUNTIME_NAME = "tuning-runtime.json"


@dataclass
class _Running:
    """A trial whose training job runs: Optuna's handle and what was reported so far."""

    trial: optuna.trial.Trial
    number: int
    job_name: str
    reported: int = 0
    last_value: float | None = None
    pruned: bool = False
    values: list[float] = field(default_factory=list)


class TuningSupervisor:
    """Runs the search loop of one tuning job."""

    def __init__(self, runtime: dict[str, Any], name: str) -> None:
        jobs = JobStore(Path(runtime["database"]))
        self.store = TuningStore(jobs)
        # Trials are training jobs like any other: the Debugger's and Profiler's sidecars run beside them.
        self.runner = LocalJobRunner(jobs, Path(runtime["jobs_root"]), Path(runtime["job_python"]),
                                     sidecars=runtime.get("sidecars"), cpus=runtime.get("cpus"))
        self.name = name
        self.spec = self.store.spec(name)
        self.study_url = f"sqlite:///{Path(runtime['studies']) / f'{name}.db'}"
        self.stop_requested = threading.Event()

    def run(self) -> int:
        signal.signal(signal.SIGTERM, lambda *_: self.stop_requested.set())
        self.store.update_tuning_job(self.name, supervisor_pid=os.getpid(), heartbeat_at=time.time())
        study = optuna.create_study(
            study_name=self.name, storage=self.study_url, sampler=search.make_sampler(self.spec),
            pruner=search.make_pruner(self.spec), direction=search.direction(self.spec), load_if_exists=True,
        )
        parents = [self.store.trials(parent) for parent in self.spec.warm_start_from]
        for frozen in search.warm_start_trials(self.spec, parents):
            study.add_trial(frozen)
        grid = search.grid_points(self.spec)
        for point in grid:
            study.enqueue_trial(point)
        budget = min(self.spec.max_jobs, len(grid)) if grid else self.spec.max_jobs
        space = search.search_space(self.spec)
        running: dict[int, _Running] = {}
        launched = 0
        while True:
            self.store.update_tuning_job(self.name, heartbeat_at=time.time())
            if self.stop_requested.is_set():
                self._stop_all(study, running)
                self.store.update_tuning_job(self.name, status=JobStatus.STOPPED, ended_at=time.time())
                return 0
            while len(running) < self.spec.max_parallel_jobs and launched < budget:
                running_trial = self._launch(study, space, launched)
                if running_trial is not None:
                    running[running_trial.number] = running_trial
                launched += 1
            for number in list(running):
                if self._observe(study, running[number]):
                    del running[number]
            if launched >= budget and not running:
                self._finish()
                return 0
            time.sleep(POLL_S)

    def _launch(self, study: optuna.Study, space: dict, number: int) -> _Running | None:
        trial = study.ask(space)
        hyperparameters = {k: search.as_hyperparameter(v) for k, v in trial.params.items()}
        job_name = self.spec.trial_name(number)
        record = Trial(number=number, job_name=job_name, status=TrialStatus.IN_PROGRESS,
                       hyperparameters=hyperparameters, started_at=time.time())
        self.store.insert_trial(self.name, record)
        try:
            self.runner.start(TrainingJobSpec(
                name=job_name, inputs=self.spec.inputs,
                hyperparameters={**self.spec.static_hyperparameters, **hyperparameters},
                **self.spec.compute.spec_fields(),  # type: ignore[arg-type]
            ), num_cpus=cpu_share(self.spec.max_parallel_jobs, self.runner.cpus))
        except Exception as exc:  # a trial that cannot start fails alone
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            self.store.update_trial(self.name, number, status=TrialStatus.FAILED, ended_at=time.time(),
                                    failure_reason=f"could not start: {exc}")
            return None
        return _Running(trial=trial, number=number, job_name=job_name)

    def _observe(self, study: optuna.Study, run: _Running) -> bool:
        """Reports new objective values and settles a finished trial; True once it is settled."""
        job = self.runner.describe(run.job_name)
        values = [p.value for p in self.runner.metrics(run.job_name) if p.name == self.spec.objective_metric]
        for step in range(run.reported, len(values)):
            run.trial.report(values[step], step)
            run.reported = step + 1
            run.last_value = values[step]
            if not run.pruned and not job.status.is_terminal and run.trial.should_prune():
                run.pruned = True
                self.runner.stop(run.job_name)
        if len(values) != len(run.values):
            run.values = values
            self.store.update_trial(self.name, run.number, epochs_run=len(values), objective=run.last_value)
        if not job.status.is_terminal:
            return False
        self._settle(study, run, job.status, job.failure_reason)
        return True

    def _settle(self, study: optuna.Study, run: _Running, status: JobStatus, reason: str | None) -> None:
        now = time.time()
        if run.pruned:
            study.tell(run.trial, state=optuna.trial.TrialState.PRUNED)
            self.store.update_trial(self.name, run.number, status=TrialStatus.PRUNED, ended_at=now,
                                    objective=run.last_value)
        elif status is JobStatus.COMPLETED and run.last_value is not None:
            study.tell(run.trial, run.last_value)
            self.store.update_trial(self.name, run.number, status=TrialStatus.COMPLETED, ended_at=now,
                                    objective=run.last_value)
        elif status is JobStatus.COMPLETED:
            study.tell(run.trial, state=optuna.trial.TrialState.FAIL)
            regex = next(m.regex for m in DEFAULT_METRIC_DEFINITIONS if m.name == self.spec.objective_metric)
            self.store.update_trial(
                self.name, run.number, status=TrialStatus.FAILED, ended_at=now,
                failure_reason=f"the objective metric {self.spec.objective_metric} never appeared in the log "
                f"(regex {regex})",
            )
        else:
            study.tell(run.trial, state=optuna.trial.TrialState.FAIL)
            final = TrialStatus.STOPPED if status is JobStatus.STOPPED else TrialStatus.FAILED
            self.store.update_trial(self.name, run.number, status=final, ended_at=now, failure_reason=reason)

    def _stop_all(self, study: optuna.Study, running: dict[int, _Running]) -> None:
        for run in running.values():
            self.runner.stop(run.job_name)
        deadline = time.time() + STOP_WAIT_S
        while running and time.time() < deadline:
            for number in list(running):
                job = self.runner.describe(running[number].job_name)
                if job.status.is_terminal:
                    run = running.pop(number)
                    study.tell(run.trial, state=optuna.trial.TrialState.FAIL)
                    self.store.update_trial(self.name, number, status=TrialStatus.STOPPED, ended_at=time.time())
            time.sleep(POLL_S)

    def _finish(self) -> None:
        trials = self.store.trials(self.name)
        if any(t.status is TrialStatus.COMPLETED for t in trials):
            self.store.update_tuning_job(self.name, status=JobStatus.COMPLETED, ended_at=time.time())
        else:
            self.store.update_tuning_job(self.name, status=JobStatus.FAILED, ended_at=time.time(),
                                         failure_reason="no trial completed with an objective value: see the trials")


def _mark_failed(runtime: dict[str, str], name: str, exc: Exception) -> None:
    TuningStore(JobStore(Path(runtime["database"]))).update_tuning_job(
        name, status=JobStatus.FAILED, ended_at=time.time(),
        failure_reason=f"InternalServerError: the tuning supervisor failed: {exc}",
    )


if __name__ == "__main__":
    tuning_runtime, tuning_job = json.loads(Path(sys.argv[1]).read_text()), sys.argv[2]
    detach_and_run(  # a crash of the supervisor must not leave the tuning job InProgress
        Path(tuning_runtime["jobs_root"]).parent / "tuning" / tuning_job / "supervisor.log",
        lambda: TuningSupervisor(tuning_runtime, tuning_job).run(),
        lambda exc: _mark_failed(tuning_runtime, tuning_job, exc),
    )
