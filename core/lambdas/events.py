"""Test events for the function: an image as base64, directly or as API Gateway sends it."""

from __future__ import annotations

import base64
import json
from typing import Any

from core.errors import InvalidInputError


def image_event(image: bytes, *, top_k: int = 5, api_gateway: bool = False) -> dict[str, Any]:
    """An event carrying ``image`` as base64 (``{"image": ..., "top_k": ...}``).

    With ``api_gateway`` the request is the JSON ``body`` of a REST API proxy event, as
    API Gateway or a function URL delivers a ``POST``.
    """
    request = {"image": base64.b64encode(image).decode(), "top_k": top_k}
    if not api_gateway:
        return request
    return {
        "resource": "/classify", "path": "/classify", "httpMethod": "POST",
        "headers": {"Content-Type": "application/json"}, "isBase64Encoded": False,
        "body": json.dumps(request),
    }


def s3_event(uri: str, *, top_k: int = 5) -> dict[str, Any]:
    """An event naming an S3 object (the function reads it; S3 inputs must be enabled)."""
    return {"s3_uri": uri, "top_k": top_k}


def parse_event(text: str) -> Any:
    """The edited test event as JSON.

    Raises:
        InvalidInputError: it is not JSON (the message gives line and column).
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"the test event is not valid JSON: {exc.msg} (line {exc.lineno}, "
                                f"column {exc.colno})") from None
