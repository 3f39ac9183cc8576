"""Real-time SageMaker endpoints serving our own server as a bring-your-own container.

Why our own image: SageMaker's PyTorch inference images stopped at PyTorch 2.6 and left
support on 2026-06-30, and the model is trained with torch 2.14.1. ``docker/serving/Dockerfile``
packages ``entrypoints/serve.py`` and ``entrypoints/inference.py`` (the very server the local
backend runs) with torch 2.14.1 as a container that follows SageMaker's hosting contract
(``docker run IMAGE serve``, port 8080, ``GET /ping``, ``POST /invocations``, the model
unpacked at ``/opt/ml/model``). The user builds and pushes it to ECR once and names it in the
``serving_image_uri`` setting.

One deployment is three resources with the endpoint's name: a model (image, ``model.tar.gz``
from S3, execution role, and the server settings as ``SERVE_*`` environment variables), an
endpoint configuration (one variant, ``AllTraffic``, instance type and count) and the
endpoint. Requests are direct boto3 calls, like the training runner's: the SDK v3
``ModelBuilder`` adds its own naming and packaging, and every call here is one request that
moto and botocore's Stubber can check.

``delete`` removes the endpoint, then the configuration and model of the same name (those
this console created; an endpoint made elsewhere keeps its other resources). Endpoint
configurations never change, so what ``describe`` learns from one (model, instance type,
serving settings) is cached per configuration name; ``list_endpoints`` describes each endpoint
(ListEndpoints summaries do not name the configuration), every endpoint of the account and
region, not only this console's. ``Updating``, ``SystemUpdating`` and
``RollingBack`` endpoints still serve traffic on their current configuration: they read as
InService. ``OutOfService`` and ``UpdateRollbackFailed`` read as Failed, with the reason.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from core.aws import aws_errors, is_aws_error, roll_back, translate_client_error, with_leftovers
from core.endpoints._base import EndpointManager
from core.endpoints.entities import Endpoint, EndpointStatus, InvocationResult, ServingConfig
from core.endpoints.invoke import error_message
from core.errors import AlreadyExistsError, BackendError, ConfigError, InvalidInputError, NotFoundError
from core.types import BackendKind

if TYPE_CHECKING:
    from core.aws import AwsSession
    from core.config import Settings

DEFAULT_INSTANCE_TYPE = "ml.m5.large"
"""What ``instance_type="local"`` (not chosen) deploys on: 2 vCPU, 8 GiB, enough for a CNN."""
VARIANT_NAME = "AllTraffic"
HANDLER = "inference.py"
MAX_BODY_BYTES = 6 * 1024 * 1024
"""SageMaker's real-time InvokeEndpoint payload limit."""
_STATUS = {
    "Creating": EndpointStatus.CREATING,
    "Updating": EndpointStatus.IN_SERVICE,
    "SystemUpdating": EndpointStatus.IN_SERVICE,
    "RollingBack": EndpointStatus.IN_SERVICE,
    "InService": EndpointStatus.IN_SERVICE,
    "OutOfService": EndpointStatus.FAILED,
    "UpdateRollbackFailed": EndpointStatus.FAILED,
    "Deleting": EndpointStatus.DELETING,
    "Failed": EndpointStatus.FAILED,
}
_SERVING_ENV = {"max_batch_size": "SERVE_MAX_BATCH_SIZE", "max_wait_ms": "SERVE_MAX_WAIT_MS", "workers": "SERVE_WORKERS"}


@dataclass(frozen=True)
class _Deployment:
    """What an endpoint configuration (and its first variant's model) says."""

    model_uri: str
    instance_type: str
    instance_count: int
    serving: ServingConfig


def endpoint_status(sagemaker_status: str, failure_reason: str | None) -> tuple[EndpointStatus, str | None]:
    """Our status and failure reason for a SageMaker ``EndpointStatus`` (see the module docstring)."""
    status = _STATUS.get(sagemaker_status, EndpointStatus.FAILED)
    if status is not EndpointStatus.FAILED:
        return status, None
    if sagemaker_status == "Failed":
        return status, failure_reason or "SageMaker gave no reason"
    detail = f": {failure_reason}" if failure_reason else ""
    return status, f"the endpoint is {sagemaker_status}{detail}"


def serving_environment(name: str, serving: ServingConfig) -> dict[str, str]:
    """The container's environment: the handler, and the server settings the image's ``serve`` reads."""
    return {
        "SAGEMAKER_PROGRAM": HANDLER,
        "SERVE_ENDPOINT_NAME": name,
        **{variable: f"{getattr(serving, field):g}" for field, variable in _SERVING_ENV.items()},
    }


def _serving_from_environment(environment: Mapping[str, str]) -> ServingConfig:
    values: dict[str, Any] = {}
    for field, variable in _SERVING_ENV.items():
        with contextlib.suppress(KeyError, ValueError):
            values[field] = float(environment[variable]) if field == "max_wait_ms" else int(environment[variable])
    try:
        return ServingConfig(**values)
    except ValueError:
        return ServingConfig()


def _timestamp(value: Any) -> float:
    return value.timestamp() if isinstance(value, datetime) else 0.0


class SageMakerEndpointManager(EndpointManager):
    """Endpoints as SageMaker real-time endpoints (see the module docstring for the choices).

    Args:
        settings: ``role_arn`` and ``serving_image_uri`` are needed to deploy (describe,
            list, delete and invoke work without them).
        session: the AWS session whose ``sagemaker`` and ``sagemaker-runtime`` clients are used.
        serving_image: an image URI to use instead of the ``serving_image_uri`` setting.
    """

    backend_name = BackendKind.AWS.value
    instance_types = ("ml.m5.large", "ml.m5.xlarge", "ml.c5.large", "ml.c5.xlarge", "ml.c5.2xlarge", "ml.m5.2xlarge")
    max_instance_count = 10
    instance_help = "CPU instances: the serving image runs torch's CPU build"

    def __init__(self, settings: Settings, session: AwsSession, *, serving_image: str | None = None) -> None:
        self._settings = settings
        self._session = session
        self._serving_image = serving_image
        self._deployments: dict[str, _Deployment] = {}
        self._lock = threading.Lock()

    @property
    def _sagemaker(self) -> Any:
        return self._session.client("sagemaker")

    @property
    def _runtime(self) -> Any:
        return self._session.client("sagemaker-runtime")

    def runtime_client_code(self, endpoint: Endpoint) -> str:
        return f'runtime = boto3.client("sagemaker-runtime", region_name="{self._session.region}")'

    # --- deploy ------------------------------------------------------------------------------

    def deployment_requests(
        self, name: str, model_uri: str, *, instance_type: str, instance_count: int, serving: ServingConfig
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """The CreateModel, CreateEndpointConfig and CreateEndpoint requests of one deployment.

        Raises:
            ConfigError: no serving image or execution role is configured.
            InvalidInputError: the model is not a ``model.tar.gz`` in S3, or the instance type
                is not a SageMaker one.
        """
        if not model_uri.startswith("s3://"):
            raise InvalidInputError(
                f"model {model_uri}: SageMaker serves models from S3; train on SageMaker (aws backend) "
                "or upload the model.tar.gz to S3 first"
            )
        if not model_uri.endswith(".tar.gz"):
            raise InvalidInputError(f"model {model_uri}: SageMaker needs the training job's model.tar.gz")
        instance_type = DEFAULT_INSTANCE_TYPE if instance_type == "local" else instance_type
        if not instance_type.startswith("ml."):
            raise InvalidInputError(f"instance type {instance_type!r}: use a SageMaker type such as {DEFAULT_INSTANCE_TYPE}")
        image = self._serving_image or self._settings.serving_image_uri
        if not image:
            raise ConfigError(
                "SageMaker endpoints need our serving image: build docker/serving/Dockerfile, push it to ECR "
                "and set SMC_SERVING_IMAGE_URI (for example 123456789012.dkr.ecr.eu-west-1.amazonaws.com/"
                "sm-console-serving:latest); see the README"
            )
        role = self._settings.role_arn
        if not role:
            raise ConfigError(
                "SageMaker needs an execution role to host endpoints: set SMC_ROLE_ARN to an IAM role "
                "SageMaker can assume (arn:aws:iam::<account>:role/<name>)"
            )
        model = {
            "ModelName": name,
            "PrimaryContainer": {
                "Image": image,
                "Mode": "SingleModel",
                "ModelDataUrl": model_uri,
                "Environment": serving_environment(name, serving),
            },
            "ExecutionRoleArn": role,
        }
        config = {
            "EndpointConfigName": name,
            "ProductionVariants": [
                {
                    "VariantName": VARIANT_NAME,
                    "ModelName": name,
                    "InstanceType": instance_type,
                    "InitialInstanceCount": instance_count,
                    "InitialVariantWeight": 1.0,
                }
            ],
        }
        endpoint = {"EndpointName": name, "EndpointConfigName": name}
        return model, config, endpoint

    def _deploy(
        self, name: str, model_uri: str, *, instance_type: str, instance_count: int, serving: ServingConfig
    ) -> Endpoint:
        model, config, endpoint = self.deployment_requests(
            name, model_uri, instance_type=instance_type, instance_count=instance_count, serving=serving
        )
        try:
            self._describe_raw(name)
        except NotFoundError:
            pass
        else:
            raise AlreadyExistsError(f"a SageMaker endpoint named {name} exists already: delete it first")
        created: list[tuple[str, Callable[[], object]]] = []
        try:
            self._create("create_model", model, f"SageMaker model {name}")
            created.append((f"model {name}", lambda: self._sagemaker.delete_model(ModelName=name)))
            self._create("create_endpoint_config", config, f"SageMaker endpoint configuration {name}")
            created.append((f"endpoint configuration {name}",
                            lambda: self._sagemaker.delete_endpoint_config(EndpointConfigName=name)))
            self._create("create_endpoint", endpoint, f"SageMaker endpoint {name}")
        except BaseException as exc:
            error = with_leftovers(exc, roll_back(created))
            if error is exc:
                raise
            raise error from exc
        return self.describe(name)

    def _create(self, operation: str, request: dict[str, Any], what: str) -> None:
        try:
            with aws_errors(f"creating {what}"):
                getattr(self._sagemaker, operation)(**request)
        except (AlreadyExistsError, InvalidInputError) as exc:
            if isinstance(exc, AlreadyExistsError) or "already exist" in str(exc):
                raise AlreadyExistsError(
                    f"{what} exists already: deploy under another name, or delete it in the SageMaker console "
                    "(an earlier deployment that failed half-way can leave one behind)"
                ) from exc
            raise

    # --- observe -----------------------------------------------------------------------------

    def _describe_raw(self, name: str) -> dict[str, Any]:
        with aws_errors(f"endpoint {name}"):
            return dict(self._sagemaker.describe_endpoint(EndpointName=name))

    def _deployment(self, config_name: str) -> _Deployment | None:
        """What the endpoint configuration deploys (cached); None when it is gone."""
        with self._lock:
            if config_name in self._deployments:
                return self._deployments[config_name]
        try:
            with aws_errors(f"endpoint configuration {config_name}"):
                config = self._sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
            variant = config["ProductionVariants"][0]
            with aws_errors(f"model {variant['ModelName']}"):
                model = self._sagemaker.describe_model(ModelName=variant["ModelName"])
        except NotFoundError:
            return None
        container = model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]
        deployment = _Deployment(
            model_uri=container.get("ModelDataUrl", ""),
            instance_type=variant.get("InstanceType", "serverless"),
            instance_count=int(variant.get("InitialInstanceCount", 1)),
            serving=_serving_from_environment(container.get("Environment") or {}),
        )
        with self._lock:
            self._deployments[config_name] = deployment
        return deployment

    def _endpoint(self, d: Mapping[str, Any]) -> Endpoint:
        name = d["EndpointName"]
        status, reason = endpoint_status(d["EndpointStatus"], d.get("FailureReason"))
        deployment = self._deployment(d["EndpointConfigName"])
        variants = d.get("ProductionVariants") or []
        count = variants[0].get("CurrentInstanceCount") if variants else None
        return Endpoint(
            name=name,
            status=status,
            backend=self.backend_name,
            model_uri=deployment.model_uri if deployment else "",
            created_at=_timestamp(d.get("CreationTime")),
            instance_type=deployment.instance_type if deployment else "unknown",
            instance_count=int(count or (deployment.instance_count if deployment else 1)),
            url=self.invocation_url(name),
            failure_reason=reason,
            serving=deployment.serving if deployment else ServingConfig(),
        )

    def invocation_url(self, name: str) -> str:
        """The SageMaker Runtime URL that InvokeEndpoint posts to for this endpoint."""
        return f"{self._runtime.meta.endpoint_url}/endpoints/{name}/invocations"

    def describe(self, name: str) -> Endpoint:
        return self._endpoint(self._describe_raw(name))

    def list_endpoints(self) -> list[Endpoint]:
        paginator = self._sagemaker.get_paginator("list_endpoints")
        with aws_errors("listing endpoints"):
            names = [
                summary["EndpointName"]
                for page in paginator.paginate(SortBy="CreationTime", SortOrder="Descending")
                for summary in page["Endpoints"]
            ]
        endpoints = []
        for name in names:
            with contextlib.suppress(NotFoundError):  # deleted since the listing
                endpoints.append(self.describe(name))
        return sorted(endpoints, key=lambda e: e.created_at, reverse=True)

    # --- delete ------------------------------------------------------------------------------

    def delete(self, name: str) -> None:
        config_name = self._describe_raw(name)["EndpointConfigName"]
        with aws_errors(f"deleting endpoint {name}"):
            self._sagemaker.delete_endpoint(EndpointName=name)
        if config_name != name:
            return  # not deployed by this console: its configuration and model are not ours
        with contextlib.suppress(NotFoundError):
            with aws_errors(f"deleting endpoint configuration {name}"):
                self._sagemaker.delete_endpoint_config(EndpointConfigName=name)
        with self._lock:
            self._deployments.pop(name, None)
        with contextlib.suppress(NotFoundError):
            with aws_errors(f"deleting model {name}"):
                self._sagemaker.delete_model(ModelName=name)

    # --- invoke ------------------------------------------------------------------------------

    def invoke(self, name: str, body: bytes, content_type: str, *, accept: str = "application/json") -> InvocationResult:
        if len(body) > MAX_BODY_BYTES:
            raise InvalidInputError(
                f"the request body is {len(body):,} bytes; SageMaker accepts at most {MAX_BODY_BYTES:,} (6 MB)"
            )
        started = time.perf_counter()
        try:
            response = self._runtime.invoke_endpoint(
                EndpointName=name, Body=body, ContentType=content_type, Accept=accept
            )
            payload = response["Body"].read()
        except Exception as exc:
            if is_aws_error(exc):
                raise invocation_error(exc, name) from exc
            raise
        latency_ms = (time.perf_counter() - started) * 1000
        try:
            document = json.loads(payload)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise BackendError(f"endpoint {name!r} answered something that is not JSON: {payload[:200]!r}") from None
        if not isinstance(document, dict):
            raise BackendError(f"endpoint {name!r} answered JSON that is not an object: {payload[:200]!r}")
        metadata = response.get("ResponseMetadata", {})
        server_ms = metadata.get("HTTPHeaders", {}).get("x-inference-latency-ms")
        return InvocationResult(
            status_code=int(metadata.get("HTTPStatusCode", 200)),
            body=document,
            latency_ms=latency_ms,
            server_latency_ms=float(server_ms) if server_ms else None,
            content_type=response.get("ContentType", "application/json"),
        )


def invocation_error(exc: BaseException, name: str) -> Exception:
    """The console error for a failed InvokeEndpoint (SageMaker Runtime's error codes).

    ``ModelError`` is the container's own answer: a 4xx (not an image, too large, ...) is the
    caller's InvalidInputError with the handler's message, a 5xx a BackendError. A
    ``ValidationError`` names a missing endpoint (NotFoundError) or a request SageMaker
    refused (InvalidInputError); ``ModelNotReadyException`` is an endpoint not ready yet.
    """
    response = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    message = str(response.get("Error", {}).get("Message", ""))
    if code == "ModelError":
        original = response.get("OriginalStatusCode")
        detail = error_message(str(response.get("OriginalMessage") or message))
        if isinstance(original, int) and 400 <= original < 500:
            return InvalidInputError(f"endpoint {name!r} refused the request ({original}): {detail}")
        return BackendError(f"endpoint {name!r} failed ({original or 'model error'}): {detail}")
    if code == "ValidationError":
        if "not found" in message.lower():
            return NotFoundError(f"endpoint {name}: not found")
        return InvalidInputError(f"endpoint {name!r} refused the request: {message}")
    if code == "ModelNotReadyException":
        return InvalidInputError(f"endpoint {name!r} is not ready yet: {message}")
    return translate_client_error(exc, f"invoking endpoint {name}")
