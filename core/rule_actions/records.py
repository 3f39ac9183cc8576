"""The action function's outcomes, read back from its log.

``lambda/rule_action.py`` logs one ``RULE_ACTION {json}`` line per event it handles, in
Lambda's log format (``[INFO]\\t<time>Z\\t<request id>\\t<message>``), to its log group on AWS and
to its ``logs.txt`` locally. The console learns what the actions did from those lines alone:
EventBridge invokes the function asynchronously, so nobody waits for its answer.
"""

from __future__ import annotations

import calendar
import json
import re
import time
from collections.abc import Iterable

from core.rule_actions.entities import ActionOutcome, ActionRecord

RECORD_PREFIX = "RULE_ACTION "
"""``lambda/rule_action.py``'s ``RECORD_PREFIX`` (a test keeps the two equal)."""
_TIME = re.compile(r"\t(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z\t")


def parse_records(lines: Iterable[str], *, default_time: float | None = None) -> list[ActionRecord]:
    """The records among ``lines``, oldest first; other lines and broken records are skipped.

    Args:
        default_time: the time of a line without Lambda's timestamp (None: now).
    """
    records = []
    for line in lines:
        start = line.find(RECORD_PREFIX)
        if start < 0:
            continue
        try:
            data = json.loads(line[start + len(RECORD_PREFIX):])
            outcomes = tuple(ActionOutcome(str(a["action"]), str(a["outcome"]), str(a.get("message", "")))
                             for a in data.get("actions", []))
            step = data.get("step")
            records.append(ActionRecord(at=_line_time(line, default_time), event_id=data.get("event_id"),
                                        job=str(data["job"]), rule=str(data["rule"]),
                                        step=int(step) if step is not None else None, outcomes=outcomes))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    return records


def _line_time(line: str, default: float | None) -> float:
    match = _TIME.search(line)
    if match is None:
        return time.time() if default is None else default
    seconds = calendar.timegm(time.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S"))
    return seconds + float(match.group(2) or 0)
