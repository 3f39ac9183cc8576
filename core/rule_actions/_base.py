"""The rule-actions interface shared by the local chain and AWS (EventBridge, Lambda, SNS)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from core.rule_actions.entities import ActionRecord, ActionsSpec, DeployedActions


class RuleActions(ABC):
    """Deploys the actions (function, role, routing rule, topic), puts events, reads outcomes.

    Invariants: one set of actions per backend (deploying again updates it); the function runs
    ``lambda/rule_action.py`` from the same zip as the Lambda page's function; its role holds one
    inline policy, ``core.rule_actions.policies.action_policy``.
    """

    backend_name: str
    runs_where: str
    """One sentence on where the chain runs."""
    evaluates_in_job: bool
    """Whether jobs evaluate their rules themselves (``--debug-rules-in-job``): where the console may be
    closed while they train (SageMaker, EC2); locally the evaluator beside each job puts the events."""

    @abstractmethod
    def deploy(self, spec: ActionsSpec) -> DeployedActions:
        """Creates or updates the actions; returns them.

        Raises:
            InvalidInputError: a setting cannot be used.
            BackendError: the backend refused (permissions, quotas, ...).
        """

    @abstractmethod
    def describe(self) -> DeployedActions | None:
        """The actions as deployed now; None when none are. Raises BackendError."""

    @abstractmethod
    def remove(self) -> None:
        """Removes the routing rule, the function and its role (a topic stays). Raises BackendError."""

    @abstractmethod
    def put_event(self, entry: dict[str, Any]) -> str:
        """Puts one ``PutEvents`` entry (``entrypoints.rule_events.fired_entry``) on the bus; its event id.

        Raises:
            BackendError: the bus refused the entry.
        """

    @abstractmethod
    def history(self, job_name: str | None = None, *, since: float | None = None) -> list[ActionRecord]:
        """What the function did, from its log, oldest first (only ``job_name``'s events if given, and only
        what it logged from ``since``, seconds since the epoch, on: the log is not read before it).

        Raises:
            BackendError: the log could not be read.
        """
