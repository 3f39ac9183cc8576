"""One object per configured backend: its storage, its job runner, the shared store.

Pages ask for a :class:`Backend` and never branch on the backend's kind: the local and aws
implementations answer the same calls with the same entities and errors.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.config import ENTRYPOINTS_DIR, Settings
from core.endpoints import EndpointManager, LocalEndpointManager
from core.jobstore import JobStore
from core.storage import LocalStorage, Storage
from core.training import JobRunner, LocalJobRunner
from core.tuning import LocalTuner, Tuner
from core.types import BackendKind


LOCAL_SIDECARS = (ENTRYPOINTS_DIR / "debug_sidecar.py", ENTRYPOINTS_DIR / "profiler_sidecar.py")
"""Job-side analysers run beside every local training job (see core.training._supervisor):
the Debugger's collector and rule evaluator, and the Profiler's analysis."""


@dataclass(frozen=True)
class Backend:
    """What a page needs to do work: where data goes, where jobs, tuning jobs and endpoints run."""

    settings: Settings
    store: JobStore
    storage: Storage
    runner: JobRunner
    tuner: Tuner
    endpoints: EndpointManager

    @property
    def kind(self) -> BackendKind:
        return self.settings.backend


def get_backend(settings: Settings) -> Backend:
    """Builds the backend the settings name. boto3 and the SageMaker SDK load only for aws.

    Raises:
        ConfigError: the settings are incomplete for that backend.
    """
    store = JobStore(settings.database_path)
    if settings.backend is BackendKind.AWS:
        from core.aws import AwsSession
        from core.endpoints._sagemaker import SageMakerEndpointManager
        from core.storage._s3 import S3Storage
        from core.training._sagemaker import SageMakerJobRunner
        from core.tuning._sagemaker import SageMakerTuner

        session = AwsSession(settings)
        s3 = S3Storage(session.client("s3"), settings.bucket or "", settings.prefix)
        sagemaker_runner = SageMakerJobRunner(settings, session, s3)
        tuner: Tuner = SageMakerTuner(settings, session, s3, sagemaker_runner)
        return Backend(settings=settings, store=store, storage=s3, runner=sagemaker_runner, tuner=tuner,
                       endpoints=SageMakerEndpointManager(settings, session))
    local_runner = LocalJobRunner(store, settings.workspace / "jobs", settings.job_python, sidecars=LOCAL_SIDECARS)
    return Backend(
        settings=settings, store=store, storage=LocalStorage(settings.workspace / "storage"), runner=local_runner,
        tuner=LocalTuner(local_runner, settings.workspace),
        endpoints=LocalEndpointManager(store, settings.workspace, settings.job_python),
    )
