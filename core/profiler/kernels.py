"""The kernel view of a GPU trace window: where the GPU's time goes and why it waits.

From a :class:`~core.profiler.timeline.TraceIndex`: time by kernel and by the operator that launched
it (a kernel's CUDA correlation id leads to its launch, the launch to the CPU operator around it),
the latency from each launch to its kernel's start, host-to-device and device-to-host copies (time,
volume, bandwidth), synchronisations, and the GPU's idle time per step (the steps' span less the
union of kernels, copies and memsets). Each finding names the bottleneck and the hyperparameter to
change, with thresholds in :class:`Thresholds`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.profiler.timeline import KINDS, STEP_PHASE, TraceIndex

COPY_DIRECTIONS = ("HtoD", "DtoH", "DtoD", "PtoP")
_ENCLOSING_CANDIDATES = 8
"""Earlier CPU operators checked for the one around a launch (nested operators start before it)."""


@dataclass(frozen=True)
class Thresholds:
    idle: float = 0.30
    """GPU idle share of the step that is a finding."""
    data: float = 0.20
    """Share of the step in the dataloader phase that makes idle time a wait for data."""
    copies: float = 0.10
    syncs: float = 0.05
    launch_latency_us: float = 50.0
    short_kernel_us: float = 20.0


@dataclass(frozen=True)
class KernelFinding:
    title: str
    message: str
    change: str
    """The hyperparameter (or practice) to change."""


@dataclass(frozen=True)
class KernelView:
    """What the GPU did in one trace window."""

    kernels: list[dict[str, Any]]
    operators: list[dict[str, Any]]
    latency_us: np.ndarray
    copies: list[dict[str, Any]]
    syncs: dict[str, float]
    steps: list[dict[str, Any]]
    findings: list[KernelFinding] = field(default_factory=list)


def _rows(index: TraceIndex, kind: str) -> np.ndarray:
    return np.flatnonzero(index.kind == KINDS.index(kind))


def _by_name(names: Sequence[str], durations: np.ndarray, key: str) -> list[dict[str, Any]]:
    """Calls and time per name, the longest first."""
    totals: dict[str, list[float]] = {}
    for name, duration in zip(names, durations.tolist(), strict=True):
        entry = totals.setdefault(name, [0, 0.0])
        entry[0] += 1
        entry[1] += duration
    grand = sum(t for _, t in totals.values()) or 1.0
    rows = [{key: name, "calls": int(calls), "total ms": total / 1000, "mean µs": total / calls,
             "share": total / grand} for name, (calls, total) in totals.items()]
    return sorted(rows, key=lambda r: -r["total ms"])


def _launches_of(index: TraceIndex, kernels: np.ndarray) -> np.ndarray:
    """Each kernel's launch row (-1 where its correlation id has no launch in the window)."""
    correlation = index.correlation
    launches = _rows(index, "launch")
    launches = launches[correlation[launches] >= 0]
    order = np.argsort(correlation[launches], kind="stable")
    keys, rows = correlation[launches][order], launches[order]
    if not len(keys):
        return np.full(len(kernels), -1)
    at = np.clip(np.searchsorted(keys, correlation[kernels]), 0, len(keys) - 1)
    return np.where(keys[at] == correlation[kernels], rows[at], -1)


def _enclosing_operator(index: TraceIndex, launches: np.ndarray) -> list[str]:
    """The CPU operator around each launch on its thread: the latest-starting one that contains it."""
    names = ["(no operator)"] * len(launches)
    operators = _rows(index, "cpu")
    for lane in np.unique(index.lane[launches[launches >= 0]]):
        ops = operators[index.lane[operators] == lane]
        starts, ends = index.start[ops], index.start[ops] + index.dur[ops]
        mine = np.flatnonzero((launches >= 0) & (index.lane[np.maximum(launches, 0)] == lane))
        at = index.start[launches[mine]]
        last = np.searchsorted(starts, at, side="right") - 1
        chosen = np.full(len(mine), -1)
        for back in range(_ENCLOSING_CANDIDATES):
            candidate = last - back
            valid = (candidate >= 0) & (chosen < 0)
            inside = valid & (ends[np.maximum(candidate, 0)] >= at)
            chosen = np.where(inside, candidate, chosen)
        for position, op in zip(mine.tolist(), chosen.tolist(), strict=True):
            if op >= 0:
                names[position] = index.names[index.name[ops[op]]]
    return names


def _merged(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The union of intervals as disjoint (start, end) arrays."""
    if not len(starts):
        return starts, ends
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], ends[order]
    reach = np.maximum.accumulate(ends)
    new = np.ones(len(starts), bool)
    new[1:] = starts[1:] > reach[:-1]
    return starts[new], np.maximum.reduceat(ends, np.flatnonzero(new))


def _overlap(starts: np.ndarray, ends: np.ndarray, low: float, high: float) -> float:
    return float(np.clip(np.minimum(ends, high) - np.maximum(starts, low), 0, None).sum())


def _copy_rows(index: TraceIndex, direction: str) -> list[int]:
    """The copies one way (``HtoD``, ...), by the name Kineto gives them (``Memcpy HtoD (Pinned -> Device)``)."""
    return [r for r in _rows(index, "memcpy").tolist() if direction in index.names[index.name[r]]]


def _copies(index: TraceIndex) -> list[dict[str, Any]]:
    out = []
    for direction in COPY_DIRECTIONS:
        mine = _copy_rows(index, direction)
        if not mine:
            continue
        seconds = float(index.dur[mine].sum()) / 1e6
        volume = float(index.size[mine].sum())
        pageable = sum("Pageable" in index.names[index.name[r]] for r in mine)
        out.append({"direction": direction, "copies": len(mine), "total ms": seconds * 1000, "MB": volume / 1e6,
                    "GB/s": volume / 1e9 / seconds if seconds else None, "from pageable memory": pageable})
    return out


def _syncs(index: TraceIndex) -> np.ndarray:
    launches = _rows(index, "launch")
    return np.asarray([r for r in launches.tolist() if "Synchronize" in index.names[index.name[r]]], dtype=np.int64)


def kernel_view(index: TraceIndex, *, first_step: int = 0, thresholds: Thresholds = Thresholds()) -> KernelView | None:
    """The kernel view of the window; None when the trace holds no GPU event (a CPU job)."""
    if not index.has_gpu:
        return None
    kernels = _rows(index, "kernel")
    launches = _launches_of(index, kernels)
    launched = launches >= 0
    latency = index.start[kernels[launched]] - index.start[launches[launched]]
    operators = _enclosing_operator(index, launches)
    gpu = np.flatnonzero(np.isin(index.kind, [KINDS.index(k) for k in ("kernel", "memcpy", "memset")]))
    busy_starts, busy_ends = _merged(index.start[gpu], index.start[gpu] + index.dur[gpu])
    h2d = _copy_rows(index, "HtoD")
    syncs = _syncs(index)
    spans = index.steps or [(0.0, index.span_us)]
    data_starts = np.array([s for p, s, _ in index.phases if p == STEP_PHASE])
    data_ends = np.array([e for p, _, e in index.phases if p == STEP_PHASE])
    steps = []
    for number, (low, high) in enumerate(spans):
        span = max(high - low, 1e-9)
        busy = _overlap(busy_starts, busy_ends, low, high)
        steps.append({
            "step": first_step + number, "step ms": span / 1000, "GPU busy ms": busy / 1000, "GPU idle": 1 - busy / span,
            "data": _overlap(data_starts, data_ends, low, high) / span,
            "H2D copies": _overlap(index.start[h2d], index.start[h2d] + index.dur[h2d], low, high) / span,
            "syncs": _overlap(index.start[syncs], index.start[syncs] + index.dur[syncs], low, high) / span,
        })
    view = KernelView(
        kernels=_by_name([index.names[i] for i in index.name[kernels]], index.dur[kernels], "kernel"),
        operators=_by_name(operators, index.dur[kernels], "operator"),
        latency_us=latency, copies=_copies(index),
        syncs={"count": float(len(syncs)), "total ms": float(index.dur[syncs].sum()) / 1000},
        steps=steps,
    )
    return dataclasses.replace(view, findings=_findings(view, index, kernels, thresholds))


def _mean(steps: Sequence[dict[str, Any]], key: str) -> float:
    """The share of all steps' time (steps weighted by their length)."""
    total = sum(s["step ms"] for s in steps) or 1.0
    return sum(s[key] * s["step ms"] for s in steps) / total


def _findings(view: KernelView, index: TraceIndex, kernels: np.ndarray, t: Thresholds) -> list[KernelFinding]:
    found = []
    idle, data = _mean(view.steps, "GPU idle"), _mean(view.steps, "data")
    if idle >= t.idle and data >= t.data:
        found.append(KernelFinding("GPU waits for data",
                                   f"GPU idle {idle:.0%} of the step waiting for data (loading the batch takes "
                                   f"{data:.0%} of the step)",
                                   "num-workers: raise it (up to the vCPUs per GPU); a smaller image-size decodes faster"))
    elif idle >= t.idle:
        found.append(KernelFinding("GPU idle between kernels",
                                   f"GPU idle {idle:.0%} of the step, though the batch is ready: the CPU does not "
                                   "launch work fast enough",
                                   "batch-size: raise it (more work per launch); or compile: on (fewer, fused kernels)"))
    copies = _mean(view.steps, "H2D copies")
    if copies >= t.copies:
        pageable = sum(c["from pageable memory"] for c in view.copies if c["direction"] == "HtoD")
        how = ("they come from pageable memory: pin it (DataLoader pin_memory)" if pageable else
               "use channels-last and keep batches pinned, so copies overlap compute")
        found.append(KernelFinding("Host-to-device copies", f"H2D copies take {copies:.0%} of the step: {how}",
                                   "pin memory; num-workers high enough to keep pinned batches ready"))
    syncs = _mean(view.steps, "syncs")
    if syncs >= t.syncs:
        found.append(KernelFinding("Synchronisations",
                                   f"{int(view.syncs['count'])} synchronisations take {syncs:.0%} of the step: the CPU "
                                   "waits for the GPU (a .item() or a tensor read every step)",
                                   "debug-save-interval: raise it (every saved statistic waits for the GPU)"))
    if len(view.latency_us) and len(kernels):
        latency, length = float(np.median(view.latency_us)), float(np.median(index.dur[kernels]))
        if latency >= t.launch_latency_us and length < t.short_kernel_us:
            found.append(KernelFinding("Launch-bound",
                                       f"kernels start a median {latency:.0f} µs after their launch and run a median "
                                       f"{length:.0f} µs: many short kernels",
                                       "compile: on (fewer, fused kernels); or a larger batch-size"))
    return found


def latency_histogram(latency_us: np.ndarray, bins: int = 40) -> tuple[list[float], list[int]]:
    """(bin centres in µs, counts) of the launch-to-run latencies."""
    if not len(latency_us):
        return [], []
    counts, edges = np.histogram(latency_us, bins=bins)
    return ((edges[:-1] + edges[1:]) / 2).tolist(), counts.tolist()
