"""Tuning jobs and trials in the console database, beside the training jobs."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from core.errors import AlreadyExistsError, BackendError, NotFoundError
from core.jobstore import JobStore, update_record
from core.tuning.entities import Trial, TrialStatus, TuningJob
from core.tuning.spec import TuningJobSpec, spec_from_dict, spec_to_dict
from core.types import JobStatus

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tuning_jobs (
    name TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    status TEXT NOT NULL,
    failure_reason TEXT,
    spec TEXT NOT NULL,
    created_at REAL NOT NULL,
    ended_at REAL,
    supervisor_pid INTEGER,
    heartbeat_at REAL
);
CREATE TABLE IF NOT EXISTS tuning_trials (
    tuning_job TEXT NOT NULL REFERENCES tuning_jobs(name) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    job_name TEXT NOT NULL,
    status TEXT NOT NULL,
    hyperparameters TEXT NOT NULL,
    objective REAL,
    epochs_run INTEGER NOT NULL DEFAULT 0,
    started_at REAL,
    ended_at REAL,
    failure_reason TEXT,
    PRIMARY KEY (tuning_job, number)
);
"""
_JOB_COLUMNS = {"status", "failure_reason", "ended_at", "supervisor_pid", "heartbeat_at"}
_TRIAL_COLUMNS = {"status", "objective", "epochs_run", "started_at", "ended_at", "failure_reason"}


class TuningStore:
    """Typed access to the tuning tables of a :class:`JobStore`'s database."""

    def __init__(self, jobs: JobStore) -> None:
        self.jobs = jobs
        with jobs.transaction() as conn:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)

    def insert_tuning_job(self, spec: TuningJobSpec, *, backend: str, created_at: float) -> None:
        """Records a new tuning job InProgress. Raises AlreadyExistsError."""
        try:
            with self.jobs.transaction() as conn:
                conn.execute(
                    "INSERT INTO tuning_jobs (name, backend, status, spec, created_at) VALUES (?, ?, ?, ?, ?)",
                    (spec.name, backend, JobStatus.IN_PROGRESS.value, json.dumps(spec_to_dict(spec)), created_at),
                )
        except BackendError as exc:
            if isinstance(exc.__cause__, sqlite3.IntegrityError):
                raise AlreadyExistsError(f"a tuning job named {spec.name!r} already exists") from None
            raise

    def update_tuning_job(self, name: str, **changes: Any) -> None:
        """Sets columns; a terminal status is never overwritten. Raises NotFoundError."""
        unknown = set(changes) - _JOB_COLUMNS
        if unknown:
            raise ValueError(f"unknown tuning job fields {sorted(unknown)}")
        values = {k: v.value if isinstance(v, JobStatus) else v for k, v in changes.items()}
        with self.jobs.transaction() as conn:
            update_record(conn, "tuning_jobs", name, values, is_terminal=lambda s: JobStatus(s).is_terminal,
                          what="tuning job")

    def spec(self, name: str) -> TuningJobSpec:
        """The stored spec. Raises NotFoundError."""
        return spec_from_dict(json.loads(self._row(name)["spec"]))

    def runtime(self, name: str) -> dict[str, Any]:
        """supervisor_pid and heartbeat_at of a local tuning job."""
        row = self._row(name)
        return {"supervisor_pid": row["supervisor_pid"], "heartbeat_at": row["heartbeat_at"]}

    def get_tuning_job(self, name: str) -> TuningJob:
        """The tuning job with counters and its best trial. Raises NotFoundError."""
        return self._to_entity(self._row(name))

    def list_tuning_jobs(self, *, backend: str | None = None, limit: int = 100) -> list[TuningJob]:
        """Newest first."""
        query, args = "SELECT * FROM tuning_jobs", []
        if backend:
            query, args = query + " WHERE backend = ?", [backend]
        with self.jobs.transaction() as conn:
            rows = conn.execute(query + " ORDER BY created_at DESC LIMIT ?", [*args, limit]).fetchall()
        return [self._to_entity(r) for r in rows]

    def insert_trial(self, tuning_job: str, trial: Trial) -> None:
        """Adds a trial row."""
        with self.jobs.transaction() as conn:
            conn.execute(
                "INSERT INTO tuning_trials (tuning_job, number, job_name, status, hyperparameters, objective, "
                "epochs_run, started_at, ended_at, failure_reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (tuning_job, trial.number, trial.job_name, trial.status.value, json.dumps(dict(trial.hyperparameters)),
                 trial.objective, trial.epochs_run, trial.started_at, trial.ended_at, trial.failure_reason),
            )

    def update_trial(self, tuning_job: str, number: int, **changes: Any) -> None:
        """Sets columns of a trial."""
        unknown = set(changes) - _TRIAL_COLUMNS
        if unknown:
            raise ValueError(f"unknown trial fields {sorted(unknown)}")
        values = {k: v.value if isinstance(v, TrialStatus) else v for k, v in changes.items()}
        sets = ", ".join(f"{k} = ?" for k in values)
        with self.jobs.transaction() as conn:
            conn.execute(f"UPDATE tuning_trials SET {sets} WHERE tuning_job = ? AND number = ?",
                         [*values.values(), tuning_job, number])

    def trials(self, tuning_job: str) -> list[Trial]:
        """Trials by number. Raises NotFoundError for an unknown tuning job."""
        self._row(tuning_job)
        with self.jobs.transaction() as conn:
            rows = conn.execute("SELECT * FROM tuning_trials WHERE tuning_job = ? ORDER BY number",
                                (tuning_job,)).fetchall()
        return [_trial(r) for r in rows]

    def _row(self, name: str) -> Any:
        with self.jobs.transaction() as conn:
            row = conn.execute("SELECT * FROM tuning_jobs WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFoundError(f"no tuning job named {name!r}")
        return row

    def _to_entity(self, row: Any) -> TuningJob:
        spec = json.loads(row["spec"])
        trials = self.trials(row["name"])
        counts: dict[str, int] = {}
        for t in trials:
            counts[t.status.value] = counts.get(t.status.value, 0) + 1
        done = [t for t in trials if t.status is TrialStatus.COMPLETED and t.objective is not None]
        best = None
        if done:
            pick = max if spec["objective_type"] == "Maximize" else min
            best = pick(done, key=lambda t: t.objective)  # type: ignore[arg-type, return-value]
        return TuningJob(
            name=row["name"], status=JobStatus(row["status"]), backend=row["backend"], created_at=row["created_at"],
            ended_at=row["ended_at"], failure_reason=row["failure_reason"], strategy=spec["strategy"],
            objective_metric=spec["objective_metric"], objective_type=spec["objective_type"],
            max_jobs=spec["max_jobs"], max_parallel_jobs=spec["max_parallel_jobs"], counts=counts,
            best_job_name=best.job_name if best else None, best_objective=best.objective if best else None,
        )


def _trial(row: Any) -> Trial:
    return Trial(
        number=row["number"], job_name=row["job_name"], status=TrialStatus(row["status"]),
        hyperparameters=json.loads(row["hyperparameters"]), objective=row["objective"], epochs_run=row["epochs_run"],
        started_at=row["started_at"], ended_at=row["ended_at"], failure_reason=row["failure_reason"],
    )
