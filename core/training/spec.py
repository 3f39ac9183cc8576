"""What a training job is asked to do: the same spec runs locally or on SageMaker."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from core.config import ENTRYPOINTS_DIR
from core.errors import InvalidInputError
from core.training.compute import DEFAULT_MAX_RUNTIME_S, DEFAULT_VOLUME_SIZE_GB, Compute

JOB_NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")  # SageMaker's TrainingJobName
CHANNEL_RE = re.compile(r"^[A-Za-z0-9\.\-_]{1,64}$")  # SageMaker's ChannelName
HYPERPARAMETER_KEY_RE = re.compile(r"^[A-Za-z0-9_\-]{1,256}$")


@dataclass(frozen=True)
class MetricDefinition:
    """A metric scraped from the job's log: the first group of regex is its value."""

    name: str
    regex: str

    def __post_init__(self) -> None:
        try:
            compiled = re.compile(self.regex)
        except re.error as exc:
            raise InvalidInputError(f"metric {self.name}: invalid regex ({exc})") from None
        if compiled.groups < 1:
            raise InvalidInputError(f"metric {self.name}: the regex needs one capture group")


_NUMBER = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"

DEFAULT_METRIC_DEFINITIONS: tuple[MetricDefinition, ...] = (
    MetricDefinition("train:loss", rf"train_loss={_NUMBER}"),
    MetricDefinition("train:accuracy", rf"train_acc={_NUMBER}"),
    MetricDefinition("validation:loss", rf"valid_loss={_NUMBER}"),
    MetricDefinition("validation:accuracy", rf"valid_acc={_NUMBER}"),
    MetricDefinition("test:accuracy", rf"test_acc={_NUMBER}"),
    MetricDefinition("train:images_per_s", rf"images_per_s={_NUMBER}"),
)
"""The metrics `entrypoints/train.py` prints, in SageMaker metric-definition form."""


@dataclass(frozen=True)
class TrainingJobSpec:
    """A training job request, shaped like SageMaker's CreateTrainingJob.

    Attributes:
        name: unique job name (SageMaker's rules: letters, digits, hyphens, ≤ 63).
        inputs: channel name -> data URI (``file://`` locally, ``s3://`` on AWS).
        hyperparameters: passed to the script as ``--key value``.
        entry_point: the script inside source_dir.
        source_dir: folder shipped as the job's code.
        instance_type, instance_count: the compute (``local`` on the local backend).
        volume_size_gb: each instance's storage volume (data, checkpoints, model).
        metric_definitions: regexes applied to every log line.
        max_runtime_s: the job is stopped after this long.
        checkpoint_uri: where checkpoints are synced (resume on restart).
        use_spot, max_wait_s: managed spot training (max_wait_s ≥ max_runtime_s).
    """

    name: str
    inputs: Mapping[str, str]
    hyperparameters: Mapping[str, str | int | float] = field(default_factory=dict)
    entry_point: str = "train.py"
    source_dir: Path = ENTRYPOINTS_DIR
    instance_type: str = "local"
    instance_count: int = 1
    volume_size_gb: int = DEFAULT_VOLUME_SIZE_GB
    metric_definitions: tuple[MetricDefinition, ...] = DEFAULT_METRIC_DEFINITIONS
    max_runtime_s: int = DEFAULT_MAX_RUNTIME_S
    checkpoint_uri: str | None = None
    use_spot: bool = False
    max_wait_s: int | None = None

    def __post_init__(self) -> None:
        if not JOB_NAME_RE.match(self.name):
            raise InvalidInputError(
                f"job name {self.name!r}: use 1-63 letters, digits and hyphens, "
                "starting and ending with a letter or digit"
            )
        if not self.inputs:
            raise InvalidInputError("inputs: a training job needs at least one data channel")
        for channel in self.inputs:
            if not CHANNEL_RE.match(channel):
                raise InvalidInputError(f"inputs: invalid channel name {channel!r}")
        for key in self.hyperparameters:
            if not HYPERPARAMETER_KEY_RE.match(key):
                raise InvalidInputError(f"hyperparameters: invalid name {key!r}")
        if not (Path(self.source_dir) / self.entry_point).is_file():
            raise InvalidInputError(f"entry_point: {self.entry_point} not found in {self.source_dir}")
        self.compute.check()
        names = [m.name for m in self.metric_definitions]
        if len(names) != len(set(names)):
            raise InvalidInputError("metric_definitions: metric names must be unique")

    @property
    def compute(self) -> Compute:
        return Compute(self.instance_type, self.instance_count, self.volume_size_gb, self.max_runtime_s,
                       self.use_spot, self.max_wait_s)

    @property
    def hyperparameters_as_strings(self) -> dict[str, str]:
        """Hyperparameters as SageMaker passes them: every value a string."""
        return {k: str(v) for k, v in self.hyperparameters.items()}
