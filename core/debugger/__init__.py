"""Debugger data of training jobs: what the job-side rule evaluator wrote to the store.

The console never imports smdebug: ``analysers/debug_sidecar.py`` reads each job's trial
with smdebug in the job environment and writes tensor series, rule results and notifications
through :class:`DebugStore`; ``core.debugger.views`` shapes them for the Debugger page.
This package's ``__init__`` stays standard-library only, because that evaluator imports it.
"""

from core.debugger.entities import (
    SERIES_COLUMNS,
    DebugTrial,
    Notification,
    RuleEvent,
    RuleResult,
    RuleStatus,
    SeriesRow,
    TrialState,
)
from core.debugger.store import DebugStore

__all__ = ["SERIES_COLUMNS", "DebugStore", "DebugTrial", "Notification", "RuleEvent", "RuleResult", "RuleStatus", "SeriesRow",
           "TrialState"]
