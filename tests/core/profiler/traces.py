"""Chrome traces shaped as torch.profiler (Kineto) writes them, for the timeline's tests: the header
with ``baseTimeNanoseconds``, thread names, CPU operators, CUDA runtime launches, kernels on a
stream, host-to-device copies, and the ``phase:*`` ranges ``entrypoints/profiling.py`` records."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

BASE_NS = 1_790_000_000_000_000_000
PID, TID, GPU, STREAM = 4242, 4242, 0, 7
STEP_US = 10_000.0
PHASES = (("dataloader", 0.0, 2_000.0), ("forward", 2_000.0, 5_000.0), ("backward", 5_000.0, 9_000.0),
          ("optimizer", 9_000.0, 10_000.0))


def _x(cat: str, name: str, ts: float, dur: float, pid: int = PID, tid: int = TID, **args: Any) -> dict[str, Any]:
    return {"ph": "X", "cat": cat, "name": name, "pid": pid, "tid": tid, "ts": ts, "dur": dur, "args": args}


def trace_events(steps: int = 2, *, gpu: bool = True, start_us: float = 1_000.0, kernels_per_step: int = 3,
                 kernel_us: float = 60.0, latency_us: float = 30.0, copy_us: float = 400.0,
                 copy_name: str = "Memcpy HtoD (Pinned -> Device)", sync_us: float = 0.0,
                 phases: tuple[tuple[str, float, float], ...] = PHASES) -> list[dict[str, Any]]:
    """``steps`` steps of ``STEP_US``: the phases, two CPU operators, and on the GPU (``gpu``) a copy,
    then ``kernels_per_step`` kernels launched 100 µs apart inside ``aten::conv2d``, each starting
    ``latency_us`` after its launch; with ``sync_us``, a cudaDeviceSynchronize at the optimizer."""
    events: list[dict[str, Any]] = [
        {"ph": "M", "name": "process_name", "pid": PID, "tid": 0, "ts": start_us, "args": {"name": "python"}},
        {"ph": "M", "name": "thread_name", "pid": PID, "tid": TID, "ts": start_us, "args": {"name": "thread 4242 (python)"}},
    ]
    for step in range(steps):
        t0 = start_us + step * STEP_US
        events += [_x("user_annotation", f"phase:{name}", t0 + a, b - a) for name, a, b in phases]
        events.append(_x("cpu_op", "aten::conv2d", t0 + 2_100.0, 2_500.0 + kernels_per_step * 100.0))
        events.append(_x("cpu_op", "aten::add_", t0 + 9_100.0, 50.0))
        if not gpu:
            continue
        events.append(_x("gpu_memcpy", copy_name, t0 + 1_500.0, copy_us, GPU, STREAM, bytes=3 * 224 * 224 * 32 * 4))
        for k in range(kernels_per_step):
            launch = t0 + 2_200.0 + k * 100.0
            events.append(_x("cuda_runtime", "cudaLaunchKernel", launch, 8.0, correlation=step * 1000 + k))
            events.append(_x("kernel", f"sm80_xmma_fprop_{k % 3}", launch + latency_us, kernel_us, GPU, STREAM,
                             correlation=step * 1000 + k))
        if sync_us:
            events.append(_x("cuda_runtime", "cudaDeviceSynchronize", t0 + 8_000.0, sync_us))
    return events


def write_trace(path: Path, events: list[dict[str, Any]]) -> Path:
    """As torch's export_chrome_trace: gzipped by a ``.gz`` suffix."""
    document = {"schemaVersion": 1, "baseTimeNanoseconds": BASE_NS, "traceEvents": events, "traceName": str(path)}
    data = json.dumps(document).encode()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path
