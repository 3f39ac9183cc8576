"""Latency and throughput of the local endpoint server against the raw model forward, in one run.

Run with the job environment's interpreter::

    .venv-job/bin/python benchmarks/bench_endpoint.py [--model-tar model.tar.gz --data-dir DEMO]

Without ``--model-tar`` it renders the digits demo (app environment, ``python -m
core.datasets.demo``) and trains EfficientNet-Lite0 at 64 px for one epoch with
``entrypoints/train.py``. Requests are the demo's test JPEGs, sent as ``image/jpeg`` bodies.

Measured on this machine in ``--slices`` interleaved slices, so that every setting sees the
same background load (other processes come and go on a shared machine); each row sums its
slices:

- raw forward: ``inference.forward`` on one preprocessed image (latency), and back-to-back
  on batches of ``--max-batch-size`` and 64 (images/s), in this process, with the server's
  torch thread count and allocator settings (``serve.keep_freed_memory``);
- the handler in process: ``input_fn`` + ``predict_fn`` + ``output_fn`` on one JPEG;
- the server (``entrypoints/serve.py`` on 127.0.0.1; keep-alive HTTP clients in threads of
  this process): latency and images/s at concurrency 1 (one request after another), 4 and 16.

Then ``--mixed`` requests at concurrency 8 mixing valid ones (JPEG, PNG, JSON batches, the
Runtime path) with malformed ones (wrong type, corrupt, empty, bad JSON, bad base64, over
6 MB, unknown endpoint or route): every answer's status is checked, the server must still
answer /ping, and its RSS is read before, half-way and after.

The clients share the machine's cores with the server, as they would on one host. The
server's log (one line per request, with its batch size) is kept as
``$TMPDIR/bench-endpoint-server.log``.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import itertools
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parent.parent
ENTRYPOINTS_DIR = REPO_ROOT / "entrypoints"
APP_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
sys.path.insert(0, str(ENTRYPOINTS_DIR))

from inference import (  # noqa: E402
    ImageBatch,
    LoadedModel,
    forward,
    input_fn,
    model_fn,
    output_fn,
    predict_fn,
    preprocess,
)
from serve import default_torch_threads, keep_freed_memory  # noqa: E402

SIX_MB = 6 * 1024 * 1024


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-tar", type=Path, default=None, help="model.tar.gz (default: train the demo)")
    parser.add_argument("--data-dir", type=Path, default=None, help="ImageFolder whose test/ images are sent")
    parser.add_argument("--slices", type=int, default=5, help="interleaved measurement slices")
    parser.add_argument("--slice-requests", type=int, default=60, help="single-image requests per slice")
    parser.add_argument("--slice-s", type=float, default=2.0, help="seconds per throughput setting and slice")
    parser.add_argument("--mixed", type=int, default=2000, help="mixed valid and malformed requests")
    parser.add_argument("--max-batch-size", type=int, default=16, help="server micro-batch size")
    parser.add_argument("--max-wait-ms", type=float, default=10.0, help="server micro-batch wait")
    parser.add_argument("--workers", type=int, default=32, help="server connections")
    parser.add_argument("--torch-threads", type=int, default=0, help="torch threads (0: the server's default)")
    return parser


# --- the model and the request images ---------------------------------------------------------


def render_demo(out_dir: Path) -> Path:
    """The digits demo ImageFolder, rendered with the app environment."""
    result = subprocess.run([str(APP_PYTHON), "-m", "core.datasets.demo", str(out_dir)], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise SystemExit(f"error: the demo could not be rendered: {result.stderr.strip()[-500:]}")
    return out_dir


def train_demo_model(data_dir: Path, scratch: Path) -> Path:
    """One epoch of EfficientNet-Lite0 at 64 px on the demo; returns its model.tar.gz."""
    print("training EfficientNet-Lite0 (64 px, 1 epoch) on the demo ...", flush=True)
    command = [sys.executable, str(ENTRYPOINTS_DIR / "train.py"), "--data-dir", str(data_dir),
               "--model-dir", str(scratch / "model"), "--output-data-dir", str(scratch / "output"),
               "--checkpoint-dir", str(scratch / "checkpoints"), "--epochs", "1", "--image-size", "64"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise SystemExit(f"error: train.py failed: {(result.stdout + result.stderr)[-2000:]}")
    print("\n".join(line for line in result.stdout.splitlines() if line.startswith(("epoch=", "test_"))), flush=True)
    archive = scratch / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(scratch / "model" / "model.pth", arcname="model.pth")
    return archive


def test_images(data_dir: Path) -> list[tuple[bytes, str]]:
    """(JPEG bytes, label) of every image under test/ (valid/ when there is no test/)."""
    split = data_dir / "test" if (data_dir / "test").is_dir() else data_dir / "valid"
    images = [(path.read_bytes(), path.parent.name) for path in sorted(split.glob("*/*")) if path.is_file()]
    if not images:
        raise SystemExit(f"error: no images under {split}")
    return images


# --- raw forward and the in-process handler ---------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def timed(calls: int, call: Callable[[int], None]) -> Load:
    """Latency of each of ``calls`` calls of ``call(i)``, one image each."""
    load = Load()
    for i in range(calls):
        start = time.perf_counter()
        call(i)
        load.latencies_ms.append((time.perf_counter() - start) * 1000)
    load.images, load.seconds = calls, sum(load.latencies_ms) / 1000
    return load


def raw_single(model: LoadedModel, tensors: list[torch.Tensor], calls: int, offset: int) -> Load:
    """``inference.forward`` on one preprocessed image at a time."""
    return timed(calls, lambda i: forward(tensors[(offset + i) % len(tensors)].unsqueeze(0), model))


def handler_single(model: LoadedModel, images: list[tuple[bytes, str]], calls: int, offset: int) -> Load:
    """``input_fn`` + ``predict_fn`` + ``output_fn`` on one JPEG body at a time, in this process."""
    return timed(calls, lambda i: output_fn(
        predict_fn(input_fn(images[(offset + i) % len(images)][0], "image/jpeg"), model), "application/json"))


def raw_batched(model: LoadedModel, tensors: list[torch.Tensor], batch_size: int, seconds: float) -> Load:
    """Back-to-back forwards of ``batch_size`` images for about ``seconds``."""
    batch = torch.stack([tensors[i % len(tensors)] for i in range(batch_size)])
    load, start = Load(), time.perf_counter()
    while time.perf_counter() - start < seconds:
        forward(batch, model)
        load.images += batch_size
    load.seconds = time.perf_counter() - start
    return load


# --- the server and its clients ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(args: argparse.Namespace, model_tar: Path, scratch: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    log = open(scratch / "server.log", "ab")
    command = [sys.executable, str(ENTRYPOINTS_DIR / "serve.py"), "--model", str(model_tar), "--name", "bench",
               "--port", str(port), "--max-batch-size", str(args.max_batch_size), "--max-wait-ms",
               str(args.max_wait_ms), "--workers", str(args.workers), "--torch-threads", str(args.torch_threads),
               "--scratch-dir", str(scratch)]
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"error: the server exited: {(scratch / 'server.log').read_text()[-2000:]}")
        if ping(port):
            return server, port
        time.sleep(0.1)
    server.kill()
    raise SystemExit("error: the server did not become healthy in 300 s")


def ping(port: int) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("GET", "/ping")
        ok = connection.getresponse().status == 200
        connection.close()
        return ok
    except OSError:
        return False


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Load:
    """What one setting saw: per-request (or per-forward) latencies, images and seconds."""

    latencies_ms: list[float] = field(default_factory=list)
    images: int = 0
    seconds: float = 0.0
    correct: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0

    def add(self, other: Load) -> None:
        self.latencies_ms += other.latencies_ms
        self.images += other.images
        self.seconds += other.seconds
        self.correct += other.correct
        self.failures += other.failures


def run_clients(port: int, images: list[tuple[bytes, str]], concurrency: int, *, count: int | None = None,
                duration_s: float | None = None) -> Load:
    """``concurrency`` keep-alive clients posting JPEGs until ``count`` requests or ``duration_s``."""
    load, lock = Load(), threading.Lock()
    counter = itertools.count()
    start_gate = threading.Barrier(concurrency + 1)
    stop_at: list[float] = []

    def client(seed: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        rng = random.Random(seed)
        start_gate.wait()
        while True:
            index = next(counter)
            if (count is not None and index >= count) or (stop_at and time.perf_counter() >= stop_at[0]):
                break
            body, label = images[rng.randrange(len(images))]
            began = time.perf_counter()
            try:
                connection.request("POST", "/invocations", body, {"Content-Type": "image/jpeg"})
                response = connection.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException) as exc:
                connection.close()
                with lock:
                    load.failures.append(f"{type(exc).__name__}: {exc}")
                continue
            elapsed = (time.perf_counter() - began) * 1000
            with lock:
                if response.status != 200:
                    load.failures.append(f"{response.status}: {payload[:200]!r}")
                    continue
                load.latencies_ms.append(elapsed)
                load.images += 1
                top = json.loads(payload)["predictions"][0]["top_k"][0]["label"]
                load.correct += top == label
        connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    start_gate.wait()
    began = time.perf_counter()
    if duration_s is not None:
        stop_at.append(began + duration_s)
    for thread in threads:
        thread.join()
    load.seconds = time.perf_counter() - began
    return load


# --- mixed valid and malformed traffic ---------------------------------------------------------


MixedRequest = tuple[str, str, bytes, dict[str, str], int]
"""kind, path, body, headers, expected status."""


def mixed_requests(images: list[tuple[bytes, str]], count: int, seed: int = 7) -> list[MixedRequest]:
    """(kind, path, body, headers, expected status) for ``count`` requests, about 1 in 4 malformed."""
    rng = random.Random(seed)
    jpeg = images[0][0]
    png = io.BytesIO()
    Image.open(io.BytesIO(jpeg)).save(png, format="PNG")
    corrupt = bytearray(jpeg)
    corrupt[len(corrupt) // 3:] = bytes(len(corrupt) - len(corrupt) // 3)
    kinds: list[tuple[str, float, Callable[[], tuple[str, bytes, dict[str, str], int]]]] = [
        ("jpeg", 45, lambda: ("/invocations", rng.choice(images)[0], {"Content-Type": "image/jpeg"}, 200)),
        ("png", 10, lambda: ("/invocations", png.getvalue(), {"Content-Type": "image/png"}, 200)),
        ("json-batch", 10, lambda: ("/invocations", json.dumps(
            {"instances": [{"b64": base64.b64encode(rng.choice(images)[0]).decode()} for _ in range(4)]}).encode(),
            {"Content-Type": "application/json"}, 200)),
        ("runtime-path", 10, lambda: ("/endpoints/bench/invocations", rng.choice(images)[0],
                                      {"Content-Type": "image/jpeg"}, 200)),
        ("wrong-type", 4, lambda: ("/invocations", jpeg, {"Content-Type": "text/plain"}, 415)),
        ("corrupt", 4, lambda: ("/invocations", bytes(corrupt), {"Content-Type": "image/jpeg"}, 400)),
        ("empty", 3, lambda: ("/invocations", b"", {"Content-Type": "image/jpeg"}, 400)),
        ("bad-json", 3, lambda: ("/invocations", b'{"image": ', {"Content-Type": "application/json"}, 400)),
        ("bad-base64", 3, lambda: ("/invocations", b'{"image": "%%%"}', {"Content-Type": "application/json"}, 400)),
        ("over-6MB", 2, lambda: ("/invocations", b"\xff" * (SIX_MB + 1), {"Content-Type": "image/jpeg"}, 413)),
        ("runtime-model-error", 2,
         lambda: ("/endpoints/bench/invocations", b"nope", {"Content-Type": "image/jpeg"}, 424)),
        ("unknown-endpoint", 2, lambda: ("/endpoints/other/invocations", jpeg, {"Content-Type": "image/jpeg"}, 400)),
        ("unknown-route", 2, lambda: ("/predict", jpeg, {"Content-Type": "image/jpeg"}, 404)),
    ]
    names = [k[0] for k in kinds]
    weights = [k[1] for k in kinds]
    makers = {k[0]: k[2] for k in kinds}
    requests = []
    for _ in range(count):
        kind = rng.choices(names, weights)[0]
        path, body, headers, status = makers[kind]()
        requests.append((kind, path, body, headers, status))
    return requests


def run_mixed(port: int, pid: int, requests: list[MixedRequest],
              concurrency: int = 8) -> dict[str, object]:
    """Sends the requests; counts wrong statuses by kind; RSS at the start, half-way and the end."""
    wrong: dict[str, int] = {}
    sent: dict[str, int] = {}
    lock = threading.Lock()
    queue = iter(enumerate(requests))
    rss = {"before": rss_mb(pid)}
    half = len(requests) // 2

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                item = next(queue, None)
            if item is None:
                break
            index, (kind, path, body, headers, expected) = item
            if index == half:
                rss["half-way"] = rss_mb(pid)
            try:
                connection.request("POST", path, body, headers)
                response = connection.getresponse()
                response.read()
                status = response.status
                if response.getheader("Connection", "").lower() == "close":
                    connection.close()
            except (OSError, http.client.HTTPException) as exc:
                status = -1
                connection.close()
                print(f"  {kind}: {type(exc).__name__}: {exc}", flush=True)
            with lock:
                sent[kind] = sent.get(kind, 0) + 1
                if status != expected:
                    wrong[kind] = wrong.get(kind, 0) + 1
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rss["after"] = rss_mb(pid)
    valid = {"jpeg", "png", "json-batch", "runtime-path"}
    return {"sent": sent, "wrong": wrong, "valid_failed": sum(wrong.get(k, 0) for k in valid),
            "valid_sent": sum(sent.get(k, 0) for k in valid), "rss_mb": rss, "alive": ping(port)}


# --- main ---------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.torch_threads = args.torch_threads or default_torch_threads()
    torch.set_num_threads(args.torch_threads)
    kept = keep_freed_memory()  # the server's allocator settings: the raw forward gets them too
    with tempfile.TemporaryDirectory(prefix="bench-endpoint-") as tmp:
        scratch = Path(tmp)
        data_dir = args.data_dir or render_demo(scratch / "demo")
        model_tar = args.model_tar or train_demo_model(data_dir, scratch)
        model_dir = scratch / "model-unpacked"
        with tarfile.open(model_tar) as tar:
            tar.extractall(model_dir, filter="data")
        model = model_fn(model_dir)
        images = test_images(data_dir)
        tensors = [preprocess(ImageBatch([Image.open(io.BytesIO(body)).convert("RGB")]), model)[0]
                   for body, _ in images]
        print(f"model={model_tar} classes={len(model.class_names)} image_size={model.image_size} "
              f"test_images={len(images)} cpus={os.cpu_count()} torch_threads={args.torch_threads} "
              f"freed_memory_kept={kept} max_batch_size={args.max_batch_size} max_wait_ms={args.max_wait_ms} "
              f"workers={args.workers}",
              flush=True)
        loads: dict[str, Load] = {}
        server, port = start_server(args, model_tar, scratch)
        try:
            run_clients(port, images, 4, count=50)  # warm the server up
            for number in range(args.slices):
                offset = number * args.slice_requests
                slice_loads = {
                    "raw forward, 1 image": raw_single(model, tensors, args.slice_requests, offset),
                    "handler in process, 1 JPEG": handler_single(model, images, args.slice_requests, offset),
                    "server, concurrency 1": run_clients(port, images, 1, count=args.slice_requests),
                }
                for size in sorted({args.max_batch_size, 64}):
                    slice_loads[f"raw forward, batch {size}"] = raw_batched(model, tensors, size, args.slice_s)
                for concurrency in (4, 16):
                    slice_loads[f"server, concurrency {concurrency}"] = run_clients(
                        port, images, concurrency, duration_s=args.slice_s)
                for name, load in slice_loads.items():
                    if load.failures:
                        raise SystemExit(f"error: valid requests failed ({name}): {load.failures[:5]}")
                    loads.setdefault(name, Load()).add(load)
                print(f"slice {number + 1}/{args.slices}: " + ", ".join(
                    f"{name.replace('server, concurrency ', 'c=')} {load.rate:.0f}/s"
                    for name, load in slice_loads.items()), flush=True)
            print(f"mixed traffic: {args.mixed} requests at concurrency 8 ...", flush=True)
            mixed = run_mixed(port, server.pid, mixed_requests(images, args.mixed))
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                code = server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
                code = server.wait()
            shutil.copy(scratch / "server.log", Path(tempfile.gettempdir()) / "bench-endpoint-server.log")

    print(f"\n{'setting':<32}{'p50 ms':>8}{'p99 ms':>8}{'images/s':>10}{'top-1':>7}")
    for name, load in loads.items():
        latency = (f"{percentile(load.latencies_ms, 50):>8.1f}{percentile(load.latencies_ms, 99):>8.1f}"
                   if load.latencies_ms else f"{'':>16}")
        accuracy = f"{load.correct / load.images:>7.3f}" if name.startswith("server") else ""
        print(f"{name:<32}{latency}{load.rate:>10.1f}{accuracy}")
    raw_p50 = percentile(loads["raw forward, 1 image"].latencies_ms, 50)
    p50_c1 = percentile(loads["server, concurrency 1"].latencies_ms, 50)
    batched = loads[f"raw forward, batch {args.max_batch_size}"].rate
    c16 = loads["server, concurrency 16"].rate
    print(f"\ntarget p50 at c=1 <= raw forward + 10 ms: {p50_c1:.1f} <= {raw_p50:.1f} + 10 ms: "
          f"{'met' if p50_c1 <= raw_p50 + 10 else 'NOT met'}")
    print(f"target c=16 >= 80% of raw batch-{args.max_batch_size} forward: {c16:.1f} / {batched:.1f} images/s "
          f"= {c16 / batched:.0%}: {'met' if c16 >= 0.8 * batched else 'NOT met'}")
    print(f"\nmixed: sent {mixed['sent']}")
    print(f"mixed: wrong statuses by kind {mixed['wrong'] or 'none'}; valid requests failed: "
          f"{mixed['valid_failed']} of {mixed['valid_sent']}; server answered /ping after: {mixed['alive']}")
    rss = mixed["rss_mb"]
    assert isinstance(rss, dict)
    print("mixed: server RSS " + ", ".join(f"{k} {v:.0f} MB" for k, v in rss.items()))
    print(f"server exit code after SIGTERM: {code}")
    return 0 if not mixed["wrong"] and mixed["alive"] else 1


if __name__ == "__main__":
    sys.exit(main())
