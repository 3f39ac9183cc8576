"""The endpoint interface shared by local servers and SageMaker endpoints."""

from __future__ import annotations

import re
import time
from abc import ABC, abstractmethod

from core.endpoints.entities import Endpoint, InvocationResult, ServingConfig
from core.errors import BackendError, InvalidInputError

ENDPOINT_NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
"""SageMaker's EndpointName pattern (1 to 63 characters, letters, digits and hyphens)."""

DEFAULT_SERVING = ServingConfig()


def validate_endpoint_name(name: str) -> None:
    """Raises InvalidInputError unless name fits SageMaker's endpoint-name rules."""
    if not ENDPOINT_NAME_RE.match(name or ""):
        raise InvalidInputError(
            f"endpoint name {name!r}: use 1 to 63 letters, digits and hyphens, starting and ending "
            "with a letter or digit"
        )


class EndpointManager(ABC):
    """Deploys a ``model.tar.gz`` to a real-time endpoint, observes, invokes and deletes it.

    Invariants: names are unique per backend; ``deploy`` returns at once with the endpoint
    Creating (the server starts elsewhere: a detached process, or SageMaker) and it becomes
    InService or Failed; ``delete`` removes it (describe then raises NotFoundError); returned
    objects are frozen. Every endpoint serves ``entrypoints/inference.py`` and answers the
    same requests with the same JSON. Safe to use from several threads and processes.
    """

    backend_name: str
    instance_types: tuple[str, ...]
    """What an endpoint can run on, the first being the default."""
    max_instance_count: int
    """The most instances one endpoint may have here."""
    instance_help: str
    """One line on what an instance is on this backend."""

    def deploy(
        self,
        name: str,
        model_uri: str,
        *,
        instance_type: str = "local",
        instance_count: int = 1,
        max_batch_size: int = DEFAULT_SERVING.max_batch_size,
        max_wait_ms: float = DEFAULT_SERVING.max_wait_ms,
        workers: int = DEFAULT_SERVING.workers,
    ) -> Endpoint:
        """Starts serving ``model_uri`` under ``name`` and returns the endpoint Creating.

        Args:
            name: endpoint name (SageMaker's rules: 1 to 63 letters, digits, hyphens).
            model_uri: the training job's ``model.tar.gz`` (``file://`` locally, ``s3://`` on AWS).
            instance_type: ``local`` for the local backend, an ``ml.*`` type on AWS.
            instance_count: instances (the local backend runs exactly one server).
            max_batch_size: micro-batching: most images per forward pass.
            max_wait_ms: micro-batching: longest wait for requests already arriving.
            workers: connections served at once.

        Raises:
            InvalidInputError: a bad name, model URI, instance type or setting.
            AlreadyExistsError: an endpoint of that name exists (delete it first, even Failed).
            BackendError: the endpoint could not be started.
        """
        validate_endpoint_name(name)
        if not 1 <= instance_count <= self.max_instance_count:
            raise InvalidInputError(f"instance_count: must be 1 to {self.max_instance_count} here, not {instance_count}")
        try:
            serving = ServingConfig(max_batch_size=max_batch_size, max_wait_ms=max_wait_ms, workers=workers)
        except ValueError as exc:
            raise InvalidInputError(str(exc)) from None
        return self._deploy(name, model_uri, instance_type=instance_type, instance_count=instance_count,
                            serving=serving)

    @abstractmethod
    def _deploy(self, name: str, model_uri: str, *, instance_type: str, instance_count: int,
                serving: ServingConfig) -> Endpoint:
        """Backend part of :meth:`deploy`, called with validated arguments (same Raises)."""

    @abstractmethod
    def runtime_client_code(self, endpoint: Endpoint) -> str:
        """Python that builds the boto3 ``sagemaker-runtime`` client able to invoke the endpoint."""

    @abstractmethod
    def describe(self, name: str) -> Endpoint:
        """The endpoint's current state (a local server is checked on each call).

        Raises:
            NotFoundError: no endpoint of that name.
            BackendError: the backend could not be asked.
        """

    @abstractmethod
    def list_endpoints(self) -> list[Endpoint]:
        """Every endpoint of this backend, newest first. Raises BackendError."""

    @abstractmethod
    def delete(self, name: str) -> None:
        """Stops the endpoint and forgets it (whatever its status, Failed included).

        Raises:
            NotFoundError: no endpoint of that name.
            BackendError: it could not be stopped.
        """

    @abstractmethod
    def invoke(self, name: str, body: bytes, content_type: str, *,
               accept: str = "application/json") -> InvocationResult:
        """Sends one prediction request (see ``core.endpoints.invoke`` to build bodies).

        Raises:
            NotFoundError: no endpoint of that name.
            InvalidInputError: the endpoint is not InService, or it refused the request
                (not an image, too large, bad JSON, ...): the message is the endpoint's.
            BackendError: the model failed on the request, or the endpoint is unreachable.
        """

    def wait(self, name: str, *, timeout_s: float = 300.0, poll_s: float = 0.5) -> Endpoint:
        """Polls until the endpoint is InService or Failed and returns it.

        Raises:
            NotFoundError: no endpoint of that name (or it was deleted meanwhile).
            BackendError: still not settled after ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            endpoint = self.describe(name)
            if endpoint.status.is_settled:
                return endpoint
            if time.monotonic() > deadline:
                raise BackendError(f"endpoint {name!r} is still {endpoint.status.value} after {timeout_s:.0f} s")
            time.sleep(poll_s)

