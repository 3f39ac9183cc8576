"""The profiler's results as frozen records: rule findings and their status."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any


class RuleStatus(str, Enum):
    """A rule's verdict. SageMaker's rule statuses, plus the two reasons a rule did not judge.

    ``NotApplicable`` says why the rule cannot apply (no GPU, one GPU); ``InsufficientData``
    says what is missing so far (samples before the rule's patience, no steps yet). Neither is
    an error: SageMaker's rules end in Error with no hint in those cases.
    """

    ISSUES_FOUND = "IssuesFound"
    NO_ISSUES_FOUND = "NoIssuesFound"
    NOT_APPLICABLE = "NotApplicable"
    INSUFFICIENT_DATA = "InsufficientData"

    @property
    def fired(self) -> bool:
        return self is RuleStatus.ISSUES_FOUND


@dataclass(frozen=True)
class Finding:
    """One rule's result.

    Attributes:
        rule: the ProfilerReport rule name (``LowGPUUtilization``, ``Dataloader``, ...).
        status: the verdict.
        message: what the rule saw, with numbers.
        recommendation: what to change when it fired (empty otherwise).
        parameters: the thresholds it used (SageMaker's defaults unless overridden).
        details: numbers behind the message (violations, percentiles, ...).
        triggered_at: wall-clock time of the first violation, when there is one.
    """

    rule: str
    status: RuleStatus
    message: str
    recommendation: str = ""
    parameters: Mapping[str, Any] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)
    triggered_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (the status as its value)."""
        data = asdict(self)
        data["status"] = self.status.value
        data["parameters"] = dict(self.parameters)
        data["details"] = dict(self.details)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        """Inverse of :meth:`to_dict`."""
        return cls(
            rule=str(data["rule"]), status=RuleStatus(data["status"]), message=str(data["message"]),
            recommendation=str(data.get("recommendation", "")), parameters=dict(data.get("parameters", {})),
            details=dict(data.get("details", {})), triggered_at=data.get("triggered_at"),
        )
