"""An AWS Lambda function that classifies one image with a SageMaker endpoint.

Self-contained: the standard library and boto3 (both in every Lambda Python runtime); it
imports nothing from the console. The same file runs on AWS and, unchanged, on the local
backend (``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`` points boto3 at the local endpoint server).

Configuration (environment): ``ENDPOINT_NAME`` (required); ``S3_INPUT_PREFIX``
(``s3://bucket/prefix/``: enables ``s3_uri`` inputs under it, and only there); ``ALLOW_URL_INPUTS``
(``false`` refuses ``url`` inputs).

The event is the request itself (direct invocation) or an API Gateway / function URL proxy
event whose ``body`` holds it (``isBase64Encoded`` honoured)::

    {"image": "<base64 of a JPEG/PNG/GIF/BMP/WebP>", "top_k": 3}
    {"s3_uri": "s3://bucket/prefix/cat.jpg"}
    {"url": "https://example.com/cat.jpg"}

The answer is ``{"statusCode", "headers", "body"}`` with a JSON body: the top-k labels on 200;
``{"error", "message"}`` otherwise: 400 bad input, 403 access denied (the endpoint or the S3
object), 404 no such endpoint or object, 413 over the 6 MB payload limit, 429 throttled, 500
the function is misconfigured, 502 the endpoint failed, 503 it is not ready, 504 it timed out.
One log line per request; never an image, a body or a credential.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import time
import urllib.error
import urllib.request
from typing import Any

LOG = logging.getLogger()
LOG.setLevel(logging.INFO)

MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
"""Both limits at once: a synchronous Lambda request and a real-time InvokeEndpoint body."""
DEFAULT_TOP_K = 5
"""What the endpoint answers for a raw image; more needs a JSON request."""
MAX_TOP_K = 100
URL_TIMEOUT_S = 10.0
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"), (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"), (b"BM", "image/bmp"),
)
_clients: dict[str, Any] = {}
"""boto3 clients, created on first use (tests put their own here)."""


class RequestError(Exception):
    """A request the function answers with an error status and a message for the caller."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """Decodes the image in ``event``, asks the endpoint, answers its top-k labels."""
    started = time.perf_counter()
    request_id = getattr(context, "aws_request_id", "-")
    kind, size = "-", 0
    try:
        endpoint = os.environ.get("ENDPOINT_NAME", "").strip()
        if not endpoint:
            raise RequestError(500, "Misconfigured", "the function has no ENDPOINT_NAME environment variable")
        document = parse_event(event)
        top_k = _top_k(document.get("top_k", DEFAULT_TOP_K))
        kind, image = load_image(document)
        size = len(image)
        content_type = image_type(image)
        predictions, model_ms = invoke_endpoint(endpoint, image, content_type, top_k)
    except RequestError as exc:
        LOG.info("request=%s input=%s bytes=%d status=%d error=%s: %s (%.0f ms)", request_id, kind, size,
                 exc.status, exc.code, exc.message, (time.perf_counter() - started) * 1000)
        return respond(exc.status, {"error": exc.code, "message": exc.message})
    total_ms = (time.perf_counter() - started) * 1000
    LOG.info("request=%s input=%s bytes=%d status=200 top1=%s endpoint_ms=%.1f total_ms=%.1f", request_id, kind,
             size, predictions[0]["label"] if predictions else "-", model_ms, total_ms)
    return respond(200, {"endpoint": endpoint, "predictions": predictions, "endpoint_latency_ms": round(model_ms, 1),
                         "input": {"source": kind, "bytes": size, "content_type": content_type}})


def respond(status: int, body: dict[str, Any]) -> dict[str, Any]:
    """The proxy-integration answer API Gateway and function URLs expect."""
    return {"statusCode": status, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body),
            "isBase64Encoded": False}


def parse_event(event: Any) -> dict[str, Any]:
    """The request document: the event itself, or the JSON in a proxy event's ``body``."""
    if not isinstance(event, dict):
        raise RequestError(400, "BadRequest", "the event must be a JSON object")
    if "body" not in event:
        document: Any = event
    else:
        body = event["body"]
        if body is None or body == "":
            raise RequestError(400, "BadRequest", "no body: send JSON with one of image, s3_uri or url")
        if isinstance(body, dict):
            document = body
        elif not isinstance(body, str):
            raise RequestError(400, "BadRequest", "the body must be a JSON string")
        else:
            raw = body.encode()
            if event.get("isBase64Encoded"):
                raw = _b64decode(body, "body")
            if len(raw) > MAX_PAYLOAD_BYTES:
                raise RequestError(413, "PayloadTooLarge",
                                   f"the body is {len(raw):,} bytes; the limit is {MAX_PAYLOAD_BYTES:,} (6 MB)")
            try:
                document = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise RequestError(400, "BadRequest", "the body is not JSON") from None
    if not isinstance(document, dict):
        raise RequestError(400, "BadRequest", "the request must be a JSON object")
    return document


def load_image(document: dict[str, Any]) -> tuple[str, bytes]:
    """The image bytes from exactly one of ``image`` (base64), ``s3_uri`` or ``url``."""
    given = [key for key in ("image", "s3_uri", "url") if document.get(key) not in (None, "")]
    if len(given) != 1:
        raise RequestError(400, "BadRequest", "give exactly one of image (base64), s3_uri or url"
                           + (f", not {' and '.join(given)}" if given else ""))
    key, value = given[0], document[given[0]]
    if not isinstance(value, str):
        raise RequestError(400, "BadRequest", f"{key} must be a string")
    if key == "image":
        if value.startswith("data:") and "," in value:  # a data URL: data:image/png;base64,....
            value = value.split(",", 1)[1]
        if len(value) > MAX_PAYLOAD_BYTES * 4 // 3 + 4:
            raise RequestError(413, "PayloadTooLarge", f"the image is over the {MAX_PAYLOAD_BYTES:,}-byte (6 MB) limit")
        data = _b64decode(value, "image")
    elif key == "s3_uri":
        data = _read_s3(value)
    else:
        data = _read_url(value)
    if not data:
        raise RequestError(400, "BadRequest", f"{key}: the image is empty")
    if len(data) > MAX_PAYLOAD_BYTES:
        raise RequestError(413, "PayloadTooLarge",
                           f"the image is {len(data):,} bytes; the endpoint accepts at most {MAX_PAYLOAD_BYTES:,} (6 MB)")
    return key, data


def image_type(data: bytes) -> str:
    """The content type the bytes start with; refuses anything that is not an image."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    for signature, kind in _SIGNATURES:
        if data.startswith(signature):
            return kind
    raise RequestError(400, "BadRequest", "not an image: send a JPEG, PNG, GIF, BMP or WebP")


def invoke_endpoint(endpoint: str, image: bytes, content_type: str, top_k: int) -> tuple[list[dict[str, Any]], float]:
    """The endpoint's top-k for one image, and how long the call took (ms)."""
    if top_k <= DEFAULT_TOP_K:  # raw bytes: no base64 overhead on the 6 MB limit
        body = image
        content_type = content_type if content_type in ("image/jpeg", "image/png") else "application/x-image"
    else:
        body = json.dumps({"image": base64.b64encode(image).decode(), "top_k": top_k}).encode()
        content_type = "application/json"
        if len(body) > MAX_PAYLOAD_BYTES:
            raise RequestError(413, "PayloadTooLarge", f"top_k above {DEFAULT_TOP_K} sends base64 JSON, and that is "
                               f"{len(body):,} bytes, over the {MAX_PAYLOAD_BYTES:,}-byte limit")
    from botocore.exceptions import BotoCoreError, ClientError

    started = time.perf_counter()
    try:
        response = client("sagemaker-runtime").invoke_endpoint(
            EndpointName=endpoint, Body=body, ContentType=content_type, Accept="application/json")
        payload = response["Body"].read()
    except ClientError as exc:
        raise _endpoint_error(endpoint, exc) from None
    except BotoCoreError as exc:
        name = type(exc).__name__
        if "Credentials" in name:
            raise RequestError(500, "Misconfigured", "the function has no AWS credentials") from None
        status = 504 if "Timeout" in name else 502
        raise RequestError(status, "EndpointUnreachable", f"could not reach endpoint {endpoint} ({name})") from None
    elapsed_ms = (time.perf_counter() - started) * 1000
    try:
        predictions = json.loads(payload)["predictions"][0]["top_k"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise RequestError(502, "BadEndpointAnswer", f"endpoint {endpoint} answered something unexpected") from None
    return predictions[:top_k], elapsed_ms


def client(service: str) -> Any:
    """The boto3 client for service, created once (honours ``AWS_ENDPOINT_URL_<SERVICE>``)."""
    if service not in _clients:
        import boto3
        from botocore.config import Config

        config = Config(retries={"mode": "standard", "max_attempts": 2}, connect_timeout=5, read_timeout=60)
        _clients[service] = boto3.client(service, config=config)
    return _clients[service]


def _endpoint_error(endpoint: str, exc: Any) -> RequestError:
    error = exc.response.get("Error", {})
    code, message = str(error.get("Code", "")), str(error.get("Message", ""))
    if code in ("AccessDeniedException", "AccessDenied"):
        return RequestError(403, "AccessDenied", message or f"access denied to endpoint {endpoint}")
    if code in ("UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException"):
        return RequestError(403, "AccessDenied", f"the function's credentials were refused ({code})")
    if code == "ValidationError" and "not found" in message.lower():
        return RequestError(404, "EndpointNotFound", message)
    if code == "ModelError":
        original = exc.response.get("OriginalStatusCode")
        detail = _original_message(exc.response.get("OriginalMessage") or message)
        if isinstance(original, int) and 400 <= original < 500:
            return RequestError(400, "BadRequest", f"the endpoint refused the image: {detail}")
        return RequestError(502, "EndpointFailed", f"the endpoint failed on the image: {detail}")
    if code in ("ThrottlingException", "TooManyRequestsException"):
        return RequestError(429, "Throttled", message or "the endpoint is throttling requests")
    if code in ("ServiceUnavailable", "ModelNotReadyException"):
        return RequestError(503, "EndpointNotReady", message or f"endpoint {endpoint} is not ready")
    return RequestError(502, "EndpointFailed", f"endpoint {endpoint} failed ({code or 'error'}): {message}")


def _original_message(text: str) -> str:
    """The container's own message inside a ModelError (its ``{"Message": ...}``)."""
    try:
        document = json.loads(text)
    except (TypeError, ValueError):
        return text[:500]
    return str(document.get("Message", text))[:500] if isinstance(document, dict) else text[:500]


def _top_k(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TOP_K:
        raise RequestError(400, "BadRequest", f"top_k must be a whole number from 1 to {MAX_TOP_K}")
    return value


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(400, "BadRequest", f"{what} is not valid base64") from None


def _read_s3(uri: str) -> bytes:
    prefix = os.environ.get("S3_INPUT_PREFIX", "").strip()
    if not prefix:
        raise RequestError(400, "BadRequest", "S3 inputs are not enabled for this function: send the image as base64")
    if not uri.startswith("s3://") or not uri.startswith(prefix.rstrip("/") + "/") or ".." in uri.split("/"):
        raise RequestError(400, "BadRequest", f"s3_uri must name an object under {prefix.rstrip('/')}/")
    bucket, _, key = uri[len("s3://"):].partition("/")
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        response = client("s3").get_object(Bucket=bucket, Key=key)
        if int(response.get("ContentLength", 0)) > MAX_PAYLOAD_BYTES:
            raise RequestError(413, "PayloadTooLarge",
                               f"{uri} is {response['ContentLength']:,} bytes; the limit is {MAX_PAYLOAD_BYTES:,} (6 MB)")
        return bytes(response["Body"].read(MAX_PAYLOAD_BYTES + 1))
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("AccessDenied", "403"):
            raise RequestError(403, "AccessDenied", f"access denied to {uri}") from None
        if code in ("NoSuchKey", "404", "NoSuchBucket"):
            raise RequestError(404, "NotFound", f"{uri} does not exist") from None
        raise RequestError(502, "S3Failed", f"could not read {uri} ({code})") from None
    except BotoCoreError as exc:
        raise RequestError(502, "S3Failed", f"could not read {uri} ({type(exc).__name__})") from None


def _read_url(url: str) -> bytes:
    if os.environ.get("ALLOW_URL_INPUTS", "true").strip().lower() in ("false", "0", "no"):
        raise RequestError(400, "BadRequest", "URL inputs are not enabled for this function")
    if not url.lower().startswith(("http://", "https://")):
        raise RequestError(400, "BadRequest", "url must be an http:// or https:// URL")
    request = urllib.request.Request(url, headers={"User-Agent": "sm-console-lambda/1", "Accept": "image/*"})
    try:
        with urllib.request.urlopen(request, timeout=URL_TIMEOUT_S) as response:
            return bytes(response.read(MAX_PAYLOAD_BYTES + 1))
    except urllib.error.HTTPError as exc:
        raise RequestError(400, "BadRequest", f"could not fetch the image: the URL answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RequestError(400, "BadRequest", f"could not fetch the image from the URL: {reason}") from None
