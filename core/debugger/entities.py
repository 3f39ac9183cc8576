"""Frozen records of a job's debugger data: the trial's state, rule results, notifications."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum


class RuleStatus(str, Enum):
    """A rule's evaluation status, with SageMaker's ``RuleEvaluationStatus`` spellings."""

    IN_PROGRESS = "InProgress"
    NO_ISSUES_FOUND = "NoIssuesFound"
    ISSUES_FOUND = "IssuesFound"
    ERROR = "Error"
    STOPPING = "Stopping"
    STOPPED = "Stopped"

    @property
    def is_terminal(self) -> bool:
        return self is not RuleStatus.IN_PROGRESS


class TrialState(str, Enum):
    """Where the evaluator stands with a job's trial (its debug folder)."""

    WAITING = "Waiting"  # the job runs, nothing saved yet
    READING = "Reading"  # the evaluator reads the trial as the job writes it
    COMPLETE = "Complete"  # the job ended and everything was read
    MISSING = "Missing"  # the job ended without a debug folder (or S3 trial), or with an empty one
    DISABLED = "Disabled"  # the job ran with --debug false
    FAILED = "Failed"  # the capture or the evaluator failed (message says why)


@dataclass(frozen=True)
class DebugTrial:
    """The evaluator's view of one job's trial.

    Attributes:
        path: the trial folder or ``s3://`` URI.
        capture: what the training script saved (``capture.json``: collections, interval, ...).
        last_step: the last global step read; steps: how many steps were read.
        updated_at: when the evaluator last wrote (seconds since the epoch).
    """

    job_name: str
    path: str
    state: TrialState
    updated_at: float
    message: str | None = None
    capture: Mapping[str, object] = field(default_factory=dict)
    last_step: int | None = None
    steps: int = 0


@dataclass(frozen=True)
class RuleResult:
    """One rule of a job: its status, and where and why it fired.

    Attributes:
        step, tensor: the global step and the tensor that fired the rule (None otherwise).
        message: what the rule found (or why it is in Error); meaning: what the rule detects
            in plain language; advice: what to try.
        stop_training: whether the StopTraining action is on for this rule.
        evaluated_step: the last global step the rule looked at.
    """

    job_name: str
    rule: str
    status: RuleStatus
    updated_at: float
    parameters: Mapping[str, object] = field(default_factory=dict)
    stop_training: bool = False
    step: int | None = None
    tensor: str | None = None
    message: str | None = None
    meaning: str | None = None
    advice: str | None = None
    evaluated_step: int | None = None


@dataclass(frozen=True)
class Notification:
    """An entry the console shows: a rule fired, an action ran, or the evaluator failed."""

    id: int
    job_name: str
    created_at: float
    level: str  # "info", "warning" or "error"
    message: str
    rule: str | None = None
    action: str | None = None


@dataclass(frozen=True)
class RuleEvent:
    """The event a fired rule put on the bus (``entry``, a ``PutEvents`` entry), or why it could not.

    Attributes:
        event_id: the bus's id for it; None when it was refused (``error`` says why).
    """

    job_name: str
    rule: str
    sent_at: float
    bus: str
    entry: Mapping[str, object]
    event_id: str | None = None
    error: str | None = None


SERIES_COLUMNS: tuple[str, ...] = ("value", "l2", "mean", "abs_mean", "std", "min", "max", "zero_fraction",
                                   "update_ratio")
"""What a series row holds: ``value`` for scalars saved in full (losses), else the hook's reductions."""


@dataclass(frozen=True)
class SeriesRow:
    """One tensor at one step, as the evaluator writes it: its reductions (or its value).

    ``mode`` is ``TRAIN``, ``EVAL`` or ``PREDICT``; ``values`` maps names of
    :data:`SERIES_COLUMNS` to numbers (None: NaN); other names are dropped.
    """

    tensor: str
    collection: str
    mode: str
    step: int
    mode_step: int
    values: Mapping[str, float | None]
