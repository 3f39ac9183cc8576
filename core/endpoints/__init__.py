"""Real-time endpoints: one interface, served by a local process or by SageMaker."""

from core.endpoints._base import DEFAULT_SERVING, EndpointManager, validate_endpoint_name
from core.endpoints._local import LocalEndpointManager
from core.endpoints.entities import Endpoint, EndpointStatus, InvocationResult, ServingConfig

__all__ = [
    "DEFAULT_SERVING", "Endpoint", "EndpointManager", "EndpointStatus", "InvocationResult", "LocalEndpointManager",
    "ServingConfig", "validate_endpoint_name",
]
