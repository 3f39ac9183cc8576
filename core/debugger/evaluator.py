"""The Debugger's rule evaluator for SageMaker training jobs, run on this machine.

SageMaker Debugger's rule jobs are closed to new AWS customers (2026-07-30), so the console
evaluates the rules itself: the sidecar that runs beside every local job
(``analysers/debug_sidecar.py``, job environment) runs here for a SageMaker job. Each poll
(every ``Settings.analysis_poll_s``) it copies what is new under the trial's S3 prefix
(``debug-out-dir``, set by the SageMaker runner) into its folder, reads that copy with smdebug
and asks SageMaker whether the job still runs; once the job has ended and its trial is read it
concludes (or records that the job wrote no trial) and exits. Results land in the job store
like a local job's, so the Debugger page reads them the same way.
"""

from __future__ import annotations

import json

from core.config import Settings
from core.debugger.entities import TrialState
from core.debugger.launch import JOB_NAME_PLACEHOLDER
from core.debugger.store import DebugStore
from core.entities import TrainingJob
from core.errors import BackendError
from core.sidecars import SidecarProcesses

SIDECAR = "analysers.debug_sidecar"
EVALUATORS_FOLDER = "debug-evaluators"
_CONCLUDED = (TrialState.COMPLETE, TrialState.MISSING, TrialState.DISABLED, TrialState.FAILED)


def debug_trial_uri(job: TrainingJob) -> str | None:
    """Where the job's script writes its trial, from its ``debug-out-dir`` hyperparameter.

    None when the job ran with ``--debug false`` or without an ``s3://`` location (a folder
    inside the job's container is out of reach from here).
    """
    if str(job.hyperparameters.get("debug", "true")).lower() in ("false", "0", "no"):
        return None
    location = str(job.hyperparameters.get("debug-out-dir") or "")
    return location.replace(JOB_NAME_PLACEHOLDER, job.name) if location.startswith("s3://") else None


class SageMakerRuleEvaluators:
    """Starts at most one evaluator process per SageMaker job; each outlives the app.

    Args:
        settings: the aws backend's settings (workspace, job interpreter, profile and region, and
            ``analysis_poll_s``: between the evaluator's polls, an S3 listing and a DescribeTrainingJob each).
        store: where the evaluator writes series, rule results and notifications.
    """

    def __init__(self, settings: Settings, store: DebugStore) -> None:
        self.store = store
        self.poll_s = settings.analysis_poll_s
        self.processes = SidecarProcesses(settings, EVALUATORS_FOLDER)

    def ensure_running(self, job: TrainingJob) -> str:
        """Starts the job's evaluator unless one runs or has concluded; says which happened.

        Returns:
            ``"started"``, ``"running"``, ``"concluded"`` (the trial was read, or found missing)
            or ``"no trial"`` (the job saves none).

        Raises:
            BackendError: the evaluator could not be started.
        """
        if self._concluded(job.name):
            return "concluded"
        uri = debug_trial_uri(job)
        if uri is None:
            return "no trial"
        with self.processes.exclusive(job.name):
            if self.processes.running(job.name):
                return "running"
            if self._concluded(job.name):  # it finished while this call waited for the lock
                return "concluded"
            folder = self.processes.folder(job.name)
            config = folder / "input" / "config"
            try:
                config.mkdir(parents=True, exist_ok=True)
                (config / "hyperparameters.json").write_text(
                    json.dumps({k: str(v) for k, v in job.hyperparameters.items()}))
            except OSError as exc:
                raise BackendError(f"could not prepare the rule evaluator of {job.name}: {exc}") from None
            self.processes.start(job.name, [
                "-m", SIDECAR, "--job-dir", str(folder), "--database", str(self.store.jobs.path),
                "--job-name", job.name, "--trial", uri, "--sagemaker-job", "--poll-s", str(self.poll_s),
            ])
        return "started"

    def log_tail(self, job_name: str, max_lines: int = 50) -> list[str]:
        """The last lines of the job's evaluator log."""
        return self.processes.log_tail(job_name, max_lines)

    def _concluded(self, job_name: str) -> bool:
        trial = self.store.trial(job_name)
        return trial is not None and trial.state in _CONCLUDED
