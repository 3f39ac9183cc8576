"""Who analyses a training job's Debugger and Profiler data, and what the pages say about it.

Locally the analysers run beside every job (the training supervisor starts them), so there is
nothing to start. A SageMaker job's data lands in S3, and the console's own analysers follow it
from this machine (SageMaker Debugger's rule jobs are closed to new customers since
2026-07-30): :meth:`JobAnalysis.ensure_analysed` starts them when a page shows the job.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.aws import AwsSession
    from core.config import Settings
    from core.debugger.entities import RuleResult
    from core.entities import TrainingJob
    from core.jobstore import JobStore


@dataclass(frozen=True)
class AnalysisNotes:
    """What the Debugger and Profiler pages should tell the user about a job's analysis.

    Attributes:
        debugger: a line for the Debugger page, or None when there is nothing to say.
        profiler: a line for the Profiler page, or None.
        debugger_reading: the rule evaluator is reading the job's data now (the page keeps
            refreshing until it concludes, even for a job that has ended).
        profiler_reading: the same for the profiler analysis.
    """

    debugger: str | None = None
    profiler: str | None = None
    debugger_reading: bool = False
    profiler_reading: bool = False


_RULES_RUN_HERE = ("Rules are evaluated on this machine by an evaluator that reads the trial in S3 and follows the "
                   "job until it ends (SageMaker Debugger's rule jobs are closed to new customers).")
_PROFILE_READ_HERE = ("The profiler analysis runs on this machine: it reads the job's profiler output in S3 and "
                      "follows the job until it ends.")
_DEBUGGER_NOTES = {
    "no trial": "This job saved no Debugger trial to S3 (it ran with --debug false or without debug-out-dir).",
    "started": _RULES_RUN_HERE,
    "running": _RULES_RUN_HERE,
}
_PROFILER_NOTES = {
    "no data location": "This job uploads no profiler output (it ran with --profile false or without an s3:// "
                        "profile-out-dir).",
    "started": _PROFILE_READ_HERE,
    "running": _PROFILE_READ_HERE,
}
"""What each page says for each state its analyser reports; nothing once the analysis has concluded."""
_READING = ("started", "running")


class JobAnalysis(ABC):
    """Makes sure a job's Debugger rules and Profiler analysis run, wherever the job runs.

    Called by the Debugger and Profiler pages each time they show a job; must be cheap when
    the analysis already runs or has concluded, and safe to call from several threads.
    """

    @abstractmethod
    def ensure_analysed(self, job: TrainingJob) -> AnalysisNotes:
        """Starts what analyses the job unless it runs or has concluded.

        Raises:
            BackendError: an analyser could not be started.
        """

    def service_rule_results(self, job_name: str) -> list[RuleResult]:
        """Rule evaluations the platform itself ran for the job (none unless it has a Debugger service).

        Raises:
            NotFoundError: no such job.
            BackendError, CredentialsError: the call failed.
        """
        return []


class BesideJobAnalysis(JobAnalysis):
    """Local jobs: the training supervisor starts the analysers beside each job, so nothing is left to do."""

    def ensure_analysed(self, job: TrainingJob) -> AnalysisNotes:
        return AnalysisNotes()


class SageMakerJobAnalysis(JobAnalysis):
    """SageMaker jobs: one rule evaluator and one profiler analyser per job, on this machine, reading S3.

    Args:
        settings: the aws backend's settings (profile, region, workspace for the analysers' folders).
        session: the backend's AWS session (for SageMaker's own rule statuses).
        store: the job store the analysers write into.
    """

    def __init__(self, settings: Settings, session: AwsSession, store: JobStore) -> None:
        self.settings = settings
        self.session = session
        self.store = store

    def ensure_analysed(self, job: TrainingJob) -> AnalysisNotes:
        from core.debugger.evaluator import SageMakerRuleEvaluators
        from core.debugger.store import DebugStore
        from core.profiler._store import ProfilerStore
        from core.profiler.evaluator import SageMakerProfilerAnalysers

        rules = SageMakerRuleEvaluators(self.settings, DebugStore(self.store)).ensure_running(job)
        profile = SageMakerProfilerAnalysers(self.settings, ProfilerStore(self.store)).ensure_running(job)
        return AnalysisNotes(debugger=_DEBUGGER_NOTES.get(rules), profiler=_PROFILER_NOTES.get(profile),
                             debugger_reading=rules in _READING, profiler_reading=profile in _READING)

    def service_rule_results(self, job_name: str) -> list[RuleResult]:
        from core.debugger.sagemaker import sagemaker_rule_statuses

        return sagemaker_rule_statuses(self.session.client("sagemaker"), job_name)
