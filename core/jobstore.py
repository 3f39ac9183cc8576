"""The embedded SQLite store: training jobs, their metrics, and the dataset catalog.

Several processes use it at once (the app, each job's supervisor), so every call opens a
short-lived connection in WAL mode with a busy timeout; no connection is shared between
threads. SQL rows never leave this module: callers get frozen entities.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from core.entities import DatasetRecord, MetricPoint, TrainingJob
from core.errors import AlreadyExistsError, BackendError, NotFoundError
from core.types import JobStatus

FINAL_FIELDS = ("status", "failure_reason", "ended_at")
"""What a record in a terminal state keeps: a late writer (a supervisor finishing after a stop
was recorded) cannot resurrect it."""


def update_record(conn: sqlite3.Connection, table: str, name: str, values: Mapping[str, Any], *,
                  is_terminal: Callable[[str], bool], what: str) -> None:
    """Sets columns of the record ``name`` in ``table`` (a table of this database with ``name``
    and ``status`` columns); once its status is terminal, :data:`FINAL_FIELDS` stay as they are.

    Raises:
        NotFoundError: no record of that name (``what`` names the kind, e.g. "training job").
    """
    row = conn.execute(f"SELECT status FROM {table} WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise NotFoundError(f"no {what} named {name!r}")
    if is_terminal(row["status"]):
        values = {k: v for k, v in values.items() if k not in FINAL_FIELDS}
    if values:
        assignments = ", ".join(f"{k} = ?" for k in values)
        conn.execute(f"UPDATE {table} SET {assignments} WHERE name = ?", [*values.values(), name])


_SCHEMA = """
CREATE TABLE IF NOT EXISTS training_jobs (
    name TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    status TEXT NOT NULL,
    secondary_status TEXT,
    failure_reason TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL,
    hyperparameters TEXT NOT NULL DEFAULT '{}',
    inputs TEXT NOT NULL DEFAULT '{}',
    instance_type TEXT NOT NULL DEFAULT 'local',
    instance_count INTEGER NOT NULL DEFAULT 1,
    model_uri TEXT,
    final_metrics TEXT NOT NULL DEFAULT '{}',
    job_dir TEXT,
    supervisor_pid INTEGER,
    worker_pid INTEGER,
    heartbeat_at REAL
);
CREATE TABLE IF NOT EXISTS metrics (
    job_name TEXT NOT NULL REFERENCES training_jobs(name) ON DELETE CASCADE,
    name TEXT NOT NULL,
    step INTEGER NOT NULL,
    value REAL NOT NULL,
    timestamp REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS metrics_by_job ON metrics(job_name, name, step);
CREATE TABLE IF NOT EXISTS datasets (
    name TEXT PRIMARY KEY,
    uri TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at REAL NOT NULL,
    report TEXT NOT NULL DEFAULT '{}'
);
"""

_JOB_FIELDS = [
    "name", "backend", "status", "secondary_status", "failure_reason", "created_at", "started_at", "ended_at",
    "hyperparameters", "inputs", "instance_type", "instance_count", "model_uri", "final_metrics", "job_dir",
    "supervisor_pid", "worker_pid", "heartbeat_at"
]
_ADDED_COLUMNS = {"training_jobs": {"instance_count": "INTEGER NOT NULL DEFAULT 1"}}
"""Columns added since a store was first created: a store written by an older version gains them."""


class JobStore:
    """Typed access to the console database at ``path`` (created on first use)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(self.path, timeout=30)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(_SCHEMA)
                _add_missing_columns(conn)
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise BackendError(f"cannot open the job store {self.path}: {exc}") from exc

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A connection inside one immediate transaction (committed, or rolled back on error).

        For stores of other records that share this database (tuning jobs); sqlite3 errors
        come out as BackendError.
        """
        with self._connect() as conn:
            yield conn

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except sqlite3.Error as exc:
            raise BackendError(f"cannot open the job store {self.path}: {exc}") from exc
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("BEGIN IMMEDIATE")
            yield conn
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise BackendError(f"job store error: {exc}") from exc
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            conn.close()

    # --- training jobs -------------------------------------------------------------------

    def insert_job(self, job: TrainingJob, *, job_dir: Path | None = None) -> None:
        """Adds a new job. Raises AlreadyExistsError if the name is taken."""
        row = {
            "name": job.name,
            "backend": job.backend,
            "status": job.status.value,
            "secondary_status": job.secondary_status,
            "failure_reason": job.failure_reason,
            "created_at": job.created_at,
            "started_at": job.started_at,
            "ended_at": job.ended_at,
            "hyperparameters": json.dumps(dict(job.hyperparameters)),
            "inputs": json.dumps(dict(job.inputs)),
            "instance_type": job.instance_type,
            "instance_count": job.instance_count,
            "model_uri": job.model_uri,
            "final_metrics": json.dumps(dict(job.final_metrics)),
            "job_dir": str(job_dir) if job_dir else None,
        }
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        try:
            with self._connect() as conn:
                conn.execute(f"INSERT INTO training_jobs ({columns}) VALUES ({marks})", list(row.values()))
        except BackendError as exc:
            if isinstance(exc.__cause__, sqlite3.IntegrityError):
                raise AlreadyExistsError(f"a training job named {job.name!r} already exists") from None
            raise

    def update_job(self, name: str, **changes: Any) -> TrainingJob:
        """Sets columns of a job (JSON columns take mappings) and returns it.

        A job in a terminal state keeps that state: status changes to it are ignored, so a
        late writer (a supervisor finishing after a stop was recorded) cannot resurrect it.

        Raises:
            NotFoundError: no job of that name.
        """
        unknown = set(changes) - set(_JOB_FIELDS)
        if unknown:
            raise ValueError(f"unknown job fields {sorted(unknown)}")
        values = {k: _encode(k, v) for k, v in changes.items()}
        with self._connect() as conn:
            update_record(conn, "training_jobs", name, values, is_terminal=lambda s: JobStatus(s).is_terminal,
                          what="training job")
        return self.get_job(name)

    def get_job(self, name: str) -> TrainingJob:
        """Raises NotFoundError for an unknown name."""
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM training_jobs WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFoundError(f"no training job named {name!r}")
        return _job_from_row(row)

    def job_runtime(self, name: str) -> dict[str, Any]:
        """The local-only bookkeeping of a job: job_dir, supervisor_pid, worker_pid, heartbeat_at."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT job_dir, supervisor_pid, worker_pid, heartbeat_at FROM training_jobs WHERE name = ?",
                (name,),
            ).fetchone()
        if row is None:
            raise NotFoundError(f"no training job named {name!r}")
        return dict(row)

    def list_jobs(self, *, backend: str | None = None, status: JobStatus | None = None, limit: int = 100) -> list[TrainingJob]:
        """Jobs, newest first."""
        query = "SELECT * FROM training_jobs WHERE 1=1"
        args: list[Any] = []
        if backend:
            query += " AND backend = ?"
            args.append(backend)
        if status:
            query += " AND status = ?"
            args.append(status.value)
        query += " ORDER BY created_at DESC LIMIT ?"
        args.append(limit)
        with self._connect() as conn:
            rows = conn.execute(query, args).fetchall()
        return [_job_from_row(r) for r in rows]

    # --- metrics -------------------------------------------------------------------------

    def add_metrics(self, job_name: str, points: list[MetricPoint]) -> None:
        """Appends metric values of a job."""
        if not points:
            return
        with self._connect() as conn:
            conn.executemany(
                "INSERT INTO metrics (job_name, name, step, value, timestamp) VALUES (?, ?, ?, ?, ?)",
                [(job_name, p.name, p.step, p.value, p.timestamp) for p in points],
            )

    def get_metrics(self, job_name: str) -> list[MetricPoint]:
        """Every metric value of a job, by name then step."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT name, step, value, timestamp FROM metrics WHERE job_name = ? ORDER BY name, step",
                (job_name,),
            ).fetchall()
        return [MetricPoint(name=r["name"], value=r["value"], step=r["step"], timestamp=r["timestamp"]) for r in rows]

    # --- datasets ------------------------------------------------------------------------

    def put_dataset(self, record: DatasetRecord) -> None:
        """Adds a dataset to the catalog. Raises AlreadyExistsError if the name is taken."""
        try:
            with self._connect() as conn:
                conn.execute(
                    "INSERT INTO datasets (name, uri, source, created_at, report) VALUES (?, ?, ?, ?, ?)",
                    (record.name, record.uri, record.source, record.created_at, json.dumps(dict(record.report))),
                )
        except BackendError as exc:
            if isinstance(exc.__cause__, sqlite3.IntegrityError):
                raise AlreadyExistsError(f"a dataset named {record.name!r} already exists") from None
            raise

    def list_datasets(self) -> list[DatasetRecord]:
        """The catalog, newest first."""
        with self._connect() as conn:
            rows = conn.execute("SELECT * FROM datasets ORDER BY created_at DESC").fetchall()
        return [
            DatasetRecord(
                name=r["name"], uri=r["uri"], source=r["source"], created_at=r["created_at"], report=json.loads(r["report"])
            )
            for r in rows
        ]

    def delete_dataset(self, name: str) -> None:
        """Removes a dataset from the catalog. Raises NotFoundError."""
        with self._connect() as conn:
            if conn.execute("DELETE FROM datasets WHERE name = ?", (name,)).rowcount == 0:
                raise NotFoundError(f"no dataset named {name!r}")


def _encode(column: str, value: Any) -> Any:
    if column in ("hyperparameters", "inputs", "final_metrics"):
        return json.dumps(dict(value))
    if isinstance(value, JobStatus):
        return value.value
    if isinstance(value, Path):
        return str(value)
    return value


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    for table, columns in _ADDED_COLUMNS.items():
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        for name, definition in columns.items():
            if name not in present:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {definition}")


def _job_from_row(row: Mapping[str, Any]) -> TrainingJob:
    trained = None
    if row["started_at"] is not None and row["ended_at"] is not None:
        trained = max(0.0, row["ended_at"] - row["started_at"])
    return TrainingJob(
        name=row["name"],
        status=JobStatus(row["status"]),
        backend=row["backend"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        failure_reason=row["failure_reason"],
        secondary_status=row["secondary_status"],
        hyperparameters=json.loads(row["hyperparameters"]),
        inputs=json.loads(row["inputs"]),
        instance_type=row["instance_type"],
        instance_count=row["instance_count"],
        training_s=trained,
        billable_s=trained,  # this machine's time: every second of it
        model_uri=row["model_uri"],
        final_metrics=json.loads(row["final_metrics"]),
    )


def now() -> float:
    """Wall-clock seconds; one place to read the time for job records."""
    return time.time()
