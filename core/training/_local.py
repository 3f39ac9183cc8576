"""Training jobs as detached local processes, recorded in the SQLite job store."""

from __future__ import annotations

import json
import shutil
import signal
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path

from core.entities import MetricPoint, TrainingJob
from core.errors import AlreadyExistsError, BackendError, NotFoundError
from core.job_environment import require_ready
from core.jobstore import JobStore
from core.processes import is_process_alive, signal_process, start_supervisor
from core.training._base import JobRunner
from core.training._supervisor import RUNTIME_FILE
from core.training.compute import InstanceType, check_local_compute, local_instance_types
from core.training.layout import JobLayout, cpu_share, create_job_folder
from core.training.spec import TrainingJobSpec
from core.types import JobStatus

STARTUP_GRACE_S = 60.0
"""How long a job may go without a supervisor pid before it counts as lost."""


class LocalJobRunner(JobRunner):
    """Runs each job in ``<jobs_root>/<name>`` under a detached supervisor process.

    Args:
        store: the job store shared with the supervisors.
        jobs_root: parent folder of the job folders.
        job_python: interpreter of the job environment.
        sidecars: what runs beside every job, each as the job interpreter's arguments (see the
            supervisor); None: the supervisor's ``ANALYSERS``, () none.
    """

    backend_name = "local"
    default_instance_type = "local"

    def __init__(self, store: JobStore, jobs_root: Path, job_python: Path,
                 sidecars: Sequence[Sequence[str]] | None = None, cpus: int | None = None) -> None:
        self.store = store
        self.jobs_root = Path(jobs_root)
        self.job_python = Path(job_python)
        self.sidecars = None if sidecars is None else [list(s) for s in sidecars]
        self.cpus = cpus
        """The CPUs its jobs share (``Settings.job_cpus``); None: every CPU of this machine."""

    def start(self, spec: TrainingJobSpec, *, num_cpus: int | None = None) -> TrainingJob:
        """Starts the job in its own supervisor process.

        ``num_cpus`` (``SM_NUM_CPUS``): the job's share of this machine; None shares it with the local
        jobs running now (a tuning job, which knows how many of its trials run at once, says).
        """
        job_dir = self.jobs_root / spec.name
        try:
            self.store.get_job(spec.name)
            raise AlreadyExistsError(f"a training job named {spec.name!r} already exists")
        except NotFoundError:
            pass
        if job_dir.exists():
            raise AlreadyExistsError(f"the job folder {job_dir} exists already: choose another name")
        check_local_compute(spec.instance_type, spec.instance_count, spec.use_spot)
        require_ready(self.job_python)
        if num_cpus is None:
            running = self.store.list_jobs(backend=self.backend_name, status=JobStatus.IN_PROGRESS, limit=10_000)
            num_cpus = cpu_share(len(running) + 1, self.cpus)
        try:
            layout = create_job_folder(spec, job_dir)
            (layout.root / RUNTIME_FILE).write_text(
                json.dumps({"database": str(self.store.path), "job_python": str(self.job_python),
                            "sidecars": self.sidecars, "num_cpus": num_cpus})
            )
            job = TrainingJob(
                name=spec.name, status=JobStatus.IN_PROGRESS, backend=self.backend_name, created_at=time.time(),
                hyperparameters=spec.hyperparameters_as_strings, inputs=dict(spec.inputs),
                secondary_status="Starting", instance_type=spec.instance_type, instance_count=spec.instance_count,
            )
            self.store.insert_job(job, job_dir=layout.root)
        except OSError as exc:  # a full disk, a read-only workspace
            shutil.rmtree(job_dir, ignore_errors=True)
            raise BackendError(f"could not create the job folder {job_dir}: {exc.strerror or exc}") from exc
        except BaseException:
            shutil.rmtree(job_dir, ignore_errors=True)
            raise
        start_supervisor("core.training._supervisor", str(layout.root), what="the job supervisor")
        return self.store.get_job(spec.name)

    def instance_types(self) -> list[InstanceType]:
        return local_instance_types()

    def price_per_hour(self, instance_type: str) -> float | None:
        return 0.0  # this machine: no charge

    def describe(self, name: str) -> TrainingJob:
        self._reconcile(name)
        return self.store.get_job(name)

    def list_jobs(self, *, limit: int = 100) -> list[TrainingJob]:
        for job in self.store.list_jobs(backend=self.backend_name, limit=limit):
            if not job.status.is_terminal:
                self._reconcile(job.name)
        return self.store.list_jobs(backend=self.backend_name, limit=limit)

    def stop(self, name: str) -> TrainingJob:
        job = self.describe(name)
        if job.status.is_terminal:
            return job
        # Stopping is recorded before the supervisor's pid is read: a supervisor that records its pid
        # later sees Stopping when it checks, just before starting the script, and stops by itself.
        self.store.update_job(name, status=JobStatus.STOPPING, secondary_status="Stopping")
        runtime = self.store.job_runtime(name)
        if not signal_process(runtime["supervisor_pid"], runtime["job_dir"], signal.SIGTERM):
            self._kill_worker(runtime)
            self.store.update_job(name, status=JobStatus.STOPPED, ended_at=time.time(), secondary_status="Stopped")
        return self.store.get_job(name)

    def metrics(self, name: str) -> list[MetricPoint]:
        self.store.get_job(name)
        return self.store.get_metrics(name)

    def log_tail(self, name: str, max_lines: int = 200) -> list[str]:
        job_dir = self.store.job_runtime(name)["job_dir"]
        path = JobLayout(Path(job_dir)).log_path if job_dir else None
        if path is None or not path.exists():
            return []
        with open(path, encoding="utf-8", errors="replace") as log:
            return [line.rstrip("\n") for line in deque(log, maxlen=max_lines)]

    def job_folder(self, name: str) -> JobLayout:
        """The job's folder (local backend only: model, checkpoints, debug data live there)."""
        return JobLayout(Path(self.store.job_runtime(name)["job_dir"]))

    def _reconcile(self, name: str) -> None:
        """Marks a running job Failed when its supervisor is gone (killed, machine restarted)."""
        job = self.store.get_job(name)
        if job.status.is_terminal:
            return
        runtime = self.store.job_runtime(name)
        pid = runtime["supervisor_pid"]
        if pid is None and time.time() - job.created_at < STARTUP_GRACE_S:
            return
        if is_process_alive(pid, runtime["job_dir"]):
            return
        self._kill_worker(runtime)
        if job.status is JobStatus.STOPPING:
            self.store.update_job(name, status=JobStatus.STOPPED, ended_at=time.time(), secondary_status="Stopped")
        else:
            self.store.update_job(
                name, status=JobStatus.FAILED, ended_at=time.time(), secondary_status="Failed",
                failure_reason="InternalServerError: the job's supervisor process disappeared "
                "(killed, or the machine restarted); the job did not finish",
            )

    @staticmethod
    def _kill_worker(runtime: dict[str, object]) -> None:
        pid = runtime.get("worker_pid")
        if isinstance(pid, int):
            signal_process(pid, str(runtime["job_dir"]), signal.SIGKILL)
