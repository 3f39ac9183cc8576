"""Frozen records of endpoints and invocations, the same for both backends."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class EndpointStatus(str, Enum):
    """An endpoint's status, with SageMaker's `EndpointStatus` spellings.

    A deleted endpoint has no status: it is gone (describe raises NotFoundError).
    """

    CREATING = "Creating"
    IN_SERVICE = "InService"
    DELETING = "Deleting"
    FAILED = "Failed"

    @property
    def is_settled(self) -> bool:
        """True once nothing changes without a new request (InService or Failed)."""
        return self in (EndpointStatus.IN_SERVICE, EndpointStatus.FAILED)


@dataclass(frozen=True)
class ServingConfig:
    """How the endpoint's server batches and takes connections (see ``entrypoints/serve.py``).

    Attributes:
        max_batch_size: most images one forward pass takes (requests are micro-batched).
        max_wait_ms: longest a forming batch waits for the next request (4 times that in all).
        workers: most connections served at once.
    """

    max_batch_size: int = 16
    max_wait_ms: float = 10.0
    workers: int = 32

    def __post_init__(self) -> None:
        if not 1 <= self.max_batch_size <= 256:
            raise ValueError(f"max_batch_size: must be 1 to 256, not {self.max_batch_size}")
        if not 0 <= self.max_wait_ms <= 1000:
            raise ValueError(f"max_wait_ms: must be 0 to 1000, not {self.max_wait_ms}")
        if not 1 <= self.workers <= 256:
            raise ValueError(f"workers: must be 1 to 256, not {self.workers}")


@dataclass(frozen=True)
class Endpoint:
    """A real-time endpoint as both backends describe it.

    Attributes:
        name: unique per backend (SageMaker's endpoint-name rules).
        status: see :class:`EndpointStatus`.
        backend: ``local`` or ``sagemaker``.
        model_uri: the ``model.tar.gz`` it serves (``file://`` or ``s3://``).
        created_at: epoch seconds.
        instance_type: ``local`` for a server on this machine, else an ``ml.*`` type.
        instance_count: instances behind the endpoint.
        url: where invocations go: ``http://127.0.0.1:PORT`` for a local server (it also
            answers the SageMaker Runtime path), the runtime URL on AWS; None until known.
        failure_reason: why it failed (Failed only).
        port: the local server's port (local only).
        serving: the batching and connection settings it was deployed with.
    """

    name: str
    status: EndpointStatus
    backend: str
    model_uri: str
    created_at: float
    instance_type: str = "local"
    instance_count: int = 1
    url: str | None = None
    failure_reason: str | None = None
    port: int | None = None
    serving: ServingConfig = field(default_factory=ServingConfig)


@dataclass(frozen=True)
class InvocationResult:
    """A successful prediction request.

    Attributes:
        status_code: HTTP status of the answer (2xx: failures raise instead).
        body: the decoded JSON answer, ``{"predictions": [{"top_k": [{"label", "probability"}, ...]}]}``.
        latency_ms: round trip seen by the caller.
        server_latency_ms: time inside the server (queue, batch, forward), when it says.
        content_type: the answer's content type.
    """

    status_code: int
    body: Mapping[str, Any]
    latency_ms: float
    server_latency_ms: float | None = None
    content_type: str = "application/json"

    @property
    def predictions(self) -> list[list[tuple[str, float]]]:
        """Per image, its ``(label, probability)`` pairs, most probable first."""
        return [
            [(str(entry["label"]), float(entry["probability"])) for entry in item["top_k"]]
            for item in self.body.get("predictions", [])
        ]
