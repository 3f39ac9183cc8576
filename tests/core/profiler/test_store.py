"""Profiler documents in the job store: replaced per pass, the report apart, a cache key."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import BackendError
from core.jobstore import JobStore
from core.profiler import ProfilerStore


@pytest.fixture
def store(tmp_path: Path) -> ProfilerStore:
    return ProfilerStore(JobStore(tmp_path / "console.db"))


def test_documents_round_trip_and_replace(store: ProfilerStore) -> None:
    assert store.documents("job") == {} and store.updated_at("job") is None
    store.put_documents("job", {"summary": {"state": "collecting"}, "steps": {"count": 1}})
    first = store.updated_at("job")
    store.put_documents("job", {"summary": {"state": "complete"}})
    assert store.documents("job") == {"summary": {"state": "complete"}, "steps": {"count": 1}}
    assert store.updated_at("job") >= first
    assert store.documents("other") == {}


def test_the_report_is_read_only_when_asked_for(store: ProfilerStore) -> None:
    assert store.report_html("job") is None
    store.put_documents("job", {"summary": {}, "report": {"html": "<html>r</html>"}})
    assert "report" not in store.documents("job")
    assert store.documents("job", with_report=True)["report"] == {"html": "<html>r</html>"}
    assert store.report_html("job") == "<html>r</html>"


def test_nan_is_refused_and_nothing_is_half_written(store: ProfilerStore) -> None:
    store.put_documents("job", {"summary": {"state": "collecting"}})
    with pytest.raises(ValueError):
        store.put_documents("job", {"summary": {"state": "complete"}, "steps": {"mean": float("nan")}})
    assert store.documents("job") == {"summary": {"state": "collecting"}}


def test_delete_and_a_second_store_on_the_same_database(store: ProfilerStore, tmp_path: Path) -> None:
    store.put_documents("job", {"summary": {}})
    again = ProfilerStore(JobStore(tmp_path / "console.db"))
    assert again.documents("job") == {"summary": {}}
    again.delete("job")
    assert store.documents("job") == {}


def test_a_broken_database_is_a_backend_error(tmp_path: Path) -> None:
    path = tmp_path / "console.db"
    store = ProfilerStore(JobStore(path))
    with store.jobs.transaction() as conn:
        conn.execute("DROP TABLE profiler_documents")
    with pytest.raises(BackendError):
        store.documents("job")
