"""Local tuning: a detached Optuna supervisor per tuning job, trials as local training jobs."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from core.errors import AlreadyExistsError, BackendError, InvalidInputError, NotFoundError
from core.job_environment import require_ready
from core.processes import is_process_alive, signal_process, start_supervisor
from core.training import LocalJobRunner
from core.training._local import STARTUP_GRACE_S
from core.training.compute import check_local_compute
from core.tuning._base import Tuner
from core.tuning._store import TuningStore
from core.tuning._supervisor import RUNTIME_NAME
from core.tuning.entities import Trial, TrialStatus, TuningJob
from core.tuning.spec import TuningJobSpec
from core.types import JobStatus

SUPERVISOR_MODULE = "core.tuning._supervisor"
STUDIES_FOLDER = "optuna"
"""One SQLite file per tuning job's study, ``optuna/<name>.db``: Optuna advises one process per SQLite
study, and supervisors started together on one fresh file raced to create its schema."""


class LocalTuner(Tuner):
    """Tuning jobs on this machine.

    Args:
        runner: the local training runner whose jobs are the trials.
        workspace: where the Optuna study database and supervisor logs live.
    """

    backend_name = "local"
    runner: LocalJobRunner

    def __init__(self, runner: LocalJobRunner, workspace: Path) -> None:
        self.runner = runner
        self.store = TuningStore(runner.store)
        self.workspace = Path(workspace)
        self.runtime_path = self.workspace / RUNTIME_NAME

    def start(self, spec: TuningJobSpec) -> TuningJob:
        check_local_compute(spec.instance_type, spec.instance_count, spec.use_spot)
        require_ready(self.runner.job_python)
        for parent in spec.warm_start_from:
            try:
                self.store.get_tuning_job(parent)
            except NotFoundError:
                raise InvalidInputError(f"warm start: no tuning job named {parent!r}") from None
        if any(j.name.startswith(f"{spec.name}-") for j in self.runner.list_jobs(limit=10_000)):
            raise AlreadyExistsError(f"training jobs named {spec.name}-NNN exist already: choose another name")
        self.store.insert_tuning_job(spec, backend=self.backend_name, created_at=time.time())
        studies = self.workspace / STUDIES_FOLDER
        studies.mkdir(parents=True, exist_ok=True)
        self.runtime_path.write_text(json.dumps({
            "database": str(self.runner.store.path),
            "jobs_root": str(self.runner.jobs_root),
            "job_python": str(self.runner.job_python),
            "sidecars": self.runner.sidecars,
            "cpus": self.runner.cpus,
            "studies": str(studies),
        }))
        try:
            start_supervisor(SUPERVISOR_MODULE, str(self.runtime_path), spec.name, what="the tuning supervisor")
        except BackendError:
            self.store.update_tuning_job(spec.name, status=JobStatus.FAILED, ended_at=time.time(),
                                         failure_reason="the tuning supervisor did not start")
            raise
        return self.store.get_tuning_job(spec.name)

    def describe(self, name: str) -> TuningJob:
        self._reconcile(name)
        return self.store.get_tuning_job(name)

    def list_tuning_jobs(self, *, limit: int = 100) -> list[TuningJob]:
        for job in self.store.list_tuning_jobs(backend=self.backend_name, limit=limit):
            if not job.status.is_terminal:
                self._reconcile(job.name)
        return self.store.list_tuning_jobs(backend=self.backend_name, limit=limit)

    def stop(self, name: str) -> TuningJob:
        job = self.describe(name)
        if job.status.is_terminal:
            return job
        self.store.update_tuning_job(name, status=JobStatus.STOPPING)
        pid = self.store.runtime(name)["supervisor_pid"]
        if not signal_process(pid, name, signal.SIGTERM):
            self._stop_trials(name, TrialStatus.STOPPED)
            self.store.update_tuning_job(name, status=JobStatus.STOPPED, ended_at=time.time())
        return self.store.get_tuning_job(name)

    def trials(self, name: str) -> list[Trial]:
        return self.store.trials(name)

    def spec(self, name: str) -> TuningJobSpec:
        return self.store.spec(name)

    def _reconcile(self, name: str) -> None:
        """A tuning job whose supervisor is gone fails, and its running trials are stopped."""
        job = self.store.get_tuning_job(name)
        if job.status.is_terminal:
            return
        pid = self.store.runtime(name)["supervisor_pid"]
        if pid is None and time.time() - job.created_at < STARTUP_GRACE_S:
            return
        if is_process_alive(pid, name):
            return
        stopping = job.status is JobStatus.STOPPING
        self._stop_trials(name, TrialStatus.STOPPED if stopping else TrialStatus.FAILED)
        if stopping:
            self.store.update_tuning_job(name, status=JobStatus.STOPPED, ended_at=time.time())
        else:
            self.store.update_tuning_job(
                name, status=JobStatus.FAILED, ended_at=time.time(),
                failure_reason="InternalServerError: the tuning supervisor disappeared (killed, or the machine "
                "restarted); its running trials were stopped",
            )

    def _stop_trials(self, name: str, status: TrialStatus) -> None:
        for trial in self.store.trials(name):
            if trial.status.is_terminal:
                continue
            try:
                self.runner.stop(trial.job_name)
            except NotFoundError:
                pass
            self.store.update_trial(name, trial.number, status=status, ended_at=time.time(),
                                    failure_reason="the tuning job ended before this trial")
