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

This module is the command line and the process's life (listen, load, serve, stop). The rest
lives beside it: ``model_server.py`` (connections and routes), ``http1.py`` (HTTP/1.1 on the
wire), ``batching.py`` (the micro-batcher and padding), ``runtime_errors.py`` (the error
shapes of the container contract and of SageMaker Runtime), ``model_loading.py`` (unpacking
the model, readying the batcher) and ``loop_wakeups.py`` (answers handed to the event loop).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from batching import MAX_WAIT_SPREAD, MicroBatcher
from inference import LoadedModel
from loop_wakeups import Wakeups
from model_loading import prepare
from model_server import LOCAL_ACCOUNT_ID, ModelServer

LOG = logging.getLogger("serve")
LOCAL_HOST = "127.0.0.1"
STOP_GRACE_S = 10.0
DECODE_THREADS = 2
"""Threads decoding request bodies: one decodes while the other waits on a big image."""
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
"""glibc's mallopt parameters (malloc.h)."""


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
        threading.Thread(target=_load_into, args=(loading, Wakeups(loop), args, scratch, server.open_connections),
                         name="load", daemon=True).start()
        stop_wait = asyncio.ensure_future(stopping.wait())
        loaded_or_stopped: set[asyncio.Future[Any]] = {loading, stop_wait}
        await asyncio.wait(loaded_or_stopped, return_when=asyncio.FIRST_COMPLETED)
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


def _load_into(loading: asyncio.Future[tuple[LoadedModel, MicroBatcher]], wakeups: Wakeups,
               args: argparse.Namespace, scratch: Path, clients: Callable[[], int]) -> None:
    try:
        prepared = prepare(args.model, scratch, max_batch_size=args.max_batch_size,
                           max_wait_s=args.max_wait_ms / 1000, pad_batches=args.pad_batches == "auto",
                           clients=clients)
    except Exception as exc:
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
