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

Requests are micro-batched: each request's thread decodes and preprocesses its images, and
one batcher thread runs a single forward pass over up to ``--max-batch-size`` images. A
forming batch waits up to ``--max-wait-ms`` for more, but only while requests are already
being decoded or while other client connections are open (each may send one), so a lone
client never waits. A partial batch that costs more than a full one (timed at start-up) runs
padded with blank images (``--pad-batches``). ``--torch-threads`` defaults to half the CPUs:
the other half decodes. ``X-Inference-Latency-Ms`` carries the time spent in the server. One
log line per request (never a body; health checks unlogged). SIGTERM stops accepting
connections, lets requests in flight finish (up to 10 s) and exits 0. Exit code 1: the model did not
load (last line ``ERROR: ...``); 2: the port is taken.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import re
import shutil
import signal
import socket
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Callable, Iterator, Sequence

import torch
from inference import (
    MAX_BODY_BYTES,
    InferenceError,
    LoadedModel,
    Prediction,
    forward,
    input_fn,
    model_fn,
    output_fn,
    preprocess,
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
Forward = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class _Job:
    """One request's preprocessed images, waiting for its rows of a batched forward pass."""

    inputs: torch.Tensor
    done: threading.Event = field(default_factory=threading.Event)
    probabilities: torch.Tensor | None = None
    error: BaseException | None = None
    batch_size: int = 0

    def result(self, timeout: float) -> torch.Tensor:
        if not self.done.wait(timeout):
            raise TimeoutError(f"no prediction within {timeout:.0f} s")
        if self.error is not None:
            raise self.error
        assert self.probabilities is not None
        return self.probabilities


class MicroBatcher:
    """One thread running the model over the inputs of several requests at once.

    A forming batch waits (up to ``max_wait_s``) while requests are announced but not yet
    queued, and while it holds fewer requests than there are open client connections: each
    of those may be about to send one. A single client never waits.

    Args:
        forward_fn: preprocessed ``N x 3 x S x S`` inputs to ``N x C`` probabilities.
        max_batch_size: most images per forward pass (a larger single request runs alone).
        max_wait_s: longest a batch waits for more requests.
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
    def arrival(self) -> Iterator[Callable[[torch.Tensor], _Job]]:
        """Announces a request being decoded; yields the function that queues its inputs.

        While announced requests exist, a forming batch waits for them (up to max_wait_s).
        """
        submitted = False

        def submit(inputs: torch.Tensor) -> _Job:
            nonlocal submitted
            job = _Job(inputs)
            with self._cond:
                self._arriving -= 1
                submitted = True
                self._queue.append(job)
                if len(self._queue) == 1 or not self._should_wait():
                    self._cond.notify_all()  # waking the batcher for every request would cost it CPU
            return job

        with self._cond:
            self._arriving += 1
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
                deadline = time.monotonic() + self.max_wait_s
                while self._should_wait():
                    remaining = deadline - time.monotonic()
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
                job.done.set()
            return
        start = 0
        for job in jobs:
            job.probabilities = probabilities[start:start + len(job.inputs)]
            job.batch_size = size
            start += len(job.inputs)
            job.done.set()


class ModelServer(ThreadingHTTPServer):
    """HTTP server with at most ``workers`` connections served at once (one thread each)."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 128  # listen backlog: bursts of new connections wait instead of failing

    def __init__(self, address: tuple[str, int], *, endpoint_name: str, workers: int, decode_slots: int,
                 iam_dir: Path | None = None, account: str = LOCAL_ACCOUNT_ID) -> None:
        super().__init__(address, InvocationHandler)
        self.endpoint_name = endpoint_name
        self.iam_dir = iam_dir
        self.account = account
        self.ready = threading.Event()
        self.model: LoadedModel | None = None
        self.batcher: MicroBatcher | None = None
        self._workers = threading.BoundedSemaphore(workers)
        self.decode_slots = threading.BoundedSemaphore(decode_slots)
        self._connections = 0
        self._connections_lock = threading.Lock()
        self._in_flight = 0
        self._in_flight_lock = threading.Condition()

    def start_serving(self, model: LoadedModel, batcher: MicroBatcher) -> None:
        self.model, self.batcher = model, batcher
        self.ready.set()

    def open_connections(self) -> int:
        """Client connections being served now (each may send a request at any moment)."""
        return self._connections

    def process_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        self._workers.acquire()
        self._count_connection(+1)  # counted from accept: a burst of new clients may send before their threads run
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._count_connection(-1)
            self._workers.release()
            raise

    def process_request_thread(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._count_connection(-1)
            self._workers.release()

    def _count_connection(self, change: int) -> None:
        with self._connections_lock:
            self._connections += change

    def handle_error(self, request: object, client_address: object) -> None:
        LOG.warning("connection from %s ended with %s", client_address, sys.exc_info()[1])

    @contextmanager
    def counting_request(self) -> Iterator[None]:
        with self._in_flight_lock:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._in_flight_lock:
                self._in_flight -= 1
                self._in_flight_lock.notify_all()

    def drain(self, timeout: float) -> None:
        """Waits until no request is being processed (idle keep-alive connections do not count)."""
        with self._in_flight_lock:
            self._in_flight_lock.wait_for(lambda: self._in_flight == 0, timeout)


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


class InvocationHandler(BaseHTTPRequestHandler):
    """GET /ping, POST /invocations and POST /endpoints/{name}/invocations."""

    protocol_version = "HTTP/1.1"
    server_version = "sm-console-serve/1"
    timeout = IDLE_TIMEOUT_S
    disable_nagle_algorithm = True  # headers and body leave at once (no 40 ms delayed-ACK stall)
    server: ModelServer

    def do_GET(self) -> None:
        started = time.perf_counter()
        if self.path.split("?", 1)[0] != "/ping":
            answer = error_answer(404, f"no route GET {self.path}: use GET /ping")
        elif self.server.ready.is_set():
            answer = _Answer(200, b"{}")
        else:
            answer = error_answer(503, "the model is still loading")
        self._send(answer, started, received=0)

    def do_POST(self) -> None:
        started = time.perf_counter()
        with self.server.counting_request():
            path = self.path.split("?", 1)[0]
            runtime = RUNTIME_PATH.match(path)
            body_length = self._content_length()
            if path != "/invocations" and not runtime:
                self._discard_body(body_length)
                answer = error_answer(404, f"no route POST {path}: use /invocations or /endpoints/NAME/invocations")
            elif runtime:
                answer = self._runtime_invocation(runtime.group(1), body_length)
            else:
                answer = self._invocation(body_length)
            self._send(answer, started, received=max(body_length or 0, 0))

    def _content_length(self) -> int | None:
        """The declared body length; None when there is none or it is not a number."""
        try:
            return int(self.headers.get("Content-Length", ""))
        except ValueError:
            return None

    def _runtime_invocation(self, name: str, body_length: int | None) -> _Answer:
        refusal = self._authorize(name)
        if refusal is not None:  # AWS authorises before it looks for the endpoint
            self._discard_body(body_length)
            return refusal
        if name != self.server.endpoint_name:
            self._discard_body(body_length)
            return runtime_error(400, "ValidationError", f"Endpoint {name} of account local not found.")
        if body_length is not None and body_length > MAX_BODY_BYTES:
            self._discard_body(body_length)
            return runtime_error(413, None, f"HTTP content length exceeded {MAX_BODY_BYTES} bytes.")
        if not self.server.ready.is_set():
            self._discard_body(body_length)
            return runtime_error(503, "ServiceUnavailable", f"Endpoint {name} is still loading its model.")
        return runtime_answer(self._invocation(body_length))

    def _authorize(self, name: str) -> _Answer | None:
        """The AccessDenied answer when a local role's policy does not allow the invocation."""
        if self.server.iam_dir is None:
            return None
        from local_iam import authorize_invoke  # only local endpoints have roles (not the serving image)

        refusal = authorize_invoke(self.server.iam_dir, self.server.account, self.headers.get("Authorization"), name)
        if refusal is None:
            return None
        LOG.warning("refused %s: %s", name, refusal.code)
        return runtime_error(refusal.status, refusal.code, refusal.message)

    def _read_body(self, body_length: int | None) -> bytes | _Answer:
        if self.headers.get("Transfer-Encoding") or body_length is None or body_length < 0:
            self.close_connection = True
            return error_answer(411, "send the body with a Content-Length header (no chunked encoding)")
        if body_length > MAX_BODY_BYTES:
            self._discard_body(body_length)
            return error_answer(
                413, f"the request body is {body_length:,} bytes; the limit is {MAX_BODY_BYTES:,} (6 MB)")
        return self.rfile.read(body_length)

    def _discard_body(self, body_length: int | None) -> None:
        """Reads a refused body away in chunks, so the client gets the answer rather than a
        reset connection; with no length, or past DRAIN_LIMIT_BYTES, the connection closes."""
        if body_length is None or body_length > DRAIN_LIMIT_BYTES or self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            return
        while body_length > 0:
            chunk = self.rfile.read(min(body_length, 1 << 16))
            if not chunk:
                break
            body_length -= len(chunk)

    def _invocation(self, body_length: int | None) -> _Answer:
        body = self._read_body(body_length)
        if isinstance(body, _Answer):
            return body
        model, batcher = self.server.model, self.server.batcher
        if model is None or batcher is None or not self.server.ready.is_set():
            return error_answer(503, "the model is still loading")
        try:
            with batcher.arrival() as submit, self.server.decode_slots:
                batch = input_fn(body, self.headers.get("Content-Type"))
                job = submit(preprocess(batch, model))
            probabilities = job.result(PREDICT_TIMEOUT_S)
            payload, content_type = output_fn(
                Prediction(probabilities, model.class_names, batch.top_k), self.headers.get("Accept")
            )
        except InferenceError as exc:
            return error_answer(exc.status_code, exc.message)
        except Exception as exc:  # the handler failed: 500, which Runtime reports as ModelError
            LOG.exception("invocation failed")
            return error_answer(500, f"the model failed on this request: {type(exc).__name__}: {exc}")
        return _Answer(200, payload, content_type, batch_size=job.batch_size)

    def _send(self, answer: _Answer, started: float, *, received: int) -> None:
        latency_ms = (time.perf_counter() - started) * 1000
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        self.send_header("X-Inference-Latency-Ms", f"{latency_ms:.2f}")
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(answer.body)
        if self.command == "GET" and answer.status in (200, 503):
            return  # health checks come every few seconds: not worth a line each
        LOG.info("%s %s %d in=%dB out=%dB %.1fms batch=%d", self.command, self.path.split("?", 1)[0],
                 answer.status, received, len(answer.body), latency_ms, answer.batch_size)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Silenced: ``_send`` logs one line per request."""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
        LOG.warning("%s: %s", self.address_string(), format % args)


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
            job = submit(torch.zeros(size, 3, model.image_size, model.image_size))
        job.result(PREDICT_TIMEOUT_S)


def forward_cpu_ms(forward_fn: Forward, size: int, image_size: int, repeats: int = 2) -> float:
    """CPU time of a forward pass of ``size`` blank images, the least of ``repeats`` (the first
    pays for warming up): unlike wall time, it leaves out what other processes take."""
    inputs = torch.zeros(size, 3, image_size, image_size)
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
    about 1.8 times longer for 15 images than for 16. Such batches are better run padded.
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
                        help="longest a batch waits for requests being decoded or from other open connections")
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
    """Half the CPUs for the forward pass: request threads need the rest to decode and answer."""
    return max(1, (os.cpu_count() or 1) // 2)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(levelname)s %(message)s")
    signal.signal(signal.SIGTERM, _terminate)
    cpus = os.cpu_count() or 1
    torch.set_num_threads(args.torch_threads or default_torch_threads())
    try:
        server = ModelServer((args.host, args.port), endpoint_name=args.name, workers=args.workers,
                             decode_slots=max(2, cpus), iam_dir=args.iam_dir, account=args.account)
    except OSError as exc:
        LOG.error("ERROR: cannot listen on %s:%d: %s", args.host, args.port, exc.strerror or exc)
        return 2
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    scratch = Path(tempfile.mkdtemp(prefix="model-", dir=args.scratch_dir))
    batcher: MicroBatcher | None = None
    try:
        LOG.info("endpoint %s listening on http://%s:%d; loading %s", args.name, args.host, args.port, args.model)
        try:
            started = time.perf_counter()
            model = load_model(args.model, scratch)
            forward_fn: Forward = functools.partial(forward, model=model)
            pad_from = None
            if args.pad_batches == "auto":
                pad_from = padding_start(lambda size: forward_cpu_ms(forward_fn, size, model.image_size),
                                         args.max_batch_size)
            batcher = MicroBatcher(forward_fn, max_batch_size=args.max_batch_size, max_wait_s=args.max_wait_ms / 1000,
                                   clients=server.open_connections, pad_from=pad_from)
            batcher.start()
            warm_up(model, batcher)
        except Exception as exc:
            LOG.error("ERROR: cannot load the model: %s: %s", type(exc).__name__, exc)
            return 1
        server.start_serving(model, batcher)
        LOG.info("ready in %.1f s: %d classes, image size %d, max_batch_size=%d max_wait_ms=%g workers=%d "
                 "torch_threads=%d pad_from=%s", time.perf_counter() - started, len(model.class_names),
                 model.image_size, args.max_batch_size, args.max_wait_ms, args.workers, torch.get_num_threads(),
                 pad_from or "never")
        threading.Event().wait()
    except (SystemExit, KeyboardInterrupt):
        LOG.info("stopping: finishing the requests in flight")
    finally:
        server.shutdown()
        server.server_close()
        server.drain(STOP_GRACE_S)
        if batcher is not None:
            batcher.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    LOG.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
