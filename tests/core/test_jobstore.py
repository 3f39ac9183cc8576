"""The SQLite job store: round trips, uniqueness, terminal states that stay terminal."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from core.entities import DatasetRecord, MetricPoint, TrainingJob
from core.errors import AlreadyExistsError, NotFoundError
from core.jobstore import JobStore
from core.types import JobStatus


def make_job(name: str, created_at: float = 1.0) -> TrainingJob:
    return TrainingJob(name=name, status=JobStatus.IN_PROGRESS, backend="local", created_at=created_at,
                       hyperparameters={"lr": "0.1"}, inputs={"training": "file:///d"})


def test_job_round_trip_and_listing_order(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "db.sqlite")
    store.insert_job(make_job("a", 1.0))
    store.insert_job(make_job("b", 2.0))
    assert [j.name for j in store.list_jobs()] == ["b", "a"]
    assert store.get_job("a").hyperparameters == {"lr": "0.1"}
    with pytest.raises(AlreadyExistsError):
        store.insert_job(make_job("a"))
    with pytest.raises(NotFoundError, match="no training job named 'zzz'"):
        store.get_job("zzz")


def test_terminal_status_is_never_overwritten(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "db.sqlite")
    store.insert_job(make_job("a"))
    store.update_job("a", status=JobStatus.FAILED, failure_reason="boom", ended_at=5.0)
    job = store.update_job("a", status=JobStatus.COMPLETED, failure_reason=None, ended_at=9.0, model_uri="file:///m")
    assert (job.status, job.failure_reason, job.ended_at) == (JobStatus.FAILED, "boom", 5.0)
    assert job.model_uri == "file:///m"


def test_metrics_and_datasets(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "db.sqlite")
    store.insert_job(make_job("a"))
    store.add_metrics("a", [MetricPoint("loss", 1.0, 0, 1.0), MetricPoint("loss", 0.5, 1, 2.0)])
    assert [p.value for p in store.get_metrics("a")] == [1.0, 0.5]
    store.put_dataset(DatasetRecord("d", "file:///d", "demo", 1.0, {"classes": ["0"]}))
    with pytest.raises(AlreadyExistsError):
        store.put_dataset(DatasetRecord("d", "file:///d", "demo", 1.0))
    assert store.list_datasets()[0].report == {"classes": ["0"]}
    store.delete_dataset("d")
    with pytest.raises(NotFoundError):
        store.delete_dataset("d")


def test_a_store_written_before_instance_counts_gains_the_column(tmp_path: Path) -> None:
    """A workspace from an older version: its jobs read as one instance, new jobs keep their count."""
    path = tmp_path / "console.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE training_jobs (name TEXT PRIMARY KEY, backend TEXT NOT NULL, status TEXT NOT NULL, "
                     "secondary_status TEXT, failure_reason TEXT, created_at REAL NOT NULL, started_at REAL, "
                     "ended_at REAL, hyperparameters TEXT NOT NULL DEFAULT '{}', inputs TEXT NOT NULL DEFAULT '{}', "
                     "instance_type TEXT NOT NULL DEFAULT 'local', model_uri TEXT, final_metrics TEXT NOT NULL "
                     "DEFAULT '{}', job_dir TEXT, supervisor_pid INTEGER, worker_pid INTEGER, heartbeat_at REAL)")
        conn.execute("INSERT INTO training_jobs (name, backend, status, created_at, started_at, ended_at) "
                     "VALUES ('old', 'local', 'Completed', 1.0, 2.0, 62.0)")
    conn.close()
    store = JobStore(path)
    old = store.get_job("old")
    assert (old.instance_count, old.training_s, old.billable_s) == (1, 60.0, 60.0)
    store.insert_job(TrainingJob(name="pair", status=JobStatus.IN_PROGRESS, backend="local", created_at=3.0,
                                 instance_count=2))
    assert store.get_job("pair").instance_count == 2 and store.get_job("pair").training_s is None
