"""The console's web server: the Streamlit app plus the route the Data page sends large files to.

``streamlit run server.py`` serves ``streamlit_app.py`` as usual and, beside it, ``/smc/uploads``:
the browser announces a file (``POST``), sends it in pieces (``PUT ?offset=``), asks how much
arrived after a broken connection (``GET``) and cancels (``DELETE``). Each piece goes straight to
disk (see :mod:`core.uploads`): a zip of several GB never sits in memory.
"""

from __future__ import annotations

import streamlit as st
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.config import load_settings
from core.errors import InvalidInputError, NotFoundError
from core.uploads import UPLOADS_ROUTE, UploadSpool

WRITE_BYTES = 1024 * 1024


def _spool() -> UploadSpool:
    return UploadSpool(load_settings().workspace)


def _error(exc: Exception, status: int, **extra: object) -> JSONResponse:
    return JSONResponse({"error": str(exc), **extra}, status_code=status)


async def announce(request: Request) -> Response:
    """``POST {"filename", "size"}``: answers ``{"id"}``, the id to send the pieces under."""
    try:
        body = await request.json()
        filename, size = str(body["filename"]), int(body["size"])
    except (ValueError, KeyError, TypeError) as exc:
        return _error(InvalidInputError(f"not an upload announcement ({exc})"), 400)
    spool = _spool()
    try:
        await run_in_threadpool(spool.sweep)
        upload_id = await run_in_threadpool(spool.announce, filename, size)
    except InvalidInputError as exc:
        return _error(exc, 413)
    return JSONResponse({"id": upload_id})


async def piece(request: Request) -> Response:
    """``PUT ?offset=n`` with the bytes from n on: answers ``{"received"}``."""
    upload_id = request.path_params["upload_id"]
    spool = _spool()
    pending = bytearray()  # the server's small reads, gathered: one disk write per WRITE_BYTES, not per read
    try:
        received = int(request.query_params["offset"])
        async for chunk in request.stream():
            pending += chunk
            if len(pending) >= WRITE_BYTES:
                received = await run_in_threadpool(spool.append, upload_id, received, bytes(pending))
                pending.clear()
        if pending:
            received = await run_in_threadpool(spool.append, upload_id, received, bytes(pending))
    except NotFoundError as exc:
        return _error(exc, 404)
    except (InvalidInputError, ValueError, KeyError) as exc:
        try:
            return _error(exc, 409, received=await run_in_threadpool(spool.received, upload_id))
        except NotFoundError as gone:
            return _error(gone, 404)
    except ClientDisconnect:
        return Response(status_code=499)  # the browser resumes from what arrived
    return JSONResponse({"received": received})


async def status(request: Request) -> Response:
    """``GET``: answers ``{"received"}``."""
    try:
        return JSONResponse({"received": await run_in_threadpool(_spool().received, request.path_params["upload_id"])})
    except NotFoundError as exc:
        return _error(exc, 404)


async def cancel(request: Request) -> Response:
    """``DELETE``: the upload and its bytes are removed."""
    await run_in_threadpool(_spool().discard, request.path_params["upload_id"])
    return Response(status_code=204)


ROUTES = [
    Route(UPLOADS_ROUTE, announce, methods=["POST"]),
    Route(f"{UPLOADS_ROUTE}/{{upload_id}}", piece, methods=["PUT"]),
    Route(f"{UPLOADS_ROUTE}/{{upload_id}}", status, methods=["GET"]),
    Route(f"{UPLOADS_ROUTE}/{{upload_id}}", cancel, methods=["DELETE"]),
]
app = st.App("streamlit_app.py", routes=ROUTES)
