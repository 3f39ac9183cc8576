"""Debugger rule actions: fired rules as EventBridge events, acted on by a Lambda function.

A rule that fires puts a "Debugger Rule Fired" event on the event bus
(``entrypoints/rule_events.py`` builds it). The actions deployed from the Debugger page are an
EventBridge rule that routes those events to ``lambda/rule_action.py`` (stop the training job,
notify an SNS topic), with a least-privilege role. ``RuleActions`` is the interface; the local
backend runs the same chain on this machine (a local bus, the same zip in its own process).
"""

from core.rule_actions._base import RuleActions
from core.rule_actions.entities import ActionOutcome, ActionRecord, ActionsSpec, DeployedActions

__all__ = ["ActionOutcome", "ActionRecord", "ActionsSpec", "DeployedActions", "RuleActions"]
