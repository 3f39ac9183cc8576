"""Frozen records of the deployed rule actions and of what they did, the same for both backends."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.errors import InvalidInputError

FUNCTION_NAME = "debugger-rule-actions"
RULE_NAME = "debugger-rule-fired"
"""The EventBridge rule that routes fired-rule events to the function."""
_JOB_PREFIX_RE = re.compile(r"^[A-Za-z0-9-]{0,63}$")
_TOPIC_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class ActionsSpec:
    """What the deployed actions do.

    Attributes:
        job_prefix: act on training jobs whose names start with this ("" : every job). It is
            also the policy's resource: ``training-job/<prefix>*``.
        stop_training: stop a job when one of its rules with the StopTraining action fires.
        allow_stop: False deploys the role without ``sagemaker:StopTrainingJob`` (the stop is
            then denied, to see least privilege at work).
        topic_name: an SNS topic to notify of every fired rule (created if missing); None: none.
        email: an address subscribed to the topic (AWS sends it a confirmation first).
    """

    job_prefix: str = ""
    stop_training: bool = True
    allow_stop: bool = True
    topic_name: str | None = None
    email: str | None = None

    def __post_init__(self) -> None:
        if not _JOB_PREFIX_RE.match(self.job_prefix):
            raise InvalidInputError(f"job name prefix {self.job_prefix!r}: letters, digits and hyphens, at most 63")
        if self.topic_name is not None and not _TOPIC_RE.match(self.topic_name):
            raise InvalidInputError(
                f"SNS topic {self.topic_name!r}: 1 to 256 letters, digits, hyphens and underscores")
        if self.email is not None:
            if not _EMAIL_RE.match(self.email):
                raise InvalidInputError(f"e-mail {self.email!r} is not an address")
            if self.topic_name is None:
                raise InvalidInputError("an e-mail address is notified through an SNS topic: name one")
        if not self.stop_training and self.topic_name is None:
            raise InvalidInputError("choose an action: stop the training job, or notify an SNS topic")


@dataclass(frozen=True)
class DeployedActions:
    """The actions as deployed: the function, its role and policy, the routing rule, the topic.

    Attributes:
        event_pattern: the EventBridge rule's pattern (which events reach the function).
        topic_arn: the notified topic; None when the actions notify nobody.
        job_statement: what a job's role needs where jobs put the events themselves (SageMaker's
            execution role, an EC2 run's instance role gets it at launch); None locally.
    """

    spec: ActionsSpec
    backend: str
    bus: str
    function_name: str
    function_arn: str
    role_arn: str
    policy: Mapping[str, Any]
    trust_policy: Mapping[str, Any]
    rule_arn: str
    event_pattern: Mapping[str, Any]
    topic_arn: str | None = None
    job_statement: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ActionOutcome:
    """What one action did: ``action`` (StopTrainingJob, Publish), ``outcome`` (stopped,
    notified, already ended, not found, denied, failed) and the message behind it."""

    action: str
    outcome: str
    message: str


@dataclass(frozen=True)
class ActionRecord:
    """The function's handling of one event, read back from its log.

    Attributes:
        at: when the function logged it (seconds since the epoch).
    """

    at: float
    event_id: str | None
    job: str
    rule: str
    step: int | None
    outcomes: tuple[ActionOutcome, ...] = field(default_factory=tuple)
