"""The Profiler's analysis of SageMaker training jobs, run on this machine.

The training script uploads its profiler output to ``profile-out-dir`` (an ``s3://`` location
the SageMaker runner sets) as it trains. The sidecar that analyses every local job
(``analysers/profiler_sidecar.py``, job environment) runs here for a SageMaker job: each poll
(every ``Settings.analysis_poll_s``) it copies what is new under that prefix into its folder,
analyses it, and asks SageMaker whether the job still runs; once the job has ended and its
data are read it concludes (or records that the job wrote nothing there) and exits. Results land in the job store like a
local job's, so the Profiler page reads them the same way.
"""

from __future__ import annotations

from core.config import Settings
from core.debugger.launch import JOB_NAME_PLACEHOLDER
from core.entities import TrainingJob
from core.profiler._store import ProfilerStore
from core.sidecars import SidecarProcesses

SIDECAR = "analysers.profiler_sidecar"
ANALYSERS_FOLDER = "profiler-analysers"
_CONCLUDED = ("complete", "failed")


def profile_out_uri(job: TrainingJob) -> str | None:
    """Where the job's script uploads its profiler output, from its ``profile-out-dir`` hyperparameter.

    None when the job ran without profiling or without an ``s3://`` location (a folder inside
    the job's container is out of reach from here).
    """
    if str(job.hyperparameters.get("profile", "true")).lower() in ("false", "0", "no"):
        return None
    location = str(job.hyperparameters.get("profile-out-dir") or "")
    return location.replace(JOB_NAME_PLACEHOLDER, job.name) if location.startswith("s3://") else None


class SageMakerProfilerAnalysers:
    """Starts at most one profiler analysis process per SageMaker job; each outlives the app.

    Args:
        settings: the aws backend's settings (workspace, job interpreter, profile and region, and
            ``analysis_poll_s``: between the analysis's passes, an S3 listing and a DescribeTrainingJob each).
        store: where the analysis writes its documents (and where its state is read).
    """

    def __init__(self, settings: Settings, store: ProfilerStore) -> None:
        self.store = store
        self.poll_s = settings.analysis_poll_s
        self.processes = SidecarProcesses(settings, ANALYSERS_FOLDER)

    def ensure_running(self, job: TrainingJob) -> str:
        """Starts the job's analysis unless it runs or has concluded; says which happened.

        Returns:
            ``"started"``, ``"running"``, ``"concluded"`` (its final pass is stored) or
            ``"no data location"`` (the job uploads no profiler output).

        Raises:
            BackendError: the analysis could not be started.
        """
        if self._concluded(job.name):
            return "concluded"
        uri = profile_out_uri(job)
        if uri is None:
            return "no data location"
        with self.processes.exclusive(job.name):
            if self.processes.running(job.name):
                return "running"
            if self._concluded(job.name):  # it finished while this call waited for the lock
                return "concluded"
            folder = self.processes.folder(job.name)
            self.processes.start(job.name, [
                "-m", SIDECAR, "--job-dir", str(folder), "--database", str(self.store.jobs.path),
                "--job-name", job.name, "--profiler-path", uri, "--sagemaker-job", "--poll-s", str(self.poll_s),
            ])
        return "started"

    def log_tail(self, job_name: str, max_lines: int = 50) -> list[str]:
        """The last lines of the job's analysis log."""
        return self.processes.log_tail(job_name, max_lines)

    def _concluded(self, job_name: str) -> bool:
        return self.store.documents(job_name).get("summary", {}).get("state") in _CONCLUDED
