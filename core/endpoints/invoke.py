"""Request bodies for endpoints from image bytes, and error messages from their answers.

Shared by the Deploy page, the benchmark and the tests; the formats are those of
``entrypoints/inference.py``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from pathlib import Path

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
)
RAW_IMAGE_FALLBACK = "application/x-image"
"""Content type for bytes that are not JPEG or PNG: the endpoint decodes or refuses them."""


def sniff_image_type(data: bytes) -> str | None:
    """The image type the bytes start with (JPEG, PNG, GIF, BMP, WebP), or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    for signature, kind in _SIGNATURES:
        if data.startswith(signature):
            return kind
    return None


def image_request(data: bytes) -> tuple[bytes, str]:
    """One image as a raw body with its content type, found from the bytes, not a file name.

    JPEG and PNG keep their own type; anything else goes as ``application/x-image`` and the
    endpoint decodes it or answers a clear 400, as it would on AWS.
    """
    kind = sniff_image_type(data)
    return data, kind if kind in ("image/jpeg", "image/png") else RAW_IMAGE_FALLBACK


def image_file_request(path: Path) -> tuple[bytes, str]:
    """:func:`image_request` of a file's bytes."""
    return image_request(Path(path).read_bytes())


def json_request(images: Sequence[bytes], *, top_k: int | None = None) -> tuple[bytes, str]:
    """Several images in one JSON request: ``{"instances": [{"b64": ...}, ...]}``."""
    document: dict[str, object] = {"instances": [{"b64": base64.b64encode(data).decode()} for data in images]}
    if top_k is not None:
        document["top_k"] = top_k
    return json.dumps(document).encode(), "application/json"


def error_message(body: bytes | str) -> str:
    """The handler's message in an error answer (its text when it is not such JSON).

    Understands the container's ``{"ErrorCode", "Message"}`` and SageMaker Runtime's
    ``ModelError`` body, whose ``OriginalMessage`` is the container's answer.
    """
    text = (body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body).strip()
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        return text[:500] or "no message"
    if isinstance(document, dict):
        if isinstance(document.get("OriginalMessage"), str):
            return error_message(document["OriginalMessage"])
        for key in ("Message", "message"):
            if isinstance(document.get(key), str):
                return document[key]
    return text[:500]
