"""A fired Debugger rule as an EventBridge event: what the rule evaluator puts on the bus.

Standard library only: the rule evaluator (beside a local job, or inside a SageMaker or EC2
job) and the console build the same entry. The action function (``lambda/rule_action.py``)
reads the ``detail``; the console's EventBridge rule matches ``source``, ``detail-type`` and
``detail.job`` (``core.rule_actions.policies.event_pattern``).
"""

from __future__ import annotations

import json
from typing import Any

SOURCE = "ml-console.debugger"
"""A custom source: EventBridge reserves ``aws.*`` for AWS services."""
DETAIL_TYPE = "Debugger Rule Fired"
DEFAULT_BUS = "default"
RECORDS_FOLDER = "rule-events"
"""Beside a trial: one JSON record per rule the job's own evaluator fired (``job_rules.py`` writes
them, the console's evaluator reads them)."""
MAX_FINDING_CHARS = 1000
"""An entry may hold 256 KB; a finding is one sentence, cut here all the same."""


def fired_entry(*, job: str, rule: str, step: int | None, tensor: str | None, finding: str,
                stop_training: bool, bus: str = DEFAULT_BUS) -> dict[str, Any]:
    """The ``PutEvents`` entry of a rule that fired.

    Args:
        stop_training: whether the rule has the StopTraining action (the stop action acts only then).
    """
    detail = {"job": job, "rule": rule, "step": step, "tensor": tensor, "finding": finding[:MAX_FINDING_CHARS],
              "stop_training": bool(stop_training)}
    return {"Source": SOURCE, "DetailType": DETAIL_TYPE, "Detail": json.dumps(detail, sort_keys=True),
            "EventBusName": bus}


def sent_event_id(response: dict[str, Any]) -> str:
    """The event id of a one-entry ``PutEvents`` answer.

    Raises:
        RuntimeError: the bus refused the entry (its error code and message).
    """
    entries = response.get("Entries") or [{}]
    entry = entries[0]
    if response.get("FailedEntryCount") or not entry.get("EventId"):
        raise RuntimeError(f"{entry.get('ErrorCode') or 'Refused'}: {entry.get('ErrorMessage') or 'no event id'}")
    return str(entry["EventId"])
