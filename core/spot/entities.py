"""What a spot run is asked to do, what it is, and what happened to it (frozen records)."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from core.errors import InvalidInputError
from core.training.spec import HYPERPARAMETER_KEY_RE, JOB_NAME_RE

REQUEST_TYPES = ("one-time", "persistent")
INTERRUPTION_BEHAVIORS = ("terminate", "stop", "hibernate")
AWS_NOTICE_S = 120.0
"""EC2 announces a spot interruption two minutes ahead."""
MIN_NOTICE_S = 2.0
MAX_VOLUME_GB = 16_384


class SpotRunStatus(str, Enum):
    """Where a spot run stands."""

    PENDING = "Pending"
    RUNNING = "Running"
    NOTICE = "InterruptionNotice"
    WAITING = "WaitingForCapacity"
    COMPLETED = "Completed"
    FAILED = "Failed"
    INTERRUPTED = "Interrupted"
    TERMINATED = "Terminated"

    @property
    def is_terminal(self) -> bool:
        return self in (SpotRunStatus.COMPLETED, SpotRunStatus.FAILED, SpotRunStatus.INTERRUPTED,
                        SpotRunStatus.TERMINATED)


@dataclass(frozen=True)
class SpotRunSpec:
    """A spot training run: the EC2 script on a dataset, with the spot request's options.

    Attributes:
        name: unique run name (SageMaker job-name rules: letters, digits, hyphens, ≤ 63).
        data_uri: the dataset (``file://`` locally, ``s3://`` on AWS).
        hyperparameters: passed to ``entrypoints/ec2_train.py`` as ``--key value``.
        instance_type: EC2 instance type (``local`` for the simulator).
        request_type: ``one-time`` (an interruption ends the run) or ``persistent`` (EC2, or the
            simulator, launches a new instance that resumes from the checkpoint).
        max_price: highest price per hour paid (USD); None: up to the on-demand price.
        interruption_behavior: ``terminate``, ``stop`` or ``hibernate``. As with EC2's
            RunInstances, a one-time request only terminates and a persistent one only stops or
            hibernates (the instance, and its disk, come back when capacity does); None picks
            ``terminate`` or ``stop`` to match the request type.
        notice_s: seconds between the notice and the reclaim; 120 on EC2, shorter allowed in
            the local simulator for tests and demos.
        interrupt_after_s: simulator: the n-th instance is interrupted this many seconds after it
            starts (one value per planned interruption).
        relaunch_delay_s: simulator: how long a persistent request waits for capacity.
        watch_notice: the script checkpoints on the notice (False: only per-epoch checkpoints).
        spot_price_per_h, on_demand_price_per_h: prices for the cost figures (USD/hour; locally
            entered by the user).
        expected_hours: the run's expected duration for the estimate.
        volume_size_gb: the instance's root volume (EBS, gp3); None: the AMI's size. EC2 only.
    """

    name: str
    data_uri: str
    hyperparameters: Mapping[str, str | int | float] = field(default_factory=dict)
    instance_type: str = "local"
    request_type: str = "persistent"
    max_price: float | None = None
    interruption_behavior: str | None = None
    notice_s: float = AWS_NOTICE_S
    interrupt_after_s: tuple[float, ...] = ()
    relaunch_delay_s: float = 2.0
    watch_notice: bool = True
    spot_price_per_h: float | None = None
    on_demand_price_per_h: float | None = None
    expected_hours: float = 1.0
    volume_size_gb: int | None = None

    def __post_init__(self) -> None:
        if not JOB_NAME_RE.match(self.name):
            raise InvalidInputError(f"name {self.name!r}: use 1-63 letters, digits and hyphens, "
                                    "starting and ending with a letter or digit")
        if not self.data_uri:
            raise InvalidInputError("data_uri: choose a dataset")
        for key in self.hyperparameters:
            if not HYPERPARAMETER_KEY_RE.match(key):
                raise InvalidInputError(f"hyperparameters: invalid name {key!r}")
        if self.request_type not in REQUEST_TYPES:
            raise InvalidInputError(f"request_type: {self.request_type!r} is not one of {', '.join(REQUEST_TYPES)}")
        if self.interruption_behavior is None:
            default = "terminate" if self.request_type == "one-time" else "stop"
            object.__setattr__(self, "interruption_behavior", default)
        if self.interruption_behavior not in INTERRUPTION_BEHAVIORS:
            raise InvalidInputError(f"interruption_behavior: {self.interruption_behavior!r} is not one of "
                                    f"{', '.join(INTERRUPTION_BEHAVIORS)}")
        if self.request_type == "one-time" and self.interruption_behavior != "terminate":
            raise InvalidInputError("interruption_behavior: a one-time request can only terminate; "
                                    "stop and hibernate need a persistent request")
        if self.request_type == "persistent" and self.interruption_behavior == "terminate":
            raise InvalidInputError("interruption_behavior: EC2 runs a persistent request only with stop or "
                                    "hibernate (RunInstances); choose one, or a one-time request")
        for label, value in (("max_price", self.max_price), ("spot_price_per_h", self.spot_price_per_h),
                             ("on_demand_price_per_h", self.on_demand_price_per_h)):
            if value is not None and not (math.isfinite(value) and value > 0):
                raise InvalidInputError(f"{label}: must be a positive price per hour, got {value}")
        if not (math.isfinite(self.notice_s) and self.notice_s >= MIN_NOTICE_S):
            raise InvalidInputError(f"notice_s: must be at least {MIN_NOTICE_S:g} s, got {self.notice_s}")
        if any(not (math.isfinite(t) and t > 0) for t in self.interrupt_after_s):
            raise InvalidInputError("interrupt_after_s: every interruption needs a positive number of seconds")
        if not (math.isfinite(self.relaunch_delay_s) and 0 <= self.relaunch_delay_s <= 3600):
            raise InvalidInputError("relaunch_delay_s: must be between 0 and 3600 s")
        if not (math.isfinite(self.expected_hours) and 0 < self.expected_hours <= 10_000):
            raise InvalidInputError("expected_hours: must be more than 0 and at most 10000")
        if self.volume_size_gb is not None and not 1 <= self.volume_size_gb <= MAX_VOLUME_GB:
            raise InvalidInputError(f"volume_size_gb: an EBS gp3 volume holds 1 to {MAX_VOLUME_GB} GB, "
                                    f"got {self.volume_size_gb}")

    @property
    def hyperparameters_as_strings(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.hyperparameters.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "data_uri": self.data_uri, "hyperparameters": self.hyperparameters_as_strings,
            "instance_type": self.instance_type, "request_type": self.request_type, "max_price": self.max_price,
            "interruption_behavior": self.interruption_behavior, "notice_s": self.notice_s,
            "interrupt_after_s": list(self.interrupt_after_s), "relaunch_delay_s": self.relaunch_delay_s,
            "watch_notice": self.watch_notice, "spot_price_per_h": self.spot_price_per_h,
            "on_demand_price_per_h": self.on_demand_price_per_h, "expected_hours": self.expected_hours,
            "volume_size_gb": self.volume_size_gb,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SpotRunSpec:
        values = dict(data)
        values["interrupt_after_s"] = tuple(float(t) for t in values.get("interrupt_after_s", ()))
        return cls(**values)


@dataclass(frozen=True)
class SpotEvent:
    """One thing that happened to a run: ``launch``, ``start``, ``resume``, ``checkpoint``,
    ``notice``, ``interrupted``, ``relaunch``, ``done``, ``completed``, ``failed``, ``terminated``."""

    run: str
    time: float
    kind: str
    instance: str = ""
    detail: Mapping[str, Any] = field(default_factory=dict)


RECORD_FIELDS = ("time", "kind", "instance", "replaces", "mirror_replaces")
"""Fields of the script's event records (spot-events.jsonl) that are bookkeeping, not an event's
detail: when, what, where, and which checkpoint file a save replaces (to tell whether it landed)."""


def event_detail(record: Mapping[str, Any]) -> dict[str, Any]:
    """What an event record tells beyond its bookkeeping fields (the event's detail)."""
    return {k: v for k, v in record.items() if k not in RECORD_FIELDS}


@dataclass(frozen=True)
class SpotRun:
    """A spot run as both backends describe it."""

    name: str
    backend: str
    status: SpotRunStatus
    spec: SpotRunSpec
    created_at: float
    ended_at: float | None = None
    detail: str | None = None
    failure_reason: str | None = None
    model_uri: str | None = None
    final_metrics: Mapping[str, float] = field(default_factory=dict)
    resources: Mapping[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return (self.ended_at or time.time()) - self.created_at


def parse_interrupt_schedule(text: str) -> tuple[float, ...]:
    """``"30, 45"`` -> ``(30.0, 45.0)``: interrupt the first instance 30 s after it starts, the
    second 45 s after it starts. Empty text: no planned interruption.

    Raises:
        InvalidInputError: a value that is not a positive number of seconds.
    """
    values = []
    for part in (p.strip() for p in text.replace(";", ",").split(",")):
        if not part:
            continue
        try:
            value = float(part)
        except ValueError:
            raise InvalidInputError(f"interruptions: {part!r} is not a number of seconds") from None
        if not (math.isfinite(value) and value > 0):
            raise InvalidInputError(f"interruptions: {part!r} must be a positive number of seconds")
        values.append(value)
    return tuple(values)
