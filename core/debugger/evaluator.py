"""The Debugger's rule evaluator for SageMaker training jobs, run on this machine.

SageMaker Debugger's rule jobs are closed to new AWS customers (2026-07-30), so the console
evaluates the rules itself: the sidecar that runs beside every local job
(``entrypoints/debug_sidecar.py``, job environment) runs here for a SageMaker job, reads the
trial the training script uploads to S3 (``debug-out-dir``, set by the SageMaker runner) and
watches the job through the SageMaker API until it ends, then concludes. Results land in the
job store like a local job's, so the Debugger page reads them the same way.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from core.config import ENTRYPOINTS_DIR, Settings
from core.debugger.entities import TrialState
from core.debugger.launch import JOB_NAME_PLACEHOLDER
from core.debugger.store import DebugStore
from core.entities import TrainingJob
from core.errors import BackendError

SIDECAR = ENTRYPOINTS_DIR / "debug_sidecar.py"
EVALUATORS_FOLDER = "debug-evaluators"
PID_FILE = "evaluator.pid"
LOG_FILE = "evaluator.log"
POLL_SECONDS = 15.0
"""Between passes over S3 and DescribeTrainingJob calls: gentle on the APIs."""
_CONCLUDED = (TrialState.COMPLETE, TrialState.MISSING, TrialState.DISABLED, TrialState.FAILED)


def debug_trial_uri(job: TrainingJob) -> str | None:
    """Where the job's script writes its trial, from its ``debug-out-dir`` hyperparameter."""
    if str(job.hyperparameters.get("debug", "true")).lower() in ("false", "0", "no"):
        return None
    location = job.hyperparameters.get("debug-out-dir")
    return str(location).replace(JOB_NAME_PLACEHOLDER, job.name) if location else None


class SageMakerRuleEvaluators:
    """Starts at most one evaluator process per SageMaker job; each outlives the app.

    Args:
        settings: the aws backend's settings (profile and region go to the evaluator).
        store: where the evaluator writes series, rule results and notifications.
    """

    def __init__(self, settings: Settings, store: DebugStore) -> None:
        self.settings = settings
        self.store = store
        self.root = settings.workspace / EVALUATORS_FOLDER

    def ensure_running(self, job: TrainingJob) -> str:
        """Starts the job's evaluator unless one runs or has concluded; says which happened.

        Raises:
            BackendError: the evaluator could not be started.
        """
        trial = self.store.trial(job.name)
        if trial is not None and trial.state in _CONCLUDED:
            return "concluded"
        uri = debug_trial_uri(job)
        if uri is None:
            return "no trial"
        folder = self.root / job.name
        if self._running(folder):
            return "running"
        try:
            (folder / "input" / "config").mkdir(parents=True, exist_ok=True)
            hyperparameters = {k: str(v) for k, v in job.hyperparameters.items()}
            (folder / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hyperparameters))
            with open(folder / LOG_FILE, "ab") as log:
                process = subprocess.Popen(
                    [str(self.settings.job_python), str(SIDECAR), "--job-dir", str(folder), "--database",
                     str(self.store.jobs.path), "--job-name", job.name, "--trial", uri, "--sagemaker-job",
                     "--poll-seconds", str(POLL_SECONDS)],
                    cwd=folder, env=self._environment(), stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True,
                )
            (folder / PID_FILE).write_text(f"{process.pid} {_start_time(process.pid)}")
        except OSError as exc:
            raise BackendError(f"could not start the rule evaluator of {job.name}: {exc}") from None
        return "started"

    def log_tail(self, job_name: str, max_lines: int = 50) -> list[str]:
        try:
            return (self.root / job_name / LOG_FILE).read_text(errors="replace").splitlines()[-max_lines:]
        except OSError:
            return []

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "SAGEMAKER_"))}
        if self.settings.aws_profile:
            env["AWS_PROFILE"] = self.settings.aws_profile
        if self.settings.region:
            env["AWS_DEFAULT_REGION"] = self.settings.region
        return env

    @staticmethod
    def _running(folder: Path) -> bool:
        """Whether the evaluator the pid file names still runs (the same process: pid and start time)."""
        try:
            pid, started = (folder / PID_FILE).read_text().split()
            return _start_time(int(pid)) == started
        except (OSError, ValueError):
            return False


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (``/proc/PID/stat`` field 22).

    Raises:
        OSError: no such process, or it has exited (a zombie counts as gone).
    """
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    if fields[0] in ("Z", "X"):
        raise ProcessLookupError(pid)
    return fields[19]
