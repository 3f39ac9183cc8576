"""Loading lambda/lambda_function.py (``lambda`` is a keyword: it cannot be imported as a package)."""

from __future__ import annotations

import importlib.util
import io
from types import ModuleType

from PIL import Image

from core.lambdas.bundle import LAMBDA_DIR


def load_function(file: str = "lambda_function.py") -> ModuleType:
    """A fresh copy of a function module of ``lambda/`` (its client cache empty), as a cold start has."""
    spec = importlib.util.spec_from_file_location(f"{file[:-3]}_under_test", LAMBDA_DIR / file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _image(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (24, 16), (10, 120, 200)).save(buffer, format=fmt)
    return buffer.getvalue()


JPEG = _image("JPEG")
PNG = _image("PNG")


class Context:
    """The part of Lambda's context object the handler reads."""

    aws_request_id = "11111111-2222-3333-4444-555555555555"
    function_name = "under-test"
