"""The detached process that runs one local training job from start to end.

Started by :class:`LocalJobRunner` as ``python -m core.training._supervisor JOB_DIR``; it
forks once and the parent returns at once, so the supervisor belongs to no Streamlit
process and survives app restarts. It starts the script with the job environment's
interpreter, tees the log, scrapes metrics, beats a heartbeat, packs ``model.tar.gz`` and
records every status transition in the job store. SIGTERM asks it to stop the job.

A job of N instances runs as N training processes, one per host of SageMaker's contract
(``layout.host_environments``); the first's output is the job's log and its metrics, each other's
goes to ``logs/algo-<i>.log``. When one ends with an error the others are stopped, and the job's
failure reason is that of the first to fail.

Sidecars run beside the training process, as SageMaker runs rule jobs beside a training
job: by default the ``ANALYSERS`` (the Debugger's rule evaluator, the Profiler's analysis),
which the supervisor starts itself. Each is started with the job environment's interpreter as
``python ARGS... --job-dir D --database DB --job-name N --training-pid P`` in the job folder,
with the repository on ``PYTHONPATH``; it must watch the training pid, do a final pass once it
is gone and exit. The job's final status is recorded after they exit (or after SIDECAR_GRACE_S).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core.config import REPO_ROOT
from core.jobstore import JobStore
from core.processes import detach_and_run, free_port
from core.training.layout import (
    JobLayout,
    host_environments,
    host_names,
    hyperparameters_to_args,
    spec_from_dict,
    training_environment,
)
from core.training.metrics import MetricScraper, final_metrics
from core.types import JobStatus

HEARTBEAT_S = 5.0
STOP_GRACE_S = 30.0
SIDECAR_GRACE_S = 180.0
RUNTIME_FILE = "runtime.json"
ANALYSERS: tuple[tuple[str, ...], ...] = (("-m", "analysers.debug_sidecar"), ("-m", "analysers.profiler_sidecar"))
"""What runs beside every job unless its runner names other sidecars: each as the job interpreter's arguments."""


@dataclass
class Exit:
    """How one training process ended."""

    host: str
    code: int
    last_lines: list[str]
    at: float = field(default_factory=time.monotonic)


class Supervisor:
    """Runs the training processes of one job folder and records what happens."""

    def __init__(self, job_dir: Path) -> None:
        self.layout = JobLayout(Path(job_dir))
        runtime = json.loads((self.layout.root / RUNTIME_FILE).read_text())
        self.store = JobStore(Path(runtime["database"]))
        self.job_python = runtime["job_python"]
        named = runtime.get("sidecars")  # set by a runner that runs other sidecars, or none
        self.sidecars: Sequence[Sequence[str]] = ANALYSERS if named is None else named
        self.num_cpus: int | None = runtime.get("num_cpus")
        self.spec = spec_from_dict(json.loads(self.layout.spec_path.read_text()))
        self.stop_requested = threading.Event()
        self.timed_out = threading.Event()
        self.finished = threading.Event()
        self.processes: list[subprocess.Popen[str]] = []
        self.exits: list[Exit] = []
        self._lock = threading.Lock()

    @property
    def process(self) -> subprocess.Popen[str] | None:
        """The first host's process: the job's log, metrics and the sidecars' training pid."""
        return self.processes[0] if self.processes else None

    def run(self) -> int:
        name = self.spec.name
        signal.signal(signal.SIGTERM, lambda *_: self._request_stop())
        started = time.time()
        self.store.update_job(name, supervisor_pid=os.getpid(), started_at=started, heartbeat_at=started,
                              secondary_status="Training")
        if self.store.get_job(name).status is not JobStatus.IN_PROGRESS:  # stopped before its pid was known
            self.stop_requested.set()
        if self.stop_requested.is_set():
            self._finish(JobStatus.STOPPED, None)
            return 0
        env = training_environment(self.spec, self.layout, dict(os.environ), num_cpus=self.num_cpus)
        command = [self.job_python, str(self.layout.code_dir / self.spec.entry_point),
                   *hyperparameters_to_args(self.spec.hyperparameters_as_strings)]
        try:
            for host_env in host_environments(env, self.spec.instance_count, free_port()):
                self.processes.append(subprocess.Popen(
                    command, cwd=self.layout.code_dir, env=host_env, stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, errors="replace",
                ))
        except OSError as exc:
            self._signal_all(signal.SIGKILL)
            self._finish(JobStatus.FAILED, f"could not start the job environment's Python ({exc.strerror}): run scripts/setup")
            return 1
        if self.stop_requested.is_set():  # SIGTERM came while the script was starting
            self._request_stop()
        assert self.process
        self.store.update_job(name, worker_pid=self.process.pid)
        sidecars = self._start_sidecars(env)
        threading.Thread(target=self._heartbeat, daemon=True).start()
        pumps = [threading.Thread(target=self._pump_log, args=(host, process), daemon=True)
                 for host, process in zip(host_names(len(self.processes)), self.processes, strict=True)]
        for pump in pumps:
            pump.start()
        for pump in pumps:
            pump.join()
        self._wait_for_sidecars(sidecars)
        self.finished.set()
        self._record_outcome()
        return 0

    def _start_sidecars(self, env: dict[str, str]) -> list[subprocess.Popen[bytes]]:
        assert self.process
        started = []
        for sidecar in self.sidecars:
            log = open(self.layout.log_path.parent / sidecar_log_name(sidecar), "ab")
            try:
                started.append(subprocess.Popen(
                    sidecar_command(self.job_python, sidecar, self.layout.root, self.store.path, self.spec.name,
                                    self.process.pid),
                    cwd=self.layout.root, env=sidecar_environment(env), stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT,
                ))
            except OSError as exc:  # an analyser that cannot start must not fail the training job
                log.write(f"could not start sidecar {' '.join(sidecar)}: {exc}\n".encode())
            finally:
                log.close()
        return started

    @staticmethod
    def _wait_for_sidecars(sidecars: list[subprocess.Popen[bytes]]) -> None:
        deadline = time.time() + SIDECAR_GRACE_S
        for sidecar in sidecars:
            try:
                sidecar.wait(timeout=max(1.0, deadline - time.time()))
            except subprocess.TimeoutExpired:
                sidecar.kill()

    def _request_stop(self) -> None:
        self.stop_requested.set()
        self._end_processes()

    def _end_processes(self) -> None:
        """SIGTERM to every training process still running, SIGKILL to those left after the grace."""
        if self._signal_all(signal.SIGTERM):
            threading.Thread(target=self._kill_after_grace, daemon=True).start()

    def _signal_all(self, sig: signal.Signals) -> bool:
        """Sends ``sig`` to the training processes still running; whether there were any."""
        running = [process for process in self.processes if process.poll() is None]
        for process in running:
            process.send_signal(sig)
        return bool(running)

    def _kill_after_grace(self) -> None:
        if not self.finished.wait(STOP_GRACE_S):
            self._signal_all(signal.SIGKILL)

    def _heartbeat(self) -> None:
        deadline = time.time() + self.spec.max_runtime_s
        while not self.finished.wait(HEARTBEAT_S):
            self.store.update_job(self.spec.name, heartbeat_at=time.time())
            if time.time() > deadline and not self.stop_requested.is_set():
                self.timed_out.set()
                self._request_stop()

    def _pump_log(self, host: str, process: subprocess.Popen[str]) -> None:
        """Copies one process's output into its log (the first's, the job's: metrics scraped), then
        records its exit; an error exit stops the other processes, which could only wait for it."""
        assert process.stdout
        first = process is self.process
        scraper = MetricScraper(self.spec.metric_definitions) if first else None
        path = self.layout.log_path if first else self.layout.log_path.with_name(f"{host}.log")
        tail: list[str] = []
        with open(path, "a", encoding="utf-8") as log:
            for line in process.stdout:
                log.write(line)
                log.flush()
                tail = ([*tail, line.rstrip("\n")])[-20:]
                points = scraper.feed(line) if scraper else None
                if points:
                    self.store.add_metrics(self.spec.name, points)
        code = process.wait()
        with self._lock:
            self.exits.append(Exit(host, code, tail))
        if code != 0 and not self.stop_requested.is_set():
            self._end_processes()

    def _first_failure(self) -> Exit | None:
        """The process that ended first with an error: the others may have failed because it did."""
        failed = sorted((e for e in self.exits if e.code != 0), key=lambda e: e.at)
        return failed[0] if failed else None

    def _record_outcome(self) -> None:
        failed = self._first_failure()
        try:
            model_uri = self._pack_model()
        except OSError as exc:  # a full disk: the job cannot complete without its model
            self._finish(JobStatus.FAILED, f"InternalServerError: could not write model.tar.gz: {exc.strerror or exc}")
            return
        if self.timed_out.is_set():
            self._finish(JobStatus.STOPPED, f"MaxRuntimeExceeded: stopped after {self.spec.max_runtime_s} s",
                         model_uri)
        elif self.stop_requested.is_set():
            self._finish(JobStatus.STOPPED, None, model_uri)
        elif failed is None and model_uri:
            self._finish(JobStatus.COMPLETED, None, model_uri)
        elif failed is None:
            self._finish(JobStatus.FAILED, "AlgorithmError: the script exited 0 but wrote nothing to SM_MODEL_DIR")
        else:
            reason = failure_reason(failed.code, failed.last_lines)
            if len(self.processes) > 1:
                reason += f" (on {failed.host})"
            self._finish(JobStatus.FAILED, reason)

    def _pack_model(self) -> str | None:
        """Packs SM_MODEL_DIR into output/model.tar.gz (atomically); None if it is empty."""
        files = sorted(p for p in self.layout.model_dir.rglob("*") if p.is_file())
        if not files:
            return None
        tmp = self.layout.model_archive.with_suffix(".part")
        try:
            with tarfile.open(tmp, "w:gz") as archive:
                for path in files:
                    archive.add(path, arcname=path.relative_to(self.layout.model_dir).as_posix())
            os.replace(tmp, self.layout.model_archive)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return self.layout.model_archive.resolve().as_uri()

    def _finish(self, status: JobStatus, reason: str | None, model_uri: str | None = None) -> None:
        if reason:
            self.layout.failure_path.write_text(reason + "\n")
        metrics = final_metrics(self.store.get_metrics(self.spec.name))
        self.store.update_job(
            self.spec.name, status=status, failure_reason=reason, ended_at=time.time(), model_uri=model_uri,
            final_metrics=metrics, secondary_status=status.value, heartbeat_at=time.time(),
        )


def sidecar_command(job_python: str, sidecar: Sequence[str], job_dir: Path, database: Path, job_name: str,
                    training_pid: int) -> list[str]:
    """The command line of one sidecar of a job (``training_pid`` 0: one final pass over the job's data)."""
    return [job_python, *sidecar, "--job-dir", str(job_dir), "--database", str(database), "--job-name", job_name,
            "--training-pid", str(training_pid)]


def sidecar_environment(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with the repository first on ``PYTHONPATH``: the analysers import ``analysers``, ``core`` and
    ``entrypoints`` from it, while their working directory is the job folder."""
    return {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))}


def sidecar_log_name(sidecar: Sequence[str]) -> str:
    """The sidecar's log file in the job's ``logs`` folder, named for its module or script (``debug_sidecar.log``)."""
    return Path(sidecar[-1]).name.removesuffix(".py").rsplit(".", 1)[-1] + ".log"


def failure_reason(code: int, last_lines: list[str]) -> str:
    """SageMaker-style reason from an exit code and the end of the log."""
    if code < 0:
        try:
            signame = signal.Signals(-code).name
        except ValueError:
            signame = f"signal {-code}"
        return f"AlgorithmError: the training process was killed by {signame} (signal {-code})"
    errors = [line for line in last_lines if line.startswith("ERROR") or "Error" in line]
    detail = errors[-1] if errors else (last_lines[-1] if last_lines else "no output")
    return f"AlgorithmError: the training script exited with code {code}: {detail[:500]}"


def _mark_failed(job_dir: Path, reason: str) -> None:
    runtime = json.loads((job_dir / RUNTIME_FILE).read_text())
    name = json.loads(JobLayout(job_dir).spec_path.read_text())["name"]
    JobStore(Path(runtime["database"])).update_job(
        name, status=JobStatus.FAILED, failure_reason=reason, ended_at=time.time(), secondary_status="Failed"
    )


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    detach_and_run(  # a crash of the supervisor must not leave the job InProgress
        JobLayout(folder).log_path.with_name("supervisor.log"), lambda: Supervisor(folder).run(),
        lambda exc: _mark_failed(folder, f"InternalServerError: the job supervisor failed: {exc}"),
    )
