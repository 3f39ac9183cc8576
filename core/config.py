"""Settings: which backend, where the workspace is, and the AWS coordinates.

Read from a TOML settings file (``SMC_SETTINGS``, else ``settings.toml`` in the current
folder) and then from ``SMC_*`` environment variables, which win. Nothing here holds a secret:
AWS credentials stay with boto3's own chain (profile, environment, instance role).
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path

from core.errors import ConfigError
from core.types import BackendKind

REPO_ROOT = Path(__file__).resolve().parent.parent
ENTRYPOINTS_DIR = REPO_ROOT / "entrypoints"
DEFAULT_JOB_PYTHON = REPO_ROOT / ".venv-job" / "bin" / "python"
ENV_PREFIX = "SMC_"

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
_ROLE_RE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")
_AMI_RE = re.compile(r"^ami-([0-9a-f]{8}|[0-9a-f]{17})$")
_ECR_IMAGE_RE = re.compile(
    r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[a-z0-9._/-]+(:[\w.-]+|@sha256:[0-9a-f]{64})?$"
)


@dataclass(frozen=True)
class Settings:
    """Everything the console needs to know about where it runs.

    Attributes:
        backend: ``local`` (default, offline) or ``aws``.
        workspace: folder for the local store, job folders and the job database.
        job_python: interpreter of the job environment (torch, smdebug).
        aws_profile: named profile for boto3; None uses the default credential chain.
        region: AWS region for the aws backend.
        bucket: S3 bucket for datasets, code and models on the aws backend.
        prefix: key prefix inside the bucket.
        role_arn: SageMaker execution role for training jobs and endpoints.
        serving_image_uri: ECR image of our serving container (docker/serving) for endpoints.
        spot_ami: AMI id that EC2 Spot instances boot (one with Python 3 and PyTorch); None takes
            the region's newest Deep Learning AMI with PyTorch.
        analysis_poll_s: seconds between the polls of the analysers that follow a SageMaker job
            from this machine (Debugger rules, Profiler): each poll lists the job's S3 prefix and
            calls DescribeTrainingJob, so the default is gentle on the APIs; tests shorten it.
        job_cpus: the CPUs the local backend's trainings share (their torch threads); None: every
            CPU of this machine. Fewer keep cores free for other work beside the console.
    """

    backend: BackendKind = BackendKind.LOCAL
    workspace: Path = REPO_ROOT / "workspace"
    job_python: Path = DEFAULT_JOB_PYTHON
    aws_profile: str | None = None
    region: str | None = None
    bucket: str | None = None
    prefix: str = "sm-console"
    role_arn: str | None = None
    serving_image_uri: str | None = None
    spot_ami: str | None = None
    analysis_poll_s: float = 15.0
    job_cpus: int | None = None

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "backend", BackendKind(self.backend))
        except ValueError:
            valid = ", ".join(k.value for k in BackendKind)
            raise ConfigError(f"backend: {self.backend!r} is not one of {valid}") from None
        object.__setattr__(self, "workspace", Path(self.workspace).expanduser())
        object.__setattr__(self, "job_python", Path(self.job_python).expanduser())
        if self.region is not None and not _REGION_RE.match(self.region):
            raise ConfigError(f"region: {self.region!r} is not an AWS region name")
        if self.bucket is not None and not _BUCKET_RE.match(self.bucket):
            raise ConfigError(f"bucket: {self.bucket!r} is not a valid S3 bucket name")
        if self.role_arn is not None and not _ROLE_RE.match(self.role_arn):
            raise ConfigError(f"role_arn: {self.role_arn!r} is not an IAM role ARN")
        if self.serving_image_uri is not None and not _ECR_IMAGE_RE.match(self.serving_image_uri):
            raise ConfigError(f"serving_image_uri: {self.serving_image_uri!r} is not an ECR image URI")
        if self.spot_ami is not None and not _AMI_RE.match(self.spot_ami):
            raise ConfigError(f"spot_ami: {self.spot_ami!r} is not an AMI id (ami- and 8 or 17 hex digits)")
        try:
            object.__setattr__(self, "analysis_poll_s", float(self.analysis_poll_s))
        except (TypeError, ValueError):
            raise ConfigError(f"analysis_poll_s: {self.analysis_poll_s!r} is not a number of seconds") from None
        if not self.analysis_poll_s > 0:
            raise ConfigError(f"analysis_poll_s: must be above 0, got {self.analysis_poll_s}")
        if self.job_cpus is not None:
            try:
                object.__setattr__(self, "job_cpus", int(self.job_cpus))
            except (TypeError, ValueError):
                raise ConfigError(f"job_cpus: {self.job_cpus!r} is not a number of CPUs") from None
            if self.job_cpus < 1:
                raise ConfigError(f"job_cpus: must be at least 1, got {self.job_cpus}")
        if self.prefix.startswith("/") or ".." in self.prefix.split("/"):
            raise ConfigError(f"prefix: {self.prefix!r} must be a relative key prefix")

    @property
    def database_path(self) -> Path:
        """The SQLite job store of the local backend (also the app's catalog)."""
        return self.workspace / "console.db"


def load_settings(
    environ: Mapping[str, str] | None = None, settings_file: Path | None = None
) -> Settings:
    """Builds Settings from the settings file, then the ``SMC_*`` environment variables.

    Raises:
        ConfigError: a value is invalid, the file is not TOML, or it names an unknown key.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, object] = {}
    path = settings_file or Path(environ.get(f"{ENV_PREFIX}SETTINGS", "settings.toml"))
    if path.is_file():
        try:
            values.update(tomllib.loads(path.read_text()))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    known = {f.name for f in fields(Settings)}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) {sorted(unknown)}; known: {sorted(known)}")
    for name in known:
        env_value = environ.get(f"{ENV_PREFIX}{name.upper()}")
        if env_value:
            values[name] = env_value
    try:
        return Settings(**values)  # type: ignore[arg-type]
    except TypeError as exc:
        raise ConfigError(str(exc)) from None


def with_overrides(settings: Settings, **changes: object) -> Settings:
    """A copy of settings with some fields changed (validated again)."""
    return replace(settings, **changes)  # type: ignore[arg-type]


def app_python() -> Path:
    """The interpreter of the app environment, used for detached supervisors."""
    return Path(sys.executable)
