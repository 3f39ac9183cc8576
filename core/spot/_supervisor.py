"""The detached process that simulates one spot run's instances on this machine.

Started by :class:`LocalSpotManager` as ``python -m core.spot._supervisor RUN_DIR``; it forks
once and the parent returns at once (like the training supervisor), so the run survives app
restarts. For each "instance" it starts ``entrypoints/ec2_train.py`` with the job
environment's interpreter, pointed at a :class:`LocalMetadataServer` on 127.0.0.1. An
interruption (the spec's schedule, or the page's button) serves the notice on
``spot/instance-action``; ``notice_s`` later the instance's process group is killed with
SIGKILL, as a reclaim would. A persistent request then brings the instance back after
``relaunch_delay_s`` and training resumes from the checkpoint; a one-time request ends the run
as Interrupted.

Instances follow EC2's RunInstances rules: a persistent request stops (or hibernates) the
instance, which comes back with the same id and disk (``instances/<id>/``: checkpoint and
progress) and resumes from its checkpoint; hibernation is simulated as a stop (the process
restarts; on EC2 memory would be restored). A one-time request terminates the instance and the
run ends. The checkpoint is also mirrored to ``checkpoints/`` (the stand-in for S3), where a
brand-new instance would restore it from.

What an instance did (its start or resume, notices seen, checkpoints) is read from the event
file ec2_train.py fsyncs before it goes on (:class:`InstanceRecords`), never from its log lines,
which a SIGKILL can cut off between a checkpoint's save and its report.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from core.jobstore import JobStore
from core.processes import detach_and_run, stop_process
from core.spot.entities import SpotEvent, SpotRunSpec, SpotRunStatus, event_detail
from core.spot.metadata import LocalMetadataServer
from core.spot.store import SpotStore
from core.training._supervisor import ANALYSERS, sidecar_command, sidecar_environment, sidecar_log_name
from core.training.layout import JobLayout, hyperparameters_to_args, spec_from_dict, training_environment
from core.training.metrics import MetricScraper, final_metrics
from core.training.spec import DEFAULT_METRIC_DEFINITIONS

RUNTIME_FILE = "runtime.json"
TICK_S = 0.2
TERMINATE_GRACE_S = 30.0
MAX_POLL_S = 5.0
SIDECAR_TIMEOUT_S = 300.0
EVENTS_FILE = "spot-events.jsonl"
"""ec2_train.py's event file, in ``SM_OUTPUT_DATA_DIR``: one fsynced JSON line per event."""
CHECKPOINT_FILE = "checkpoint.pt"
PUBLISHED = {"start": "start", "resume": "resume", "checkpoint": "checkpoint", "notice": "notice-seen"}
"""The script's records shown as run events, and their kinds there."""


def poll_interval(notice_s: float) -> float:
    """EC2's 5 s, or a quarter of a shortened notice, so a short notice is still seen in time."""
    return min(MAX_POLL_S, notice_s / 4)


def file_identity(path: Path) -> str | None:
    """``inode:mtime_ns`` of a file, None when there is none (as ``ec2_train.file_identity``)."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return f"{stat.st_ino}:{stat.st_mtime_ns}"


def has_landed(record: dict[str, Any], checkpoint: Path, key: str) -> bool:
    """Whether the save a checkpoint record announced reached ``checkpoint``: the file is no longer
    the one the record says it replaces (``key``; a record without it counts as landed)."""
    return key not in record or record[key] != file_identity(checkpoint)


class InstanceRecords:
    """What ec2_train.py recorded durably in the run's event file, read as the file grows.

    Every record is fsynced before the script goes on, so nothing in it races a SIGKILL: a
    checkpoint record comes just before its save (see :func:`has_landed`), a start or resume
    record says which checkpoint an instance began from.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: list[dict[str, Any]] = []
        self._offset = 0

    def read_new(self) -> list[dict[str, Any]]:
        """The records appended since the last call (whole lines only)."""
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        new = []
        for line in complete.decode(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                new.append(record)
        self.records += new
        return new

    def checkpoint(self, checkpoint: Path, key: str) -> dict[str, Any] | None:
        """The record of the checkpoint in ``checkpoint`` now: a checkpoint record, or the start or
        resume record when none landed since (None before the first instance began).

        Args:
            checkpoint: the file the next instance resumes from.
            key: the field naming the file a save replaces there (``replaces``, ``mirror_replaces``).
        """
        found: dict[str, Any] | None = None
        relevant = [r for r in self.records if r.get("kind") in ("start", "resume", "checkpoint")]
        for index, record in enumerate(relevant):
            last = index == len(relevant) - 1
            if record["kind"] != "checkpoint" or not last or has_landed(record, checkpoint, key):
                found = record
        return found


class SpotSimulator:
    """Runs one spot run folder until it completes, fails, is terminated or interrupted for good."""

    def __init__(self, run_dir: Path) -> None:
        self.layout = JobLayout(Path(run_dir))
        runtime = json.loads((self.layout.root / RUNTIME_FILE).read_text())
        self.store = SpotStore(JobStore(Path(runtime["database"])))
        self.job_python = runtime["job_python"]
        self.name = runtime["name"]
        named = runtime.get("sidecars")  # set by a manager that runs other sidecars, or none
        self.num_cpus: int | None = runtime.get("num_cpus")
        self.sidecars: list[list[str]] = [list(s) for s in ANALYSERS] if named is None else named
        self.spec: SpotRunSpec = self.store.get_run(self.name).spec
        self.train_spec = spec_from_dict(json.loads(self.layout.spec_path.read_text()))
        self.stop_requested = threading.Event()
        self.scraper = MetricScraper(DEFAULT_METRIC_DEFINITIONS)
        self.points: list[Any] = []
        self.instance_id = ""
        self.records = InstanceRecords(self.layout.output_data_dir / EVENTS_FILE)
        self.unpublished: list[dict[str, Any]] = []

    def event(self, kind: str, instance: str = "", **detail: Any) -> None:
        self.store.add_event(SpotEvent(run=self.name, time=time.time(), kind=kind, instance=instance, detail=detail))

    def run(self) -> int:
        signal.signal(signal.SIGTERM, lambda *_: self.stop_requested.set())
        self.store.update_run(self.name, supervisor_pid=os.getpid(), status=SpotRunStatus.PENDING,
                              detail="Requesting capacity")
        with LocalMetadataServer(instance_type=self.spec.instance_type) as imds:
            attempt = 0
            while True:
                attempt += 1
                outcome = self.run_instance(attempt, imds)
                if outcome != "interrupted":
                    return 0
                if self.spec.request_type == "one-time":
                    self.finish(SpotRunStatus.INTERRUPTED, "Interrupted: a one-time request is not relaunched",
                                detail="Interrupted")
                    return 0
                self.store.update_run(self.name, status=SpotRunStatus.WAITING, instance_pid=None,
                                      detail="Persistent request: waiting for capacity")
                self.event("relaunch", wait_s=self.spec.relaunch_delay_s)
                if self.stop_requested.wait(self.spec.relaunch_delay_s):
                    self.event("terminated")
                    self.finish(SpotRunStatus.TERMINATED, None, detail="Terminated by the user")
                    return 0

    # --- one instance ------------------------------------------------------------------------

    def run_instance(self, attempt: int, imds: LocalMetadataServer) -> str:
        # A stopped or hibernated spot instance comes back with its id and its EBS volume.
        if attempt == 1 or self.spec.interruption_behavior == "terminate":
            self.instance_id = f"i-local{os.urandom(6).hex()}"
        instance_id = self.instance_id
        imds.new_instance(instance_id)
        disk = self.layout.root / "instances" / instance_id
        (disk / "checkpoints").mkdir(parents=True, exist_ok=True)
        hps = dict(self.spec.hyperparameters_as_strings)
        command = [
            self.job_python, str(self.layout.code_dir / "ec2_train.py"), *hyperparameters_to_args(hps),
            "--data-dir", str(self.layout.data_dir / "training"),
            "--checkpoint-dir", str(disk / "checkpoints"),
            "--checkpoint-uri", str(self.layout.checkpoint_dir),
            "--metadata-url", imds.url,
            "--notice-poll-s", f"{poll_interval(self.spec.notice_s):g}",
            "--instance-id", instance_id,
            "--watch-notice", "true" if self.spec.watch_notice else "false",
        ]
        env = training_environment(self.train_spec, self.layout, dict(os.environ), num_cpus=self.num_cpus)
        with open(self.layout.log_path, "a", encoding="utf-8") as log:
            log.write(f"=== instance {instance_id} launched (attempt {attempt}) ===\n")
        launched = time.time()
        process = subprocess.Popen(
            command, cwd=self.layout.code_dir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, bufsize=1, errors="replace", start_new_session=True,
        )
        self.store.update_run(self.name, instance_pid=process.pid, status=SpotRunStatus.RUNNING,
                              detail=f"Training on {instance_id}", interrupt_requested_at=None)
        self.event("launch", instance_id, attempt=attempt, pid=process.pid)
        tail: list[str] = []
        pump = threading.Thread(target=self._pump, args=(process, tail), daemon=True)
        pump.start()
        planned = self.spec.interrupt_after_s[attempt - 1] if attempt <= len(self.spec.interrupt_after_s) else None
        notice_at: float | None = None
        deadline = 0.0
        while True:
            code = process.poll()
            self._publish(disk, instance_id)
            if code is not None and (notice_at is None or code == 0):
                pump.join(timeout=10)
                self._publish(disk, instance_id, final=True)
                return self._ended(code, tail, instance_id)
            now = time.time()
            if self.stop_requested.is_set():
                stop_process(process.pid, str(self.layout.root), grace_s=TERMINATE_GRACE_S, group=True)
                process.wait()
                pump.join(timeout=10)
                self._publish(disk, instance_id, final=True)
                self.event("terminated", instance_id)
                self.finish(SpotRunStatus.TERMINATED, None, detail="Terminated by the user")
                return "terminated"
            if notice_at is None:
                button = self.store.runtime(self.name)["interrupt_requested_at"]
                if (planned is not None and now - launched >= planned) or (button is not None and button >= launched):
                    notice_at, deadline = now, now + self.spec.notice_s
                    action = self.spec.interruption_behavior
                    assert action is not None, "SpotRunSpec.__post_init__ fills in the request type's default"
                    served = imds.serve_notice(action=action, at=deadline)
                    self.store.update_run(self.name, status=SpotRunStatus.NOTICE, interrupt_requested_at=None,
                                          detail=f"Interruption notice: {served['action']} at {served['time']}")
                    self.event("notice", instance_id, action=served["action"], at=served["time"],
                               notice_s=self.spec.notice_s, source="button" if button else "schedule")
            elif now >= deadline:
                alive = process.poll() is None
                if alive:
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                pump.join(timeout=10)
                self._publish(disk, instance_id, final=True)
                self._interrupted(disk, instance_id, notice_at, alive)
                return "interrupted"
            time.sleep(TICK_S)

    def _pump(self, process: subprocess.Popen[str], tail: list[str]) -> None:
        """Copies the instance's output into the log, scraping metrics and keeping its last lines."""
        assert process.stdout is not None
        with open(self.layout.log_path, "a", encoding="utf-8") as log:
            for line in process.stdout:
                log.write(line)
                log.flush()
                text = line.rstrip("\n")
                tail[:] = [*tail, text][-20:]
                self.points += self.scraper.feed(text)

    def _publish(self, disk: Path, instance_id: str, *, final: bool = False) -> None:
        """Shows the script's new records as run events, each checkpoint once its file is written.

        ``final``: the instance is gone, and a checkpoint whose save never landed is dropped.
        """
        self.unpublished += self.records.read_new()
        while self.unpublished:
            record = self.unpublished[0]
            if record.get("kind") == "checkpoint" and not has_landed(record, disk / "checkpoints" / CHECKPOINT_FILE,
                                                                      "replaces"):
                if final:
                    self.unpublished.pop(0)
                    continue
                return
            self.unpublished.pop(0)
            if record.get("kind") in PUBLISHED:
                self.event(PUBLISHED[record["kind"]], instance_id, **event_detail(record))

    def _interrupted(self, disk: Path, instance_id: str, notice_at: float, alive: bool) -> None:
        """Records the reclaim with the work it lost: the steps since the checkpoint the next instance
        resumes from (on this disk, or the mirror for a new instance), read from the records."""
        if self.spec.interruption_behavior == "terminate":
            landed = self.records.checkpoint(self.layout.checkpoint_dir / CHECKPOINT_FILE, "mirror_replaces")
        else:
            landed = self.records.checkpoint(disk / "checkpoints" / CHECKPOINT_FILE, "replaces")
        checkpoint_step = int(landed.get("step", 0)) if landed else 0
        began = [r for r in self.records.records if r.get("kind") in ("start", "resume")]
        progress: dict[str, Any] = {}
        try:
            progress = json.loads((disk / "checkpoints" / "progress.json").read_text())
        except (OSError, ValueError):
            pass
        steps_per_epoch = int(progress.get("steps_per_epoch", began[-1].get("steps_per_epoch", 1) if began else 1) or 1)
        step = int(progress.get("step", checkpoint_step))
        saved_at = landed.get("time") if landed and landed.get("kind") == "checkpoint" else None
        after_notice = saved_at - notice_at if isinstance(saved_at, (int, float)) and saved_at >= notice_at else None
        self.event("interrupted", instance_id, notice_at=notice_at, progress_step=step,
                   checkpoint_step=checkpoint_step, lost_steps=max(0, step - checkpoint_step),
                   steps_per_epoch=steps_per_epoch, alive_at_kill=alive, checkpoint_after_notice_s=after_notice)

    def _ended(self, code: int, tail: list[str], instance_id: str) -> str:
        if code == 0 and self.layout.model_archive.is_file():
            self.event("completed", instance_id)
            self.finish(SpotRunStatus.COMPLETED, None, detail="Completed",
                        model_uri=self.layout.model_archive.resolve().as_uri())
            return "completed"
        reason = failure_reason(code, tail)
        self.event("failed", instance_id, code=code)
        self.finish(SpotRunStatus.FAILED, reason, detail="Failed")
        return "failed"

    def finish(self, status: SpotRunStatus, reason: str | None, *, detail: str, model_uri: str | None = None) -> None:
        metrics = final_metrics(self.points)
        if status is SpotRunStatus.COMPLETED:
            # Listed with the training jobs (Deploy, Debugger, Profiler), analysed, then completed.
            run = self.store.update_run(self.name, detail="Analysing Debugger and Profiler data", model_uri=model_uri,
                                        final_metrics=metrics, instance_pid=None)
            self.store.record_as_training_job(replace(run, status=status, ended_at=time.time()))
            self.store.jobs.add_metrics(self.name, self.points)
            self.analyse()
        self.store.update_run(self.name, status=status, failure_reason=reason, ended_at=time.time(), detail=detail,
                              model_uri=model_uri, final_metrics=metrics, instance_pid=None)

    def analyse(self) -> None:
        """One final pass of each sidecar (Debugger rules, Profiler analysis) over the run's data."""
        env = sidecar_environment(training_environment(self.train_spec, self.layout, dict(os.environ),
                                                       num_cpus=self.num_cpus))
        for sidecar in self.sidecars:
            with open(self.layout.log_path.parent / sidecar_log_name(sidecar), "ab") as log:
                try:
                    subprocess.run(sidecar_command(self.job_python, sidecar, self.layout.root, self.store.jobs.path,
                                                   self.name, 0),
                                   cwd=self.layout.root, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, timeout=SIDECAR_TIMEOUT_S)
                except (OSError, subprocess.TimeoutExpired) as exc:  # analysis never fails the run
                    log.write(f"sidecar {' '.join(sidecar)} did not finish: {exc}\n".encode())


def failure_reason(code: int, lines: list[str]) -> str:
    """A reason from the exit code and the end of the log (the script's ``ERROR:`` line)."""
    if code < 0:
        return f"the instance's training process was killed by signal {-code}"
    if code == 0:
        return "the training script exited 0 but wrote no model.tar.gz"
    errors = [line for line in lines if line.startswith("ERROR")]
    detail = errors[-1] if errors else (lines[-1] if lines else "no output")
    return f"the training script exited with code {code}: {detail[:500]}"


def _mark_failed(run_dir: Path, exc: Exception) -> None:
    runtime = json.loads((run_dir / RUNTIME_FILE).read_text())
    SpotStore(JobStore(Path(runtime["database"]))).update_run(
        runtime["name"], status=SpotRunStatus.FAILED, ended_at=time.time(), detail="Failed",
        failure_reason=f"the spot simulator failed: {exc}")


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    # a crash of the simulator must not leave the run Running
    detach_and_run(JobLayout(folder).log_path.with_name("supervisor.log"), lambda: SpotSimulator(folder).run(),
                   lambda exc: _mark_failed(folder, exc))
