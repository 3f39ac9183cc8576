"""The endpoint server: one process per endpoint, serving ``inference.py`` over HTTP.

Local endpoints run it with the job environment's interpreter, bound to 127.0.0.1 (the
default; only the serving container binds ``--host 0.0.0.0``, inside its own network)::

    python entrypoints/serve.py --model model.tar.gz --name my-endpoint --port 8080

Routes (SageMaker's hosting contract, plus the Runtime API's path):

- ``GET /ping``: 200 once the model is loaded and warmed up, 503 before.
- ``POST /invocations``: the container contract; errors as ``{"ErrorCode", "Message"}`` with
  the handler's status (400, 406, 413, 415; 500 when the model fails).
- ``POST /endpoints/{name}/invocations``: what a boto3 ``sagemaker-runtime`` client sends
  when ``endpoint_url`` points here. Errors come back as SageMaker Runtime sends them, so
  botocore raises the same ``ClientError`` codes: an unknown name is ``ValidationError``
  (400, "Endpoint ... not found."), a body over 6 MB is ``413``, a handler answer of 4xx
  or 5xx is ``ModelError`` (424) with ``OriginalStatusCode`` and ``OriginalMessage``, and a
  model still loading is ``ServiceUnavailable`` (503). With ``--iam-dir``, a request signed
  with a local role's credentials is first authorised against that role's policy, and answered
  ``AccessDeniedException`` as AWS answers it when the policy does not allow
  ``sagemaker:InvokeEndpoint`` on the endpoint's ARN (see ``local_iam.py``).

How a request flows: one asyncio event loop reads and answers every connection; a decode
thread turns the body into resized uint8 pixels and queues them; one batcher thread
normalises up to ``--max-batch-size`` images at once, runs a single forward pass, and builds
each request's JSON answer, which the loop then sends. A forming batch waits up to
``--max-wait-ms`` for each next request, but only while requests are being decoded or other
client connections are open (each may send one), so a lone client never waits. A partial
batch that costs more than a full one (timed at start-up) runs padded with blank images
(``--pad-batches``). ``--torch-threads`` defaults to half the CPUs: the rest serve HTTP and
decode. glibc is told to keep freed memory for reuse (see ``keep_freed_memory``).
``X-Inference-Latency-Ms`` carries the time spent in the server. One log line per request
(never a body; health checks unlogged). SIGTERM stops accepting connections, lets requests in
flight finish (up to 10 s) and exits 0. Exit code 1: the model did not
load (last line ``ERROR: ...``); 2: the port is taken.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import email.utils
import functools
import json
import logging
import os
import re
import shutil
import signal
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar

import torch
from inference import (
    MAX_BODY_BYTES,
    ImageBatch,
    InferenceError,
    LoadedModel,
    Prediction,
    forward,
    input_fn,
    model_fn,
    output_fn,
    pixels,
)

LOG = logging.getLogger("serve")
LOCAL_HOST = "127.0.0.1"
RUNTIME_PATH = re.compile(r"^/endpoints/([^/]+)/invocations$")
LOCAL_ACCOUNT_ID = "000000000000"
"""The account local endpoints belong to (their ARNs need one)."""
IDLE_TIMEOUT_S = 5.0
"""An idle keep-alive connection is closed after this long, freeing its worker."""
PREDICT_TIMEOUT_S = 60.0
"""SageMaker's limit on one invocation inside the model container."""
STOP_GRACE_S = 10.0
DRAIN_LIMIT_BYTES = 64 * 1024 * 1024
"""Refused bodies up to this size are read and dropped; larger ones close the connection."""
MAX_MODEL_BYTES = 4 * 1024**3
"""Largest unpacked model.tar.gz accepted."""
MAX_HEAD_BYTES = 64 * 1024
"""Longest request line and headers accepted (431 beyond)."""
DECODE_THREADS = 2
"""Threads decoding request bodies: one decodes while the other waits on a big image."""
MAX_WAIT_SPREAD = 4
"""A forming batch waits at most this many times ``--max-wait-ms`` in all (see MicroBatcher)."""
MIN_UPLOAD_BYTES_PER_S = 64 * 1024
"""A body must arrive at least this fast (after IDLE_TIMEOUT_S of grace), or the connection closes."""
SERVER_NAME = "sm-console-serve/2"
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
"""glibc's mallopt parameters (malloc.h)."""
Forward = Callable[[torch.Tensor], torch.Tensor]
T = TypeVar("T")


@dataclass
class _Job:
    """One request's preprocessed images, waiting for its rows of a batched forward pass."""

    inputs: torch.Tensor
    on_done: Callable[[_Job], None] | None = None
    """Called with the job on the batcher's thread once it has its result (the server wakes its
    event loop)."""
    done: threading.Event = field(default_factory=threading.Event)
    probabilities: torch.Tensor | None = None
    error: BaseException | None = None
    batch_size: int = 0

    def finish(self) -> None:
        self.done.set()
        if self.on_done is not None:
            self.on_done(self)

    def outcome(self) -> torch.Tensor:
        """The probabilities of a finished job; raises the batch's error."""
        if self.error is not None:
            raise self.error
        assert self.probabilities is not None
        return self.probabilities

    def result(self, timeout: float) -> torch.Tensor:
        if not self.done.wait(timeout):
            raise TimeoutError(f"no prediction within {timeout:.0f} s")
        return self.outcome()


class MicroBatcher:
    """One thread running the model over the inputs of several requests at once.

    A forming batch waits while requests are announced but not yet queued, and while it holds
    fewer requests than there are open client connections: each of those may be about to send
    one. It waits up to ``max_wait_s`` for each next request, and ``MAX_WAIT_SPREAD`` times that
    in all: requests of a burst arrive one after another as they are read and decoded, and a
    deadline counted from the first would cut the batch short just before the last ones (a
    partial batch costs nearly a full one). A single client never waits.

    Args:
        forward_fn: ``N x 3 x S x S`` inputs (the server's: resized uint8 pixels) to ``N x C``
            probabilities.
        max_batch_size: most images per forward pass (a larger single request runs alone).
        max_wait_s: longest a batch waits for the next request.
        clients: how many client connections are open now (None: do not wait for them).
        pad_from: a batch of ``pad_from`` or more images, but fewer than ``max_batch_size``,
            runs padded with blank images to ``max_batch_size`` (see :func:`padding_start`);
            None: never padded.
    """

    def __init__(self, forward_fn: Forward, *, max_batch_size: int, max_wait_s: float,
                 clients: Callable[[], int] | None = None, pad_from: int | None = None) -> None:
        self.forward = forward_fn
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.clients = clients or (lambda: 0)
        self.pad_from = pad_from
        self._cond = threading.Condition()
        self._queue: deque[_Job] = deque()
        self._arriving = 0
        self._last_arrival = 0.0
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="batcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Runs what is queued, then ends the thread."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join()

    @contextmanager
    def arrival(self) -> Iterator[Callable[..., _Job]]:
        """Announces a request being decoded; yields ``submit(inputs, on_done=None)``, which
        queues its inputs.

        While announced requests exist, a forming batch waits for them (up to max_wait_s).
        """
        submitted = False

        def submit(inputs: torch.Tensor, on_done: Callable[[_Job], None] | None = None) -> _Job:
            nonlocal submitted
            job = _Job(inputs, on_done)
            with self._cond:
                self._arriving -= 1
                submitted = True
                self._queue.append(job)
                self._last_arrival = time.monotonic()
                if len(self._queue) == 1 or not self._should_wait():
                    self._cond.notify_all()  # waking the batcher for every request would cost it CPU
            return job

        with self._cond:
            self._arriving += 1
            self._last_arrival = time.monotonic()
        try:
            yield submit
        finally:
            if not submitted:
                with self._cond:
                    self._arriving -= 1
                    self._cond.notify_all()

    def _queued_images(self) -> int:
        return sum(len(job.inputs) for job in self._queue)

    def _should_wait(self) -> bool:
        if self._stopped or self._queued_images() >= self.max_batch_size:
            return False
        return self._arriving > 0 or len(self._queue) < min(self.clients(), self.max_batch_size)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopped:
                    self._cond.wait()
                if not self._queue:
                    return
                latest = time.monotonic() + MAX_WAIT_SPREAD * self.max_wait_s
                while self._should_wait():
                    remaining = min(self._last_arrival + self.max_wait_s, latest) - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                jobs = [self._queue.popleft()]
                size = len(jobs[0].inputs)
                while self._queue and size + len(self._queue[0].inputs) <= self.max_batch_size:
                    size += len(self._queue[0].inputs)
                    jobs.append(self._queue.popleft())
            self._run_jobs(jobs, size)

    def _run_jobs(self, jobs: list[_Job], size: int) -> None:
        try:
            inputs = torch.cat([job.inputs for job in jobs])
            if self.pad_from is not None and self.pad_from <= size < self.max_batch_size:
                blank = inputs.new_zeros(self.max_batch_size - size, *inputs.shape[1:])
                inputs = torch.cat([inputs, blank])  # rows past `size` are never handed out
            probabilities = self.forward(inputs)
        except Exception as exc:  # every waiting request answers 500 with the reason
            LOG.exception("the model failed on a batch of %d", size)
            for job in jobs:
                job.error = exc
                job.finish()
            return
        start = 0
        for job in jobs:
            job.probabilities = probabilities[start:start + len(job.inputs)]
            job.batch_size = size
            start += len(job.inputs)
            job.finish()


@dataclass
class _Answer:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    batch_size: int = 0


def error_answer(status: int, message: str) -> _Answer:
    """The container contract's error: the status and ``{"ErrorCode", "Message"}``."""
    code = HTTPStatus(status).phrase.title().replace(" ", "").replace("-", "")
    return _Answer(status, json.dumps({"ErrorCode": code, "Message": message}).encode())


def runtime_answer(answer: _Answer) -> _Answer:
    """What SageMaker Runtime makes of the container's answer: 4xx/5xx become ModelError (424)."""
    if answer.status < 400:
        return _Answer(answer.status, answer.body, answer.content_type,
                       {"x-Amzn-Invoked-Production-Variant": "AllTraffic"}, answer.batch_size)
    original = answer.body.decode("utf-8", errors="replace")
    kind = "client" if answer.status < 500 else "server"
    message = (f'Received {kind} error ({answer.status}) from primary with message "{original}". '
               "See the endpoint's server log for more information.")
    body = {"ErrorCode": "ModelError", "Message": message, "OriginalStatusCode": answer.status,
            "OriginalMessage": original}
    return _Answer(424, json.dumps(body).encode(), headers={"x-amzn-ErrorType": "ModelError"})


def runtime_error(status: int, code: str | None, message: str) -> _Answer:
    """An error SageMaker Runtime raises itself (code None: botocore reports the status)."""
    body: dict[str, str] = {"Message": message}
    headers = {}
    if code:
        body["ErrorCode"] = code
        headers["x-amzn-ErrorType"] = code
    return _Answer(status, json.dumps(body).encode(), headers=headers)


@dataclass
class Request:
    """One request's head: method, target path (no query) and lower-cased header names."""

    method: str
    path: str
    version: str
    headers: dict[str, str]

    @property
    def body_length(self) -> int | None:
        """The declared body length; None when there is none or it is not a number."""
        try:
            return int(self.headers.get("content-length", ""))
        except ValueError:
            return None

    @property
    def keep_alive(self) -> bool:
        connection = self.headers.get("connection", "").lower()
        return connection != "close" if self.version == "HTTP/1.1" else connection == "keep-alive"


def parse_head(head: bytes) -> Request:
    """The request line and headers of ``head`` (up to and including the blank line).

    Raises:
        ValueError: not an HTTP/1.x request head.
    """
    lines = head.lstrip(b"\r\n").split(b"\r\n")
    parts = lines[0].decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise ValueError(f"not an HTTP/1.x request line: {lines[0][:100]!r}")
    headers = {}
    for line in lines[1:]:
        if not line:
            continue
        name, colon, value = line.partition(b":")
        if not colon or not name.strip():
            raise ValueError(f"not a header line: {line[:100]!r}")
        headers[name.strip().decode("latin-1").lower()] = value.strip().decode("latin-1")
    return Request(parts[0], parts[1].split("?", 1)[0], parts[2], headers)


class ModelServer:
    """HTTP/1.1 on one asyncio event loop; bodies decode in a few threads beside it, which
    hand the pixels straight to the batcher.

    With one thread per connection (``http.server``), each request cost 1.5-2 ms of CPU outside
    the forward pass, nearly all of it holding the GIL, so at concurrency 16 a batch waited
    ~30 ms for its requests to be answered, read and decoded one after another. On the loop,
    the HTTP part of a request is a fraction of that, and the decoding runs beside it.

    At most ``workers`` connections are served at once; the others wait their turn.
    """

    def __init__(self, *, endpoint_name: str, workers: int, decode_threads: int, iam_dir: Path | None = None,
                 account: str = LOCAL_ACCOUNT_ID) -> None:
        self.endpoint_name = endpoint_name
        self.iam_dir = iam_dir
        self.account = account
        self.model: LoadedModel | None = None
        self.batcher: MicroBatcher | None = None
        self._slots = asyncio.Semaphore(workers)
        self._decode_threads = ThreadPoolExecutor(decode_threads, thread_name_prefix="decode")
        self._connections = 0
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._listener: asyncio.Server | None = None
        self._wakeups = _Wakeups(asyncio.get_running_loop())

    @property
    def ready(self) -> bool:
        return self.batcher is not None

    async def listen(self, host: str, port: int) -> None:
        """Starts accepting connections (raises OSError when the address is taken)."""
        self._listener = await asyncio.start_server(self._serve_connection, host, port, backlog=128,
                                                    limit=MAX_HEAD_BYTES)

    def start_serving(self, model: LoadedModel, batcher: MicroBatcher) -> None:
        self.model, self.batcher = model, batcher

    def open_connections(self) -> int:
        """Client connections being served now (each may send a request at any moment).

        Read from the batcher's thread: a plain int read is atomic, and a stale value only
        changes how long one batch waits.
        """
        return self._connections

    async def close(self, grace_s: float) -> None:
        """Stops accepting, then waits up to ``grace_s`` for the requests in flight (idle
        keep-alive connections do not count)."""
        if self._listener is not None:
            self._listener.close()
        try:
            await asyncio.wait_for(self._idle.wait(), grace_s)
        except TimeoutError:
            LOG.warning("%d requests still in flight after %.0f s", self._in_flight, grace_s)
        self._decode_threads.shutdown(wait=False, cancel_futures=True)

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections += 1  # counted from accept: a burst of new clients may send before being served
        try:
            async with self._slots:
                while await self._serve_request(reader, writer):
                    pass
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError) as exc:
            LOG.warning("connection from %s ended with %s", writer.get_extra_info("peername"),
                        exc or type(exc).__name__)
        finally:
            self._connections -= 1
            writer.close()

    async def _serve_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Reads, answers and logs one request; False when the connection is to close."""
        try:
            async with asyncio.timeout(IDLE_TIMEOUT_S):
                head = await reader.readuntil(b"\r\n\r\n")
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            return False  # an idle connection timed out, or the client closed it
        except asyncio.LimitOverrunError:
            await self._send(writer, None, error_answer(431, f"the request head is over {MAX_HEAD_BYTES:,} bytes"),
                             time.perf_counter(), close=True)
            return False
        started = time.perf_counter()
        try:
            request = parse_head(head)
        except ValueError as exc:
            await self._send(writer, None, error_answer(400, str(exc)), started, close=True)
            return False
        self._in_flight += 1
        self._idle.clear()
        try:
            try:
                answer, readable = await self._answer(request, reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
                raise  # the client went away, or sent its body too slowly: nobody to answer
            except Exception:  # noqa: BLE001 - a bug of ours: answered, logged, connection closed
                LOG.exception("%s %s failed", request.method, request.path)
                answer, readable = error_answer(500, "the server failed on this request"), False
            await self._send(writer, request, answer, started, close=not (readable and request.keep_alive))
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()
        return readable and request.keep_alive

    async def _answer(self, request: Request, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> tuple[_Answer, bool]:
        """The answer, and whether the connection can carry another request (its body was read)."""
        body = _Body(request, reader, writer)
        runtime = RUNTIME_PATH.match(request.path)
        if request.method == "GET" and request.path == "/ping":
            answer = _Answer(200, b"{}") if self.ready else error_answer(503, "the model is still loading")
        elif request.method == "GET":
            answer = error_answer(404, f"no route GET {request.path}: use GET /ping")
        elif request.method != "POST":
            answer = error_answer(405, f"{request.method} is not served: use GET /ping or POST /invocations")
        elif runtime:
            answer = await self._runtime_invocation(runtime.group(1), request, body)
        elif request.path == "/invocations":
            answer = await self._invocation(request, body)
        else:
            answer = error_answer(404, f"no route POST {request.path}: use /invocations or /endpoints/NAME/invocations")
        return answer, await body.discard()

    async def _runtime_invocation(self, name: str, request: Request, body: _Body) -> _Answer:
        refusal = self._authorize(name, request)
        if refusal is not None:  # AWS authorises before it looks for the endpoint
            return refusal
        if name != self.endpoint_name:
            return runtime_error(400, "ValidationError", f"Endpoint {name} of account local not found.")
        length = request.body_length
        if length is not None and length > MAX_BODY_BYTES:
            return runtime_error(413, None, f"HTTP content length exceeded {MAX_BODY_BYTES} bytes.")
        if not self.ready:
            return runtime_error(503, "ServiceUnavailable", f"Endpoint {name} is still loading its model.")
        return runtime_answer(await self._invocation(request, body))

    def _authorize(self, name: str, request: Request) -> _Answer | None:
        """The AccessDenied answer when a local role's policy does not allow the invocation."""
        if self.iam_dir is None:
            return None
        from local_iam import authorize_invoke  # only local endpoints have roles (not the serving image)

        refusal = authorize_invoke(self.iam_dir, self.account, request.headers.get("authorization"), name)
        if refusal is None:
            return None
        LOG.warning("refused %s: %s", name, refusal.code)
        return runtime_error(refusal.status, refusal.code, refusal.message)

    async def _invocation(self, request: Request, body: _Body) -> _Answer:
        length = request.body_length
        if request.headers.get("transfer-encoding") or length is None or length < 0:
            return error_answer(411, "send the body with a Content-Length header (no chunked encoding)")
        if length > MAX_BODY_BYTES:
            return error_answer(413, f"the request body is {length:,} bytes; the limit is {MAX_BODY_BYTES:,} (6 MB)")
        model, batcher = self.model, self.batcher
        if model is None or batcher is None:
            return error_answer(503, "the model is still loading")
        data = await body.read()
        loop = asyncio.get_running_loop()
        done: asyncio.Future[_Answer] = loop.create_future()
        expiry = loop.call_later(PREDICT_TIMEOUT_S, _expire, done)
        try:
            self._decode_threads.submit(self._decode_and_queue, data, request.headers, model, batcher, done)
            return await done
        except InferenceError as exc:
            return error_answer(exc.status_code, exc.message)
        except Exception as exc:  # the handler failed: 500, which Runtime reports as ModelError
            LOG.exception("invocation failed")
            return error_answer(500, f"the model failed on this request: {type(exc).__name__}: {exc}")
        finally:
            expiry.cancel()

    def _decode_and_queue(self, data: bytes, headers: dict[str, str], model: LoadedModel, batcher: MicroBatcher,
                          done: asyncio.Future[_Answer]) -> None:
        """On a decode thread: decodes the body and queues its pixels for the batcher. The
        batcher's thread then writes the answer (or the error) into ``done``: it would
        otherwise sit idle while the event loop answers the batch's requests one by one."""

        def answer(job: _Job) -> None:
            try:
                payload, content_type = output_fn(Prediction(job.outcome(), model.class_names, batch.top_k),
                                                  headers.get("accept"))
            except BaseException as exc:  # noqa: BLE001 - answered by the request's coroutine
                self._wakeups.settle(done, error=exc)
            else:
                self._wakeups.settle(done, _Answer(200, payload, content_type, batch_size=job.batch_size))

        try:
            with batcher.arrival() as submit:
                batch, inputs = decode(data, headers.get("content-type"), model)
                submit(inputs, answer)
        except BaseException as exc:  # noqa: BLE001 - answered by the request's coroutine
            self._wakeups.settle(done, error=exc)

    async def _send(self, writer: asyncio.StreamWriter, request: Request | None, answer: _Answer, started: float,
                    *, close: bool) -> None:
        latency_ms = (time.perf_counter() - started) * 1000
        lines = [f"HTTP/1.1 {answer.status} {HTTPStatus(answer.status).phrase}", f"Server: {SERVER_NAME}",
                 f"Date: {http_date()}", f"Content-Type: {answer.content_type}",
                 f"Content-Length: {len(answer.body)}", f"X-Inference-Latency-Ms: {latency_ms:.2f}",
                 f"x-amzn-RequestId: {uuid.uuid4()}"]
        lines += [f"{name}: {value}" for name, value in answer.headers.items()]
        if close:
            lines.append("Connection: close")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + answer.body)
        await writer.drain()
        if request is None or (request.method == "GET" and answer.status in (200, 503)):
            return  # health checks come every few seconds: not worth a line each
        LOG.info("%s %s %d in=%dB out=%dB %.1fms batch=%d", request.method, request.path, answer.status,
                 max(request.body_length or 0, 0), len(answer.body), latency_ms, answer.batch_size)


class _Body:
    """A request's body, read once, or read away unread so the connection can carry the next
    request (the client then gets the answer rather than a reset connection)."""

    def __init__(self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.request, self.reader, self.writer = request, reader, writer
        self.length = request.body_length
        self._unread = self.length is not None and self.length > 0 and not request.headers.get("transfer-encoding")

    async def read(self) -> bytes:
        """The whole body (its length was checked by the caller)."""
        if not self._unread:
            return b""
        self._unread = False
        length = self.length or 0
        if self._expects_continue():
            self.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        async with asyncio.timeout(_upload_time_s(length)):
            return await self.reader.readexactly(length)

    async def discard(self) -> bool:
        """Reads an unread body away; False when the connection cannot carry another request:
        a body without a length, chunked, over DRAIN_LIMIT_BYTES, or one the client waits to
        be asked for (``Expect: 100-continue``: it is never asked, and the connection closes)."""
        if self.request.headers.get("transfer-encoding") or (self.length is None and self.request.method == "POST"):
            return False
        if not self._unread:
            return True
        self._unread = False
        if self.length is None or self.length > DRAIN_LIMIT_BYTES or self._expects_continue():
            return False
        left = self.length
        async with asyncio.timeout(_upload_time_s(left)):
            while left > 0:
                chunk = await self.reader.read(min(left, 1 << 16))
                if not chunk:
                    return False
                left -= len(chunk)
        return True

    def _expects_continue(self) -> bool:
        return self.request.headers.get("expect", "").lower() == "100-continue"


def _upload_time_s(length: int) -> float:
    """How long a body of ``length`` bytes may take to arrive (see MIN_UPLOAD_BYTES_PER_S)."""
    return IDLE_TIMEOUT_S + length / MIN_UPLOAD_BYTES_PER_S


def decode(body: bytes, content_type: str | None, model: LoadedModel) -> tuple[ImageBatch, torch.Tensor]:
    """``input_fn`` and the per-image half of the preprocessing: the request's images and their
    resized uint8 pixels (the batcher normalises whole batches)."""
    batch = input_fn(body, content_type)
    return batch, pixels(batch, model)


class _Wakeups:
    """Futures settled from other threads, resolved on the event loop with one wake-up for all
    those settled together rather than one each: each wake-up has the loop and the batcher
    trade the GIL while the batcher is still handing out a batch's results."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._pending: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []

    def settle(self, future: asyncio.Future[T], value: T | None = None, error: BaseException | None = None) -> None:
        with self._lock:
            self._pending.append((future, value, error))
            first = len(self._pending) == 1
        if first:
            self._loop.call_soon_threadsafe(self._resolve)

    def _resolve(self) -> None:
        """Resolves one future per turn of the loop, so that requests arriving meanwhile are read
        (and handed to the decoders) between answers, not after all of them."""
        with self._lock:
            future, value, error = self._pending.pop(0)
            more = bool(self._pending)
        if more:
            self._loop.call_soon(self._resolve)
        if future.done():  # its waiter timed out
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)


def _expire(done: asyncio.Future[_Answer]) -> None:
    if not done.done():
        done.set_exception(TimeoutError(f"no prediction within {PREDICT_TIMEOUT_S:.0f} s"))


@functools.lru_cache(maxsize=2)
def _http_date(second: int) -> str:
    return email.utils.formatdate(second, usegmt=True)


def http_date() -> str:
    return _http_date(int(time.time()))


def forward_pixels(inputs: torch.Tensor, model: LoadedModel) -> torch.Tensor:
    """Normalises a batch of resized uint8 pixels (``model.normalise``), then runs the model."""
    return forward(model.normalise(inputs), model)


def load_model(source: Path, scratch: Path) -> LoadedModel:
    """``model_fn`` on a model folder, or on a ``model.tar.gz`` unpacked safely into ``scratch``.

    Raises:
        FileNotFoundError: source does not exist.
        ValueError: the archive is too large, unsafe or not a model.
        tarfile.TarError: the archive is corrupt.
    """
    if source.is_dir():
        return model_fn(source)
    if not source.is_file():
        raise FileNotFoundError(f"{source} does not exist")
    model_dir = scratch / "model"
    with tarfile.open(source, "r:*") as archive:
        members = archive.getmembers()
        size = sum(member.size for member in members)
        if size > MAX_MODEL_BYTES:
            raise ValueError(f"{source} unpacks to {size:,} bytes; the limit is {MAX_MODEL_BYTES:,}")
        archive.extractall(model_dir, members=members, filter="data")
    return model_fn(model_dir)


def warm_up(model: LoadedModel, batcher: MicroBatcher) -> None:
    """Runs the first forward passes (one image, a full batch) on the batcher's thread."""
    for size in sorted({1, batcher.max_batch_size}):
        with batcher.arrival() as submit:
            job = submit(torch.zeros(size, 3, model.image_size, model.image_size, dtype=torch.uint8))
        job.result(PREDICT_TIMEOUT_S)


def forward_cpu_ms(forward_fn: Forward, size: int, image_size: int, repeats: int = 2) -> float:
    """CPU time of a forward pass of ``size`` blank images, the least of ``repeats`` (the first
    pays for warming up): unlike wall time, it leaves out what other processes take."""
    inputs = torch.zeros(size, 3, image_size, image_size, dtype=torch.uint8)
    costs = []
    for _ in range(repeats):
        started = time.thread_time()
        forward_fn(inputs)
        costs.append(time.thread_time() - started)
    return min(costs) * 1000


def padding_start(cost: Callable[[int], float], max_batch_size: int) -> int | None:
    """The smallest batch size whose forward pass costs more than a full batch's (None: none does).

    A partial batch can cost more than a full one: single-threaded, torch runs 1x1
    convolutions with oneDNN only from 16 images on, so on this CPU EfficientNet-Lite0 takes
    about 1.1 times longer for 15 images than for 16 (1.8 times before ``model_fn`` kept its
    weights channels-last). Such batches are better run padded.
    ``cost(size)`` is assumed to grow with size below ``max_batch_size`` (binary search).
    """
    if max_batch_size < 2:
        return None
    full = cost(max_batch_size)
    if cost(max_batch_size - 1) <= full:
        return None
    low, high = 1, max_batch_size - 1  # cost(high) > full
    while low < high:
        middle = (low + high) // 2
        if cost(middle) > full:
            high = middle
        else:
            low = middle + 1
    return high


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path(os.environ.get("SM_MODEL_DIR", "/opt/ml/model")),
                        help="model.tar.gz or a folder holding model.pth (default: $SM_MODEL_DIR)")
    parser.add_argument("--name", default="local", help="endpoint name answered on /endpoints/NAME/invocations")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on")
    parser.add_argument("--host", default=LOCAL_HOST,
                        help="address to bind: 127.0.0.1 (local endpoints); a serving container passes 0.0.0.0")
    parser.add_argument("--max-batch-size", type=_at_least(1), default=16, help="most images per forward pass")
    parser.add_argument("--max-wait-ms", type=float, default=10.0,
                        help="longest a forming batch waits for the next request being decoded or from another "
                             f"open connection ({MAX_WAIT_SPREAD} times that in all)")
    parser.add_argument("--workers", type=_at_least(1), default=32, help="connections served at once")
    parser.add_argument("--torch-threads", type=_at_least(0), default=0,
                        help="intra-op threads of the forward pass (0: half the CPUs, at least 1; the rest decode)")
    parser.add_argument("--pad-batches", choices=("auto", "off"), default="auto",
                        help="auto: at start-up, time forward passes and run partial batches padded with blank "
                             "images to --max-batch-size where a full batch is cheaper; off: never pad")
    parser.add_argument("--iam-dir", type=Path, default=None,
                        help="local roles and sessions: authorise Runtime requests signed with their keys "
                             "(local endpoints only; see local_iam.py)")
    parser.add_argument("--account", default=LOCAL_ACCOUNT_ID, help="the endpoint's account id, for its ARN")
    parser.add_argument("--scratch-dir", type=Path, default=None,
                        help="where model.tar.gz is unpacked (default: the system temp folder)")
    return parser


def _at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        return value

    return parse


def default_torch_threads() -> int:
    """Half the CPUs for the forward pass: the event loop and the decoding need the rest."""
    return max(1, (os.cpu_count() or 1) // 2)


def keep_freed_memory() -> bool:
    """Has glibc keep freed blocks of up to 32 MB for reuse (False: not glibc; nothing changed).

    A forward pass allocates activations of a few MB each. By default glibc maps blocks that
    large afresh and unmaps them when freed, so every pass faults its pages in again: about
    5,000 page faults and a tenth to a fifth of the CPU time of a batch of 16 here. Kept, the
    memory is reused from one batch to the next; the process's size stays at its peak.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, 32 * 1024**2) and libc.mallopt(M_TRIM_THRESHOLD, 1024**3))
    except (OSError, AttributeError):
        return False


def prepare(args: argparse.Namespace, scratch: Path, clients: Callable[[], int]) -> tuple[LoadedModel, MicroBatcher]:
    """Loads the model, times where padding pays, and starts a warmed-up batcher."""
    model = load_model(args.model, scratch)
    forward_fn: Forward = functools.partial(forward_pixels, model=model)
    pad_from = None
    if args.pad_batches == "auto":
        pad_from = padding_start(lambda size: forward_cpu_ms(forward_fn, size, model.image_size), args.max_batch_size)
    batcher = MicroBatcher(forward_fn, max_batch_size=args.max_batch_size, max_wait_s=args.max_wait_ms / 1000,
                           clients=clients, pad_from=pad_from)
    batcher.start()
    warm_up(model, batcher)
    return model, batcher


async def serve(args: argparse.Namespace) -> int:
    server = ModelServer(endpoint_name=args.name, workers=args.workers, decode_threads=DECODE_THREADS,
                         iam_dir=args.iam_dir, account=args.account)
    try:
        await server.listen(args.host, args.port)
    except OSError as exc:
        LOG.error("ERROR: cannot listen on %s:%d: %s", args.host, args.port, exc.strerror or exc)
        return 2
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    scratch = Path(tempfile.mkdtemp(prefix="model-", dir=args.scratch_dir))
    batcher: MicroBatcher | None = None
    try:
        LOG.info("endpoint %s listening on http://%s:%d; loading %s", args.name, args.host, args.port, args.model)
        started = time.perf_counter()
        # A daemon thread, not the loop's executor: a stop while loading must not wait for it.
        loading: asyncio.Future[tuple[LoadedModel, MicroBatcher]] = loop.create_future()
        threading.Thread(target=_load_into, args=(loading, _Wakeups(loop), args, scratch, server.open_connections),
                         name="load", daemon=True).start()
        stop_wait = asyncio.ensure_future(stopping.wait())
        await asyncio.wait({loading, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        if loading.done():
            try:
                model, batcher = loading.result()
            except Exception as exc:
                LOG.error("ERROR: cannot load the model: %s: %s", type(exc).__name__, exc)
                return 1
            server.start_serving(model, batcher)
            LOG.info("ready in %.1f s: %d classes, image size %d, max_batch_size=%d max_wait_ms=%g workers=%d "
                     "torch_threads=%d pad_from=%s", time.perf_counter() - started, len(model.class_names),
                     model.image_size, args.max_batch_size, args.max_wait_ms, args.workers, torch.get_num_threads(),
                     batcher.pad_from or "never")
        await stop_wait
        LOG.info("stopping: finishing the requests in flight")
        await server.close(STOP_GRACE_S)
    finally:
        if batcher is not None:
            batcher.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    LOG.info("stopped")
    return 0


def _load_into(loading: asyncio.Future[tuple[LoadedModel, MicroBatcher]], wakeups: _Wakeups,
               args: argparse.Namespace, scratch: Path, clients: Callable[[], int]) -> None:
    try:
        prepared = prepare(args, scratch, clients)
    except Exception as exc:  # noqa: BLE001 - reported by serve()
        wakeups.settle(loading, error=exc)
    else:
        wakeups.settle(loading, prepared)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(levelname)s %(message)s")
    keep_freed_memory()
    torch.set_num_threads(args.torch_threads or default_torch_threads())
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
