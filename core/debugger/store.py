"""Debugger data in the console database: tensor series, rule results, notifications.

The rule evaluator (a process beside the job, ``analysers/debug_sidecar.py``) writes these
tables; the console only reads them, so a page never opens smdebug files. Standard library
only: the evaluator imports this module from the job environment.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

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
from core.jobstore import JobStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS debug_trials (
    job_name TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    state TEXT NOT NULL,
    message TEXT,
    capture TEXT NOT NULL DEFAULT '{}',
    last_step INTEGER,
    steps INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS debug_tensors (
    job_name TEXT NOT NULL,
    tensor TEXT NOT NULL,
    collection TEXT NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (job_name, tensor)
);
CREATE TABLE IF NOT EXISTS debug_series (
    job_name TEXT NOT NULL,
    collection TEXT NOT NULL,
    mode TEXT NOT NULL,
    tensor TEXT NOT NULL,
    step INTEGER NOT NULL,
    mode_step INTEGER NOT NULL,
    value REAL, l2 REAL, mean REAL, abs_mean REAL, std REAL, min REAL, max REAL, zero_fraction REAL, update_ratio REAL,
    PRIMARY KEY (job_name, collection, mode, tensor, step)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS debug_rules (
    job_name TEXT NOT NULL,
    rule TEXT NOT NULL,
    status TEXT NOT NULL,
    stop_training INTEGER NOT NULL DEFAULT 0,
    parameters TEXT NOT NULL DEFAULT '{}',
    step INTEGER,
    tensor TEXT,
    message TEXT,
    meaning TEXT,
    advice TEXT,
    evaluated_step INTEGER,
    updated_at REAL NOT NULL,
    PRIMARY KEY (job_name, rule)
);
CREATE TABLE IF NOT EXISTS debug_notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_name TEXT NOT NULL,
    created_at REAL NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL,
    rule TEXT,
    action TEXT
);
CREATE INDEX IF NOT EXISTS debug_notifications_by_job ON debug_notifications(job_name, id);
CREATE TABLE IF NOT EXISTS debug_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_name TEXT NOT NULL,
    rule TEXT NOT NULL,
    sent_at REAL NOT NULL,
    bus TEXT NOT NULL,
    entry TEXT NOT NULL,
    event_id TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS debug_events_by_job ON debug_events(job_name, id);
"""
_RULE_COLUMNS = {"status", "step", "tensor", "message", "meaning", "advice", "evaluated_step"}
_TRIAL_COLUMNS = {"path", "state", "message", "capture", "last_step", "steps"}


class DebugStore:
    """Typed access to the debugger tables of a :class:`JobStore`'s database."""

    def __init__(self, jobs: JobStore) -> None:
        self.jobs = jobs
        with jobs.transaction() as conn:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)

    # --- written by the evaluator ---------------------------------------------------------

    def set_trial(self, job_name: str, **values: Any) -> None:
        """Creates or updates the trial row of a job (path, state, message, capture, ...)."""
        unknown = set(values) - _TRIAL_COLUMNS
        if unknown:
            raise ValueError(f"unknown trial fields {sorted(unknown)}")
        row = {k: _encode(v) for k, v in values.items()}
        row["updated_at"] = time.time()
        with self.jobs.transaction() as conn:
            exists = conn.execute("SELECT 1 FROM debug_trials WHERE job_name = ?", (job_name,)).fetchone()
            if exists:
                sets = ", ".join(f"{k} = ?" for k in row)
                conn.execute(f"UPDATE debug_trials SET {sets} WHERE job_name = ?", [*row.values(), job_name])
            else:
                row.setdefault("path", "")
                row.setdefault("state", TrialState.WAITING.value)
                columns = ", ".join(["job_name", *row])
                marks = ", ".join("?" for _ in range(len(row) + 1))
                conn.execute(f"INSERT INTO debug_trials ({columns}) VALUES ({marks})", [job_name, *row.values()])

    def add_tensors(self, job_name: str, tensors: Mapping[str, tuple[str, int]]) -> None:
        """Records tensors (name -> (collection, position in the model)); known ones are kept."""
        with self.jobs.transaction() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO debug_tensors (job_name, tensor, collection, position) VALUES (?, ?, ?, ?)",
                [(job_name, name, collection, position) for name, (collection, position) in tensors.items()],
            )

    def add_series(self, job_name: str, rows: Iterable[SeriesRow]) -> int:
        """Appends (or replaces) series rows; returns how many were written."""
        columns = ", ".join(SERIES_COLUMNS)
        marks = ", ".join("?" for _ in SERIES_COLUMNS)
        values = [(job_name, r.collection, r.mode, r.tensor, r.step, r.mode_step, *(r.values.get(c) for c in SERIES_COLUMNS))
                  for r in rows]
        if values:
            with self.jobs.transaction() as conn:
                conn.executemany(
                    f"INSERT OR REPLACE INTO debug_series (job_name, collection, mode, tensor, step, mode_step, {columns}) "
                    f"VALUES (?, ?, ?, ?, ?, ?, {marks})",
                    values,
                )
        return len(values)

    def thin_series(self, job_name: str, collections: Sequence[str], keep_steps: Iterable[int]) -> None:
        """Deletes the values of ``collections`` at every step not in ``keep_steps`` (downsampling)."""
        keep = sorted(set(keep_steps))
        marks = ", ".join("?" for _ in collections)
        with self.jobs.transaction() as conn:
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS keep_steps (step INTEGER PRIMARY KEY)")
            conn.execute("DELETE FROM keep_steps")
            conn.executemany("INSERT INTO keep_steps (step) VALUES (?)", [(s,) for s in keep])
            conn.execute(
                f"DELETE FROM debug_series WHERE job_name = ? AND collection IN ({marks}) "
                "AND step NOT IN (SELECT step FROM keep_steps)",
                [job_name, *collections],
            )

    def init_rules(self, job_name: str, rules: Sequence[RuleResult]) -> None:
        """Replaces the job's rules with ``rules`` (the evaluator's start)."""
        with self.jobs.transaction() as conn:
            conn.execute("DELETE FROM debug_rules WHERE job_name = ?", (job_name,))
            conn.executemany(
                "INSERT INTO debug_rules (job_name, rule, status, stop_training, parameters, step, tensor, message, "
                "meaning, advice, evaluated_step, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(job_name, r.rule, r.status.value, int(r.stop_training), json.dumps(dict(r.parameters)), r.step,
                  r.tensor, r.message, r.meaning, r.advice, r.evaluated_step, time.time()) for r in rules],
            )

    def update_rule(self, job_name: str, rule: str, **values: Any) -> None:
        """Sets columns of one rule (status, step, tensor, message, evaluated_step, ...)."""
        unknown = set(values) - _RULE_COLUMNS
        if unknown:
            raise ValueError(f"unknown rule fields {sorted(unknown)}")
        row = {k: _encode(v) for k, v in values.items()}
        row["updated_at"] = time.time()
        sets = ", ".join(f"{k} = ?" for k in row)
        with self.jobs.transaction() as conn:
            conn.execute(f"UPDATE debug_rules SET {sets} WHERE job_name = ? AND rule = ?", [*row.values(), job_name, rule])

    def notify(self, job_name: str, level: str, message: str, *, rule: str | None = None,
               action: str | None = None) -> None:
        """Adds a notification the console shows."""
        with self.jobs.transaction() as conn:
            conn.execute(
                "INSERT INTO debug_notifications (job_name, created_at, level, message, rule, action) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (job_name, time.time(), level, message, rule, action),
            )

    def add_event(self, job_name: str, rule: str, bus: str, entry: Mapping[str, Any], *, sent_at: float,
                  event_id: str | None, error: str | None = None) -> None:
        """Records a fired rule's event: put on ``bus`` at ``sent_at`` as ``event_id``, or refused with ``error``."""
        with self.jobs.transaction() as conn:
            conn.execute(
                "INSERT INTO debug_events (job_name, rule, sent_at, bus, entry, event_id, error) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (job_name, rule, sent_at, bus, json.dumps(dict(entry)), event_id, error),
            )

    # --- read by the console --------------------------------------------------------------

    def trial(self, job_name: str) -> DebugTrial | None:
        """The job's trial row, or None when no evaluator ever ran for it."""
        with self.jobs.transaction() as conn:
            row = conn.execute("SELECT * FROM debug_trials WHERE job_name = ?", (job_name,)).fetchone()
        if row is None:
            return None
        return DebugTrial(
            job_name=job_name, path=row["path"], state=TrialState(row["state"]), updated_at=row["updated_at"],
            message=row["message"], capture=json.loads(row["capture"]), last_step=row["last_step"], steps=row["steps"],
        )

    def tensors(self, job_name: str, collection: str | None = None) -> list[tuple[str, str]]:
        """(tensor, collection) pairs of a job in model order, optionally of one collection."""
        query = "SELECT tensor, collection FROM debug_tensors WHERE job_name = ?"
        args: list[Any] = [job_name]
        if collection:
            query += " AND collection = ?"
            args.append(collection)
        with self.jobs.transaction() as conn:
            rows = conn.execute(query + " ORDER BY position, tensor", args).fetchall()
        return [(r["tensor"], r["collection"]) for r in rows]

    def series(
        self,
        job_name: str,
        collection: str,
        columns: Sequence[str] = SERIES_COLUMNS,
        *,
        modes: Sequence[str] | None = None,
        tensors: Sequence[str] | None = None,
        steps: Sequence[int] | None = None,
    ) -> list[tuple[Any, ...]]:
        """Rows ``(tensor, mode, step, mode_step, *columns)`` of one collection, by step.

        Raises:
            ValueError: a column that is not one of SERIES_COLUMNS.
        """
        unknown = set(columns) - set(SERIES_COLUMNS)
        if unknown:
            raise ValueError(f"unknown series columns {sorted(unknown)}")
        query = (f"SELECT tensor, mode, step, mode_step{''.join(', ' + c for c in columns)} FROM debug_series "
                 "WHERE job_name = ? AND collection = ?")
        args: list[Any] = [job_name, collection]
        for column, values in (("mode", modes), ("tensor", tensors), ("step", steps)):
            if values:
                query += f" AND {column} IN ({', '.join('?' for _ in values)})"
                args += list(values)
        with self.jobs.transaction() as conn:
            conn.row_factory = None  # plain tuples: for long series, sqlite3.Row costs more than the query
            return conn.execute(query + " ORDER BY step", args).fetchall()

    def rules(self, job_name: str) -> list[RuleResult]:
        """The job's rules, in the order they were configured."""
        with self.jobs.transaction() as conn:
            rows = conn.execute("SELECT * FROM debug_rules WHERE job_name = ? ORDER BY rowid", (job_name,)).fetchall()
        return [
            RuleResult(
                job_name=job_name, rule=r["rule"], status=RuleStatus(r["status"]), updated_at=r["updated_at"],
                parameters=json.loads(r["parameters"]), stop_training=bool(r["stop_training"]), step=r["step"],
                tensor=r["tensor"], message=r["message"], meaning=r["meaning"], advice=r["advice"],
                evaluated_step=r["evaluated_step"],
            )
            for r in rows
        ]

    def notifications(self, job_name: str, *, limit: int = 50) -> list[Notification]:
        """The job's notifications, newest first."""
        with self.jobs.transaction() as conn:
            rows = conn.execute(
                "SELECT * FROM debug_notifications WHERE job_name = ? ORDER BY id DESC LIMIT ?", (job_name, limit)
            ).fetchall()
        return [
            Notification(id=r["id"], job_name=job_name, created_at=r["created_at"], level=r["level"],
                         message=r["message"], rule=r["rule"], action=r["action"])
            for r in rows
        ]

    def events(self, job_name: str) -> list[RuleEvent]:
        """The events the job's fired rules put on the bus, oldest first."""
        with self.jobs.transaction() as conn:
            rows = conn.execute("SELECT * FROM debug_events WHERE job_name = ? ORDER BY id", (job_name,)).fetchall()
        return [RuleEvent(job_name=job_name, rule=r["rule"], sent_at=r["sent_at"], bus=r["bus"],
                          entry=json.loads(r["entry"]), event_id=r["event_id"], error=r["error"]) for r in rows]


def _encode(value: Any) -> Any:
    if isinstance(value, (RuleStatus, TrialState)):
        return value.value
    if isinstance(value, Mapping):
        return json.dumps(dict(value))
    return value
