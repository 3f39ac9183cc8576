"""The one place that knows which backend is in use: it builds every capability from a registry.

A :class:`Backend` holds one implementation of each capability (storage, training, tuning,
endpoints, Lambda functions, spot runs, job analysis, health), all sharing one job store and,
on AWS, one boto3 session. Each is built on first use, so a health check or a page that needs
one capability opens nothing else. Pages and the rest of ``core`` ask a capability what it can
do (its instance types, whether it can clean up, whether it has a price feed,
``ensure_analysed(job)``) and never which backend this is: a capability one backend lacks has a
null implementation.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING

from core.analysis import BesideJobAnalysis, JobAnalysis
from core.config import Settings
from core.errors import ConfigError
from core.health import BackendHealth, check_aws, check_local
from core.jobstore import JobStore
from core.types import BackendKind

if TYPE_CHECKING:
    from core.aws import AwsSession
    from core.datasets.in_place import ObjectPrefixes
    from core.endpoints import EndpointManager
    from core.lambdas import FunctionManager
    from core.lambdas._aws import AwsFunctionManager
    from core.rule_actions import RuleActions
    from core.spot import SpotManager
    from core.storage import Storage
    from core.storage._s3 import S3Storage
    from core.training import JobRunner, LocalJobRunner
    from core.training._sagemaker import SageMakerJobRunner
    from core.tuning import Tuner

DEFAULT_LOCAL_REGION = "us-east-1"
"""The region local Lambda functions and their policies name when the settings give none."""


class Backend(ABC):
    """Every capability of one configured backend, each built on first use and then shared.

    Attributes:
        settings: where it runs (its ``backend`` field is for display only).
        lists_cheaply: listing jobs and endpoints costs no API call, so pages need not cache it.
    """

    lists_cheaply: bool

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def store(self) -> JobStore:
        """The job store every capability records into."""
        return JobStore(self.settings.database_path)

    @abstractmethod
    def health(self) -> BackendHealth:
        """Whether the backend can do its work (never raises)."""

    # Each capability below is a cached_property of the subclass.
    storage: Storage
    """Where datasets and models live."""
    runner: JobRunner
    """Training jobs."""
    tuner: Tuner
    """Hyperparameter tuning jobs."""
    endpoints: EndpointManager
    """Real-time endpoints."""
    functions: FunctionManager
    """The Lambda functions that call endpoints."""
    rule_actions: RuleActions
    """What a fired Debugger rule sets off: events on a bus, routed to an action function."""
    spot: SpotManager
    """Spot training runs."""
    analysis: JobAnalysis
    """Starts the Debugger's and Profiler's analysis of the jobs that need it started."""
    object_prefixes: ObjectPrefixes
    """Data that already lies in an object store (``s3://``), checked and trained on where it is."""


class LocalBackend(Backend):
    """This machine: a workspace folder, detached processes, servers on 127.0.0.1."""

    lists_cheaply = True

    def health(self) -> BackendHealth:
        return check_local(self.settings)

    @cached_property
    def storage(self) -> Storage:  # type: ignore[override]
        from core.storage import LocalStorage

        return LocalStorage(self.settings.workspace / "storage")

    @cached_property
    def runner(self) -> LocalJobRunner:  # type: ignore[override]
        from core.training import LocalJobRunner

        return LocalJobRunner(self.store, self.settings.workspace / "jobs", self.settings.job_python,
                              cpus=self.settings.job_cpus)

    @cached_property
    def tuner(self) -> Tuner:  # type: ignore[override]
        from core.tuning import LocalTuner

        return LocalTuner(self.runner, self.settings.workspace)

    @cached_property
    def endpoints(self) -> EndpointManager:  # type: ignore[override]
        from core.endpoints import LocalEndpointManager

        return LocalEndpointManager(self.store, self.settings.workspace, self.settings.job_python)

    @cached_property
    def functions(self) -> FunctionManager:  # type: ignore[override]
        from core.lambdas._local import LocalFunctionManager

        return LocalFunctionManager(self.settings.workspace, self.settings.job_python, self.endpoints,
                                    region=self.settings.region or DEFAULT_LOCAL_REGION)

    @cached_property
    def rule_actions(self) -> RuleActions:  # type: ignore[override]
        from core.rule_actions._local import LocalRuleActions

        return LocalRuleActions(self.settings.workspace, self.settings.job_python, self.runner,
                                region=self.settings.region or DEFAULT_LOCAL_REGION)

    @cached_property
    def spot(self) -> SpotManager:  # type: ignore[override]
        from core.spot import LocalSpotManager

        return LocalSpotManager(self.store, self.settings.workspace / "jobs", self.settings.job_python,
                                cpus=self.settings.job_cpus)

    @cached_property
    def analysis(self) -> JobAnalysis:  # type: ignore[override]
        return BesideJobAnalysis()

    @cached_property
    def object_prefixes(self) -> ObjectPrefixes:  # type: ignore[override]
        from core.datasets.in_place import NoObjectPrefixes

        return NoObjectPrefixes()


class AwsBackend(Backend):
    """SageMaker, S3, EC2, Lambda and IAM through one boto3 session (boto3 loads only here).

    Args:
        settings: region and bucket are required.
        session: the session every capability shares (tests inject one); by default made from settings.

    Raises:
        ConfigError: no region or no bucket.
    """

    lists_cheaply = False

    def __init__(self, settings: Settings, session: AwsSession | None = None) -> None:
        from core.aws import AwsSession

        if not (settings.region and settings.bucket):
            raise ConfigError("the aws backend needs region and bucket (SMC_REGION, SMC_BUCKET)")
        super().__init__(settings)
        self.session = session or AwsSession(settings)

    def health(self) -> BackendHealth:
        return check_aws(self.settings, lambda _settings: self.session)

    @cached_property
    def storage(self) -> S3Storage:  # type: ignore[override]
        from core.storage._s3 import S3Storage

        return S3Storage(self.session.client("s3"), self.settings.bucket or "", self.settings.prefix)

    @cached_property
    def runner(self) -> SageMakerJobRunner:  # type: ignore[override]
        from core.training._sagemaker import SageMakerJobRunner

        return SageMakerJobRunner(self.settings, self.session, self.storage)

    @cached_property
    def tuner(self) -> Tuner:  # type: ignore[override]
        from core.tuning._sagemaker import SageMakerTuner

        return SageMakerTuner(self.settings, self.session, self.storage, self.runner)

    @cached_property
    def endpoints(self) -> EndpointManager:  # type: ignore[override]
        from core.endpoints._sagemaker import SageMakerEndpointManager

        return SageMakerEndpointManager(self.settings, self.session)

    @cached_property
    def functions(self) -> AwsFunctionManager:  # type: ignore[override]
        from core.lambdas._aws import AwsFunctionManager

        prefix = f"s3://{self.settings.bucket}/{self.settings.prefix}/lambda-inputs/"
        return AwsFunctionManager(self.session, default_s3_prefix=prefix)

    @cached_property
    def rule_actions(self) -> RuleActions:  # type: ignore[override]
        from core.rule_actions._aws import AwsRuleActions

        return AwsRuleActions(self.session, self.functions)

    @cached_property
    def spot(self) -> SpotManager:  # type: ignore[override]
        from core.spot._aws import Ec2SpotManager

        return Ec2SpotManager(self.settings, self.session, self.store)

    @cached_property
    def analysis(self) -> JobAnalysis:  # type: ignore[override]
        from core.analysis import SageMakerJobAnalysis

        return SageMakerJobAnalysis(self.settings, self.session, self.store)

    @cached_property
    def object_prefixes(self) -> ObjectPrefixes:  # type: ignore[override]
        from core.storage._s3 import S3Prefixes

        return S3Prefixes(self.session.client("s3"))


_REGISTRY: dict[BackendKind, Callable[[Settings, AwsSession | None], Backend]] = {
    BackendKind.LOCAL: lambda settings, _session: LocalBackend(settings),
    BackendKind.AWS: AwsBackend,
}


def get_backend(settings: Settings, *, aws_session: AwsSession | None = None) -> Backend:
    """Builds the backend the settings name; its capabilities are built on first use.

    Args:
        settings: which backend, and its workspace or AWS coordinates.
        aws_session: the session every AWS capability shares (tests inject one); by default one
            is made from the settings. Unused by the local backend.

    Raises:
        ConfigError: the settings are incomplete for that backend.
    """
    return _REGISTRY[settings.backend](settings, aws_session)
