"""The EndpointManager contract (core/endpoints/_base.py), held to the same assertions on both backends.

The model is a real ``model.tar.gz`` built without training (tests/core/endpoints/conftest.py),
put in the backend's own storage, so each backend deploys its own kind of URI. Locally the
endpoint server is ``entrypoints/serve.py`` in the job environment; on aws the deployment goes to
SageMaker, which is moto behind the SageMaker stand-in (tests/standins). Invocations of a
deployed endpoint are not part of this suite yet: only an unknown endpoint's is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from core.backend import Backend
from core.config import DEFAULT_JOB_PYTHON
from core.endpoints import Endpoint, EndpointManager, EndpointStatus, ServingConfig
from core.endpoints.invoke import json_request
from core.errors import AlreadyExistsError, InvalidInputError, NotFoundError
from tests.core.endpoints.conftest import image_bytes, model_tar  # noqa: F401  (model_tar is a fixture)

SETTLE_S = 120.0
UNKNOWN = "no-such-endpoint"
SERVING = ServingConfig(max_batch_size=4, max_wait_ms=2.5, workers=3)
BAD_NAMES = ["", "bad_name", "-leading", "trailing-", "a" * 64, "dots.in.name"]


@pytest.fixture
def local_job_python() -> Path:
    """A local endpoint server loads the model with torch: the job environment's interpreter."""
    return DEFAULT_JOB_PYTHON


@pytest.fixture
def endpoints(backend: Backend) -> Iterator[EndpointManager]:
    """The backend's endpoint manager; endpoints a test leaves behind are deleted (servers stopped)."""
    manager = backend.endpoints
    yield manager
    for endpoint in manager.list_endpoints():
        manager.delete(endpoint.name)


@pytest.fixture
def model_uri(backend: Backend, model_tar: Path) -> str:
    """The model.tar.gz in the backend's storage, as the URI that storage gives it."""
    return backend.storage.put_file(model_tar, "models/contract/model.tar.gz")


@pytest.fixture
def deploy(endpoints: EndpointManager, model_uri: str) -> Callable[..., Endpoint]:
    """Deploys the model on the backend's default instance type with SERVING."""

    def deploy(name: str, **changes: Any) -> Endpoint:
        arguments: dict[str, Any] = dict(instance_type=endpoints.instance_types[0], instance_count=1,
                                         max_batch_size=SERVING.max_batch_size, max_wait_ms=SERVING.max_wait_ms,
                                         workers=SERVING.workers)
        return endpoints.deploy(name, changes.pop("model_uri", model_uri), **{**arguments, **changes})

    return deploy


def test_deploy_returns_the_endpoint_under_its_name(
    endpoints: EndpointManager, deploy: Callable[..., Endpoint], model_uri: str
) -> None:
    endpoint = deploy("contract-ep")

    assert endpoint.name == "contract-ep"
    assert not endpoint.status.is_settled or endpoint.status is EndpointStatus.IN_SERVICE  # moto: InService at once
    assert endpoint.backend == endpoints.backend_name
    assert endpoint.model_uri == model_uri
    assert (endpoint.instance_type, endpoint.instance_count) == (endpoints.instance_types[0], 1)
    assert endpoint.serving == SERVING
    assert endpoint.failure_reason is None


def test_endpoints_settle_in_service_and_are_listed_as_described(
    endpoints: EndpointManager, deploy: Callable[..., Endpoint], model_uri: str
) -> None:
    deploy("contract-ep-1")
    time.sleep(0.01)  # distinct creation times: the list is newest first
    deploy("contract-ep-2")

    settled = [endpoints.wait(name, timeout_s=SETTLE_S, poll_s=0.2) for name in ("contract-ep-1", "contract-ep-2")]

    for endpoint in settled:
        assert endpoint.status is EndpointStatus.IN_SERVICE, endpoint.failure_reason
        assert endpoint.model_uri == model_uri and endpoint.serving == SERVING
        assert endpoint.url
        assert endpoints.describe(endpoint.name) == endpoint  # nothing changes without a request
    listed = endpoints.list_endpoints()
    assert [e.name for e in listed] == ["contract-ep-2", "contract-ep-1"]
    for endpoint in listed:
        assert endpoint == endpoints.describe(endpoint.name)


def test_a_second_deploy_with_the_same_name_already_exists(
    endpoints: EndpointManager, deploy: Callable[..., Endpoint], model_uri: str
) -> None:
    first = deploy("contract-ep-twice")

    with pytest.raises(AlreadyExistsError):
        deploy("contract-ep-twice", max_batch_size=8)
    assert [e.name for e in endpoints.list_endpoints()] == ["contract-ep-twice"]
    assert endpoints.describe("contract-ep-twice").serving == first.serving == SERVING


@pytest.mark.parametrize("name", BAD_NAMES)
def test_an_invalid_name_is_invalid_input(endpoints: EndpointManager, deploy: Callable[..., Endpoint],
                                          name: str) -> None:
    with pytest.raises(InvalidInputError):
        deploy(name)
    assert endpoints.list_endpoints() == []


@pytest.mark.parametrize("changes", [
    {"instance_count": 0},
    {"max_batch_size": 0},
    {"max_batch_size": 257},
    {"max_wait_ms": -1},
    {"max_wait_ms": 1001},
    {"workers": 0},
    {"instance_type": "no-such-instance-type"},
    {"model_uri": "https://example.com/models/model.tar.gz"},
], ids=lambda changes: "-".join(f"{k}={v}" for k, v in changes.items()))
def test_invalid_settings_are_invalid_input(endpoints: EndpointManager, deploy: Callable[..., Endpoint],
                                            changes: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        deploy("contract-ep-bad", **changes)
    assert endpoints.list_endpoints() == []


def test_more_instances_than_the_backend_allows_are_invalid_input(
    endpoints: EndpointManager, deploy: Callable[..., Endpoint]
) -> None:
    with pytest.raises(InvalidInputError):
        deploy("contract-ep-many", instance_count=endpoints.max_instance_count + 1)
    assert endpoints.list_endpoints() == []


@pytest.mark.parametrize("operation", ["describe", "delete", "invoke"])
def test_an_unknown_endpoint_is_not_found(endpoints: EndpointManager, operation: str) -> None:
    arguments: dict[str, tuple[Any, ...]] = {"invoke": json_request([image_bytes()])}
    with pytest.raises(NotFoundError):
        getattr(endpoints, operation)(UNKNOWN, *arguments.get(operation, ()))


def test_a_deleted_endpoint_is_gone(endpoints: EndpointManager, deploy: Callable[..., Endpoint]) -> None:
    deploy("contract-ep-gone")
    deploy("contract-ep-kept")

    endpoints.delete("contract-ep-gone")

    with pytest.raises(NotFoundError):
        endpoints.describe("contract-ep-gone")
    assert [e.name for e in endpoints.list_endpoints()] == ["contract-ep-kept"]
    with pytest.raises(NotFoundError):
        endpoints.delete("contract-ep-gone")
    assert endpoints.describe("contract-ep-kept").status is not EndpointStatus.DELETING
