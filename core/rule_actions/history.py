"""Each fired rule of a job with its event and what the actions did: the Debugger page's table."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from core.debugger.entities import RuleEvent, RuleResult, RuleStatus
from core.rule_actions.entities import ActionRecord

COLUMNS = ["rule", "fired at step", "tensor", "event sent", "event id", "action", "outcome", "detail"]


def fired_rules_table(rules: Sequence[RuleResult], events: Sequence[RuleEvent],
                      records: Sequence[ActionRecord]) -> pd.DataFrame:
    """One row per action on each fired rule (one row when no action ran, saying why).

    Args:
        rules: the job's rules (those in IssuesFound fired).
        events: the events its fired rules put on the bus (``DebugStore.events``).
        records: what the action function did (``RuleActions.history``), matched by event id.
    """
    by_event = {r.event_id: r for r in records if r.event_id}
    sent = {e.rule: e for e in events}
    rows = []
    for rule in rules:
        if rule.status is not RuleStatus.ISSUES_FOUND:
            continue
        event = sent.get(rule.rule)
        base = {"rule": rule.rule, "fired at step": rule.step, "tensor": rule.tensor,
                "event sent": _time(event.sent_at) if event else None, "event id": event.event_id if event else None}
        if event is None:
            how = "StopTraining by the evaluator" if rule.stop_training else "notification in the console"
            rows.append({**base, "action": how, "outcome": "no event (rule actions were not deployed at launch)",
                         "detail": rule.message})
        elif event.error:
            rows.append({**base, "action": "PutEvents", "outcome": "refused", "detail": event.error})
        elif event.event_id not in by_event:
            rows.append({**base, "action": "(waiting for the function)", "outcome": "pending",
                         "detail": "the action function has not logged this event yet"})
        else:
            for outcome in by_event[event.event_id].outcomes or ():
                rows.append({**base, "action": outcome.action, "outcome": outcome.outcome, "detail": outcome.message})
            if not by_event[event.event_id].outcomes:
                rows.append({**base, "action": "none", "outcome": "nothing to do",
                             "detail": "the rule has no StopTraining action and no topic is notified"})
    return pd.DataFrame(rows, columns=COLUMNS)


def _time(seconds: float) -> str:
    return pd.Timestamp(seconds, unit="s").strftime("%Y-%m-%d %H:%M:%S")
