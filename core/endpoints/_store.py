"""Endpoints in the console database, beside the training and tuning jobs."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict
from pathlib import Path
from typing import Any

from core.endpoints.entities import Endpoint, EndpointStatus, ServingConfig
from core.errors import AlreadyExistsError, BackendError, NotFoundError
from core.jobstore import JobStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS endpoints (
    name TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    status TEXT NOT NULL,
    model_uri TEXT NOT NULL,
    created_at REAL NOT NULL,
    instance_type TEXT NOT NULL,
    instance_count INTEGER NOT NULL,
    url TEXT,
    failure_reason TEXT,
    port INTEGER,
    serving TEXT NOT NULL,
    endpoint_dir TEXT,
    pid INTEGER
)
"""


class EndpointStore:
    """Typed access to the endpoints table of a :class:`JobStore`'s database."""

    def __init__(self, jobs: JobStore) -> None:
        self.jobs = jobs
        with jobs.transaction() as conn:
            conn.execute(_SCHEMA)

    def insert(self, endpoint: Endpoint, *, endpoint_dir: Path | None = None) -> None:
        """Records a new endpoint. Raises AlreadyExistsError if the name is taken."""
        try:
            with self.jobs.transaction() as conn:
                conn.execute(
                    "INSERT INTO endpoints (name, backend, status, model_uri, created_at, instance_type, "
                    "instance_count, url, failure_reason, port, serving, endpoint_dir) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (endpoint.name, endpoint.backend, endpoint.status.value, endpoint.model_uri, endpoint.created_at,
                     endpoint.instance_type, endpoint.instance_count, endpoint.url, endpoint.failure_reason,
                     endpoint.port, json.dumps(asdict(endpoint.serving)), str(endpoint_dir) if endpoint_dir else None),
                )
        except BackendError as exc:
            if isinstance(exc.__cause__, sqlite3.IntegrityError):
                raise AlreadyExistsError(f"an endpoint named {endpoint.name!r} already exists") from None
            raise

    def get(self, name: str) -> Endpoint:
        """Raises NotFoundError for an unknown name."""
        return _endpoint(self._row(name))

    def runtime(self, name: str) -> dict[str, Any]:
        """The local-only bookkeeping: endpoint_dir and pid. Raises NotFoundError."""
        row = self._row(name)
        return {"endpoint_dir": row["endpoint_dir"], "pid": row["pid"]}

    def list(self, *, backend: str | None = None) -> list[Endpoint]:
        """Endpoints, newest first."""
        query, args = "SELECT * FROM endpoints", []
        if backend:
            query, args = query + " WHERE backend = ?", [backend]
        with self.jobs.transaction() as conn:
            rows = conn.execute(query + " ORDER BY created_at DESC", args).fetchall()
        return [_endpoint(r) for r in rows]

    def set_pid(self, name: str, pid: int) -> None:
        """Records the local server's process id. Raises NotFoundError."""
        with self.jobs.transaction() as conn:
            if conn.execute("UPDATE endpoints SET pid = ? WHERE name = ?", (pid, name)).rowcount == 0:
                raise NotFoundError(f"no endpoint named {name!r}")

    def set_status(self, name: str, status: EndpointStatus, *, expected: EndpointStatus | None = None,
                   failure_reason: str | None = None) -> bool:
        """Moves the endpoint to ``status`` if it is in ``expected`` (any when None).

        Returns False when another process changed it first (it is left as that one set it).

        Raises:
            NotFoundError: no endpoint of that name.
        """
        with self.jobs.transaction() as conn:
            row = conn.execute("SELECT status FROM endpoints WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise NotFoundError(f"no endpoint named {name!r}")
            if expected is not None and row["status"] != expected.value:
                return False
            conn.execute("UPDATE endpoints SET status = ?, failure_reason = ? WHERE name = ?",
                         (status.value, failure_reason, name))
        return True

    def delete(self, name: str) -> None:
        """Forgets an endpoint; a name already gone is fine (two deletes may race)."""
        with self.jobs.transaction() as conn:
            conn.execute("DELETE FROM endpoints WHERE name = ?", (name,))

    def _row(self, name: str) -> Any:
        with self.jobs.transaction() as conn:
            row = conn.execute("SELECT * FROM endpoints WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFoundError(f"no endpoint named {name!r}")
        return row


def _endpoint(row: Any) -> Endpoint:
    return Endpoint(
        name=row["name"], status=EndpointStatus(row["status"]), backend=row["backend"], model_uri=row["model_uri"],
        created_at=row["created_at"], instance_type=row["instance_type"], instance_count=row["instance_count"],
        url=row["url"], failure_reason=row["failure_reason"], port=row["port"],
        serving=ServingConfig(**json.loads(row["serving"])),
    )
