"""Profiler documents in the console database, beside the training jobs.

The sidecar replaces a job's documents after every analysis pass in one transaction, so a
reader sees one pass or the next, never a mix. Documents are small JSON objects by kind
(see :func:`core.profiler.aggregate.build_documents`); the HTML report is the ``report``
document and is read only when asked for.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from core.jobstore import JobStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS profiler_documents (
    job_name TEXT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (job_name, kind)
)
"""
REPORT = "report"


class ProfilerStore:
    """Typed access to the profiler table of a :class:`JobStore`'s database (created on first use)."""

    def __init__(self, jobs: JobStore) -> None:
        self.jobs = jobs
        with jobs.transaction() as conn:
            conn.execute(_SCHEMA)

    def put_documents(self, job_name: str, documents: Mapping[str, Mapping[str, Any]]) -> None:
        """Replaces the given documents of a job in one transaction.

        Raises:
            BackendError: the database failed.
        """
        now = time.time()
        rows = [(job_name, kind, json.dumps(body, allow_nan=False), now) for kind, body in documents.items()]
        with self.jobs.transaction() as conn:
            conn.executemany(
                "INSERT INTO profiler_documents (job_name, kind, body, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (job_name, kind) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
                rows,
            )

    def documents(self, job_name: str, *, with_report: bool = False) -> dict[str, dict[str, Any]]:
        """A job's documents by kind ({} when the job has none); the report only if asked for."""
        query = "SELECT kind, body FROM profiler_documents WHERE job_name = ?"
        if not with_report:
            query += f" AND kind != '{REPORT}'"
        with self.jobs.transaction() as conn:
            rows = conn.execute(query, (job_name,)).fetchall()
        return {row["kind"]: json.loads(row["body"]) for row in rows}

    def report_html(self, job_name: str) -> str | None:
        """The self-contained HTML report, or None before the first pass wrote one."""
        with self.jobs.transaction() as conn:
            row = conn.execute("SELECT body FROM profiler_documents WHERE job_name = ? AND kind = ?",
                               (job_name, REPORT)).fetchone()
        return json.loads(row["body"]).get("html") if row else None

    def updated_at(self, job_name: str) -> float | None:
        """When the documents last changed (None when there are none): a cache key for readers."""
        with self.jobs.transaction() as conn:
            row = conn.execute("SELECT MAX(updated_at) AS t FROM profiler_documents WHERE job_name = ?",
                               (job_name,)).fetchone()
        return row["t"] if row else None

    def delete(self, job_name: str) -> None:
        """Forgets a job's documents."""
        with self.jobs.transaction() as conn:
            conn.execute("DELETE FROM profiler_documents WHERE job_name = ?", (job_name,))
