"""The endpoint server's connections and routes: ``/ping``, ``/invocations`` and the Runtime path.

Requests are read and answered on one asyncio event loop (``http1.py`` on the wire); bodies
decode in a few threads beside it and go to the batcher (``batching.py``); errors take the
shapes SageMaker's clients expect (``runtime_errors.py``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from batching import PREDICT_TIMEOUT_S, Job, MicroBatcher
from http1 import IDLE_TIMEOUT_S, MAX_HEAD_BYTES, Answer, Request, RequestBody, encode_answer, parse_head
from inference import MAX_BODY_BYTES, ImageBatch, InferenceError, LoadedModel, Prediction, input_fn, output_fn, pixels
from loop_wakeups import Wakeups
from runtime_errors import error_answer, runtime_answer, runtime_error

if TYPE_CHECKING:
    import torch

LOG = logging.getLogger("serve")
RUNTIME_PATH = re.compile(r"^/endpoints/([^/]+)/invocations$")
LOCAL_ACCOUNT_ID = "000000000000"
"""The account local endpoints belong to (their ARNs need one)."""


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
        self._wakeups = Wakeups(asyncio.get_running_loop())

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
            except Exception:
                LOG.exception("%s %s failed", request.method, request.path)
                answer, readable = error_answer(500, "the server failed on this request"), False
            await self._send(writer, request, answer, started, close=not (readable and request.keep_alive))
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()
        return readable and request.keep_alive

    async def _answer(self, request: Request, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> tuple[Answer, bool]:
        """The answer, and whether the connection can carry another request (its body was read)."""
        body = RequestBody(request, reader, writer)
        runtime = RUNTIME_PATH.match(request.path)
        if request.method == "GET" and request.path == "/ping":
            answer = Answer(200, b"{}") if self.ready else error_answer(503, "the model is still loading")
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

    async def _runtime_invocation(self, name: str, request: Request, body: RequestBody) -> Answer:
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

    def _authorize(self, name: str, request: Request) -> Answer | None:
        """The AccessDenied answer when a local role's policy does not allow the invocation."""
        if self.iam_dir is None:
            return None
        from local_iam import authorize_invoke  # only local endpoints have roles (not the serving image)

        refusal = authorize_invoke(self.iam_dir, self.account, request.headers.get("authorization"), name)
        if refusal is None:
            return None
        LOG.warning("refused %s: %s", name, refusal.code)
        return runtime_error(refusal.status, refusal.code, refusal.message)

    async def _invocation(self, request: Request, body: RequestBody) -> Answer:
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
        done: asyncio.Future[Answer] = loop.create_future()
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
                          done: asyncio.Future[Answer]) -> None:
        """On a decode thread: decodes the body and queues its pixels for the batcher. The
        batcher's thread then writes the answer (or the error) into ``done``: it would
        otherwise sit idle while the event loop answers the batch's requests one by one."""

        def answer(job: Job) -> None:
            try:
                payload, content_type = output_fn(Prediction(job.outcome(), model.class_names, batch.top_k),
                                                  headers.get("accept"))
            except BaseException as exc:
                self._wakeups.settle(done, error=exc)
            else:
                self._wakeups.settle(done, Answer(200, payload, content_type, batch_size=job.batch_size))

        try:
            with batcher.arrival() as submit:
                batch, inputs = decode(data, headers.get("content-type"), model)
                submit(inputs, answer)
        except BaseException as exc:
            self._wakeups.settle(done, error=exc)

    async def _send(self, writer: asyncio.StreamWriter, request: Request | None, answer: Answer, started: float,
                    *, close: bool) -> None:
        latency_ms = (time.perf_counter() - started) * 1000
        writer.write(encode_answer(answer, latency_ms, close=close))
        await writer.drain()
        if request is None or (request.method == "GET" and answer.status in (200, 503)):
            return  # health checks come every few seconds: not worth a line each
        LOG.info("%s %s %d in=%dB out=%dB %.1fms batch=%d", request.method, request.path, answer.status,
                 max(request.body_length or 0, 0), len(answer.body), latency_ms, answer.batch_size)


def decode(body: bytes, content_type: str | None, model: LoadedModel) -> tuple[ImageBatch, torch.Tensor]:
    """``input_fn`` and the per-image half of the preprocessing: the request's images and their
    resized uint8 pixels (the batcher normalises whole batches)."""
    batch = input_fn(body, content_type)
    return batch, pixels(batch, model)


def _expire(done: asyncio.Future[Answer]) -> None:
    if not done.done():
        done.set_exception(TimeoutError(f"no prediction within {PREDICT_TIMEOUT_S:.0f} s"))
