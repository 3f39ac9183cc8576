"""Spot runs and their events in the console database (beside training jobs).

The app, the simulator's supervisors and the AWS poller write here; every call is one short
transaction through :meth:`JobStore.transaction`. Rows never leave this module.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from core.entities import TrainingJob
from core.errors import AlreadyExistsError, BackendError, NotFoundError
from core.jobstore import JobStore, update_record
from core.spot.entities import SpotEvent, SpotRun, SpotRunSpec, SpotRunStatus
from core.types import JobStatus

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spot_runs (
    name TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    status TEXT NOT NULL,
    detail TEXT,
    failure_reason TEXT,
    created_at REAL NOT NULL,
    ended_at REAL,
    spec TEXT NOT NULL,
    run_dir TEXT,
    supervisor_pid INTEGER,
    instance_pid INTEGER,
    interrupt_requested_at REAL,
    model_uri TEXT,
    final_metrics TEXT NOT NULL DEFAULT '{}',
    resources TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS spot_events (
    run TEXT NOT NULL REFERENCES spot_runs(name) ON DELETE CASCADE,
    time REAL NOT NULL,
    kind TEXT NOT NULL,
    instance TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS spot_events_by_run ON spot_events(run, time);
"""
_FIELDS = frozenset(
    [
        "status", "detail", "failure_reason", "ended_at", "run_dir", "supervisor_pid", "instance_pid",
        "interrupt_requested_at", "model_uri", "final_metrics", "resources"
    ]
)
_JSON_FIELDS = ("final_metrics", "resources")


class SpotStore:
    """Typed access to spot runs in the console database of ``store``."""

    def __init__(self, store: JobStore) -> None:
        self.jobs = store
        try:
            conn = sqlite3.connect(store.path, timeout=30)
            try:
                conn.executescript(_SCHEMA)
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise BackendError(f"cannot open the spot tables in {store.path}: {exc}") from exc

    def insert_run(self, run: SpotRun, *, run_dir: Path | None = None) -> None:
        """Adds a run. Raises AlreadyExistsError when a run or a training job has the name."""
        try:
            self.jobs.get_job(run.name)
            raise AlreadyExistsError(f"a training job named {run.name!r} exists already: choose another name")
        except NotFoundError:
            pass
        try:
            with self.jobs.transaction() as conn:
                conn.execute(
                    "INSERT INTO spot_runs (name, backend, status, detail, created_at, spec, run_dir, resources) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (run.name, run.backend, run.status.value, run.detail, run.created_at,
                     json.dumps(run.spec.to_dict()), str(run_dir) if run_dir else None,
                     json.dumps(dict(run.resources))),
                )
        except BackendError as exc:
            if isinstance(exc.__cause__, sqlite3.IntegrityError):
                raise AlreadyExistsError(f"a spot run named {run.name!r} exists already") from None
            raise

    def update_run(self, name: str, **changes: Any) -> SpotRun:
        """Sets columns of a run. A terminal status is final: later status changes are ignored.

        Raises:
            NotFoundError: no run of that name.
        """
        unknown = set(changes) - _FIELDS
        if unknown:
            raise ValueError(f"unknown spot run fields {sorted(unknown)}")
        values = {k: (json.dumps(dict(v)) if k in _JSON_FIELDS else v.value if isinstance(v, SpotRunStatus) else v)
                  for k, v in changes.items()}
        with self.jobs.transaction() as conn:
            update_record(conn, "spot_runs", name, values, is_terminal=lambda s: SpotRunStatus(s).is_terminal,
                          what="spot run")
        return self.get_run(name)

    def get_run(self, name: str) -> SpotRun:
        """Raises NotFoundError for an unknown name."""
        with self.jobs.transaction() as conn:
            row = conn.execute("SELECT * FROM spot_runs WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFoundError(f"no spot run named {name!r}")
        return _run_from_row(row)

    def runtime(self, name: str) -> dict[str, Any]:
        """Local bookkeeping: run_dir, supervisor_pid, instance_pid, interrupt_requested_at."""
        with self.jobs.transaction() as conn:
            row = conn.execute("SELECT run_dir, supervisor_pid, instance_pid, interrupt_requested_at "
                               "FROM spot_runs WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFoundError(f"no spot run named {name!r}")
        return dict(row)

    def list_runs(self, *, backend: str | None = None, limit: int = 100) -> list[SpotRun]:
        """Runs, newest first."""
        query, args = "SELECT * FROM spot_runs", []
        if backend:
            query += " WHERE backend = ?"
            args.append(backend)
        with self.jobs.transaction() as conn:
            rows = conn.execute(query + " ORDER BY created_at DESC LIMIT ?", [*args, limit]).fetchall()
        return [_run_from_row(r) for r in rows]

    def add_event(self, event: SpotEvent) -> None:
        with self.jobs.transaction() as conn:
            conn.execute("INSERT INTO spot_events (run, time, kind, instance, detail) VALUES (?, ?, ?, ?, ?)",
                         (event.run, event.time, event.kind, event.instance, json.dumps(dict(event.detail))))

    def events(self, name: str) -> list[SpotEvent]:
        """A run's events in time order."""
        with self.jobs.transaction() as conn:
            rows = conn.execute("SELECT * FROM spot_events WHERE run = ? ORDER BY time, rowid", (name,)).fetchall()
        return [SpotEvent(run=r["run"], time=r["time"], kind=r["kind"], instance=r["instance"],
                          detail=json.loads(r["detail"])) for r in rows]

    def record_as_training_job(self, run: SpotRun) -> None:
        """Lists a completed run among training jobs (job_dir = its folder), so the Training,
        Deploy, Debugger and Profiler pages see it like any local job. No-op if already there."""
        try:
            self.jobs.get_job(run.name)
            return
        except NotFoundError:
            pass
        run_dir = self.runtime(run.name)["run_dir"]
        self.jobs.insert_job(
            TrainingJob(name=run.name, status=JobStatus.COMPLETED,
                        backend=run.backend, created_at=run.created_at, started_at=run.created_at,
                        ended_at=run.ended_at, secondary_status="Completed (EC2 Spot run)",
                        hyperparameters=run.spec.hyperparameters_as_strings, inputs={"training": run.spec.data_uri},
                        instance_type=f"spot:{run.spec.instance_type}", model_uri=run.model_uri,
                        final_metrics=dict(run.final_metrics)),
            job_dir=Path(run_dir) if run_dir else None,
        )


def _run_from_row(row: Any) -> SpotRun:
    return SpotRun(
        name=row["name"], backend=row["backend"], status=SpotRunStatus(row["status"]),
        spec=SpotRunSpec.from_dict(json.loads(row["spec"])), created_at=row["created_at"], ended_at=row["ended_at"],
        detail=row["detail"], failure_reason=row["failure_reason"], model_uri=row["model_uri"],
        final_metrics=json.loads(row["final_metrics"]), resources=json.loads(row["resources"]),
    )
