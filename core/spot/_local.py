"""Spot runs simulated on this machine: a detached supervisor per run (see ``_supervisor``)."""

from __future__ import annotations

import json
import shutil
import signal
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path

from core.config import ENTRYPOINTS_DIR
from core.errors import AlreadyExistsError, InvalidInputError, NotFoundError
from core.job_environment import require_ready
from core.jobstore import JobStore
from core.processes import is_process_alive, signal_process, start_supervisor
from core.spot._base import SpotManager
from core.spot._supervisor import RUNTIME_FILE
from core.spot.entities import SpotEvent, SpotRun, SpotRunSpec, SpotRunStatus
from core.spot.store import SpotStore
from core.training.compute import InstanceType, local_instance_types
from core.training.layout import JobLayout, cpu_share, create_job_folder
from core.training.spec import TrainingJobSpec

ENTRY_POINT = "ec2_train.py"
STARTUP_GRACE_S = 60.0


class LocalSpotManager(SpotManager):
    """Runs each spot run in ``<runs_root>/<name>`` (laid out as a job folder) under a detached
    simulator.

    Args:
        store: the console's job store (spot runs live in the same database).
        runs_root: parent folder of the run folders (the local jobs folder: a completed run
            is listed as a training job with its folder).
        job_python: interpreter of the job environment.
        sidecars: what runs once over a completed run's data, so its Debugger and Profiler pages
            fill like a training job's: each as the job interpreter's arguments; None: the training
            supervisor's ``ANALYSERS``, () none.
        cpus: the CPUs a run's instance trains with (``Settings.job_cpus``); None: every CPU.
    """

    backend_name = "local"
    instance_types = ("local",)
    can_interrupt = True

    def __init__(self, store: JobStore, runs_root: Path, job_python: Path,
                 sidecars: Sequence[Sequence[str]] | None = None, cpus: int | None = None) -> None:
        self.spot_store = SpotStore(store)
        self.runs_root = Path(runs_root)
        self.job_python = Path(job_python)
        self.sidecars = None if sidecars is None else [list(s) for s in sidecars]
        self.cpus = cpus

    def described_instance_types(self) -> list[InstanceType]:
        return [t for t in local_instance_types() if t.name in self.instance_types]

    def launch(self, spec: SpotRunSpec) -> SpotRun:
        if spec.volume_size_gb is not None:
            raise InvalidInputError("volume size: an EC2 instance's root volume, on the aws backend; the "
                                    "simulator's instances use this machine's disk")
        if not spec.data_uri.startswith("file://"):
            raise InvalidInputError(f"the local simulator reads file:// datasets, not {spec.data_uri!r}: "
                                    "ingest the dataset on the Data page")
        run_dir = self.runs_root / spec.name
        try:
            self.spot_store.get_run(spec.name)
        except NotFoundError:
            pass
        else:
            raise AlreadyExistsError(f"a spot run named {spec.name!r} exists already: choose another name")
        if run_dir.exists():
            raise InvalidInputError(f"the folder {run_dir} exists already: choose another name")
        require_ready(self.job_python)
        train_spec = TrainingJobSpec(name=spec.name, inputs={"training": spec.data_uri},
                                     hyperparameters=spec.hyperparameters_as_strings, entry_point=ENTRY_POINT,
                                     source_dir=ENTRYPOINTS_DIR, instance_type=spec.instance_type)
        run = SpotRun(name=spec.name, backend=self.backend_name, status=SpotRunStatus.PENDING, spec=spec,
                      created_at=time.time(), detail="Starting the simulator")
        self.spot_store.insert_run(run)
        try:
            layout = create_job_folder(train_spec, run_dir)
            (layout.root / RUNTIME_FILE).write_text(json.dumps(
                {"database": str(self.spot_store.jobs.path), "job_python": str(self.job_python), "name": spec.name,
                 "sidecars": self.sidecars, "num_cpus": cpu_share(1, self.cpus)}))
            self.spot_store.update_run(spec.name, run_dir=str(layout.root))
            start_supervisor("core.spot._supervisor", str(layout.root), what="the spot simulator")
        except BaseException as exc:
            shutil.rmtree(run_dir, ignore_errors=True)
            self.spot_store.update_run(spec.name, status=SpotRunStatus.FAILED, ended_at=time.time(),
                                       failure_reason=f"could not start: {exc}", detail="Failed")
            raise
        return self.spot_store.get_run(spec.name)

    def describe(self, name: str) -> SpotRun:
        self._reconcile(name)
        return self.spot_store.get_run(name)

    def list_runs(self, *, limit: int = 100) -> list[SpotRun]:
        for run in self.spot_store.list_runs(backend=self.backend_name, limit=limit):
            if not run.status.is_terminal:
                self._reconcile(run.name)
        return self.spot_store.list_runs(backend=self.backend_name, limit=limit)

    def events(self, name: str) -> list[SpotEvent]:
        self.spot_store.get_run(name)
        return self.spot_store.events(name)

    def log_tail(self, name: str, max_lines: int = 200) -> list[str]:
        run_dir = self.spot_store.runtime(name)["run_dir"]
        path = JobLayout(Path(run_dir)).log_path if run_dir else None
        if path is None or not path.exists():
            return []
        with open(path, encoding="utf-8", errors="replace") as log:
            return [line.rstrip("\n") for line in deque(log, maxlen=max_lines)]

    def interrupt(self, name: str) -> SpotRun:
        run = self.describe(name)
        if run.status is not SpotRunStatus.RUNNING:
            raise InvalidInputError(f"{name} has no running instance to interrupt (it is {run.status.value})")
        return self.spot_store.update_run(name, interrupt_requested_at=time.time())

    def terminate(self, name: str) -> SpotRun:
        run = self.describe(name)
        if run.status.is_terminal:
            return run
        runtime = self.spot_store.runtime(name)
        if not signal_process(runtime["supervisor_pid"], str(runtime["run_dir"]), signal.SIGTERM):
            self._kill_instance(runtime)
            self.spot_store.update_run(name, status=SpotRunStatus.TERMINATED, ended_at=time.time(),
                                       detail="Terminated by the user")
        return self.spot_store.get_run(name)

    def wait(self, name: str, *, timeout_s: float, poll_s: float = 0.5) -> SpotRun:
        """Waits until the run ends or ``timeout_s`` passes; returns it either way (tests, scripts)."""
        deadline = time.time() + timeout_s
        run = self.describe(name)
        while not run.status.is_terminal and time.time() < deadline:
            time.sleep(poll_s)
            run = self.describe(name)
        return run

    def _reconcile(self, name: str) -> None:
        """Marks a run Failed when its simulator is gone (killed, machine restarted)."""
        run = self.spot_store.get_run(name)
        if run.status.is_terminal:
            return
        runtime = self.spot_store.runtime(name)
        pid = runtime["supervisor_pid"]
        if pid is None and time.time() - run.created_at < STARTUP_GRACE_S:
            return
        if is_process_alive(pid, str(runtime["run_dir"])):
            return
        self._kill_instance(runtime)
        self.spot_store.update_run(name, status=SpotRunStatus.FAILED, ended_at=time.time(), detail="Failed",
                                   failure_reason="the spot simulator process disappeared (killed, or the machine "
                                   "restarted); launch the run again to resume from its checkpoint")

    @staticmethod
    def _kill_instance(runtime: dict[str, object]) -> None:
        pid = runtime.get("instance_pid")
        if isinstance(pid, int):
            signal_process(pid, str(runtime["run_dir"]), signal.SIGKILL, group=True)
