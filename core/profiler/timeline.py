"""The Profiler's timeline: a torch.profiler trace window, indexed once into columns, then drawn at
the resolution asked for.

A trace is a Chrome trace (``*.pt.trace.json.gz``, as ``entrypoints/profiling.py`` exports it) of
hundreds of MB for a few GPU steps. Parsing it is the slow part, so it happens once, beside the job
(``analysers/profiler_sidecar.py``), streamed with ijson so memory stays bounded by the events kept:
each complete event becomes a row of numpy columns (lane, name, kind, start, duration), saved as
``<trace stem>.timeline.npz``. A view of the index (:func:`window`) keeps the events at least one
screen column wide as boxes and folds the shorter ones into one box per lane and column (their
count and busy share), so what reaches the browser is bounded by the screen, not by the trace.

Lanes: each CPU thread, each GPU stream (kernels), each GPU's copies and memsets; the ``phase:*``
ranges the script records (dataloader, forward, backward, optimizer) become the phase band, and each
``phase:dataloader`` starts a training step (the window's ``first_step`` is the first).
"""

from __future__ import annotations

import functools
import gzip
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from io import BufferedReader
from pathlib import Path
from typing import Any

import ijson
import numpy as np

from core.errors import InvalidInputError

KINDS = ("cpu", "launch", "kernel", "memcpy", "memset", "annotation", "other")
"""What an event is: CPU operator, CUDA runtime call (kernel launch, sync), GPU kernel, copy, memset,
user annotation, anything else."""
_KIND_OF_CATEGORY = {"cpu_op": "cpu", "python_function": "cpu", "cuda_runtime": "launch", "cuda_driver": "launch",
                     "kernel": "kernel", "gpu_memcpy": "memcpy", "gpu_memset": "memset",
                     "user_annotation": "annotation", "gpu_user_annotation": "annotation"}
_GPU_KINDS = ("kernel", "memcpy", "memset")
PHASE_PREFIX = "phase:"
STEP_PHASE = "dataloader"
"""The phase each training step begins with."""
INDEX_SUFFIX = ".timeline.npz"


class TraceError(InvalidInputError):
    """A trace file that cannot be read: not JSON, truncated, or not a Chrome trace."""


@dataclass(frozen=True)
class TraceIndex:
    """A trace window's complete events as columns, sorted by start (times in µs from ``origin_s``)."""

    origin_s: float
    """Epoch seconds of time 0: the trace's first event."""
    lanes: tuple[str, ...]
    names: tuple[str, ...]
    lane: np.ndarray
    name: np.ndarray
    kind: np.ndarray
    """Index into :data:`KINDS`."""
    start: np.ndarray
    dur: np.ndarray
    phases: tuple[tuple[str, float, float], ...]
    """(phase, start µs, end µs) of every ``phase:*`` range."""
    correlation: np.ndarray
    """CUDA's correlation id, which ties a launch to its kernel or copy (-1: none)."""
    size: np.ndarray
    """Bytes a copy or memset moved (0 for other events)."""

    @property
    def span_us(self) -> float:
        ends = [float((self.start + self.dur).max())] if len(self.start) else []
        ends += [end for _, _, end in self.phases]
        return max(ends, default=0.0)

    @property
    def has_gpu(self) -> bool:
        return bool(np.isin(self.kind, [KINDS.index(k) for k in _GPU_KINDS]).any())

    @functools.cached_property
    def steps(self) -> list[tuple[float, float]]:
        """(start, end) in µs of each training step in the window: from one ``phase:dataloader`` to the
        next; the last ends with the last phase that starts in it. Computed once per index."""
        starts = sorted(start for phase, start, _ in self.phases if phase == STEP_PHASE)
        if not starts:
            return []
        last_end = max(end for _, start, end in self.phases if start >= starts[-1])
        return list(zip(starts, [*starts[1:], last_end], strict=True))


# --- building ------------------------------------------------------------------------------------


def _open(path: Path) -> gzip.GzipFile | BufferedReader:
    return gzip.GzipFile(path, "rb") if path.suffix == ".gz" else path.open("rb")


def _base_time_s(path: Path) -> float:
    """``baseTimeNanoseconds`` (newer PyTorch: event times count from it), read from the header only."""
    with _open(path) as handle:
        for prefix, event, value in ijson.parse(handle):
            if prefix == "baseTimeNanoseconds" and event == "number":
                return float(value) / 1e9
            if prefix == "traceEvents":  # the events come after the header
                return 0.0
    return 0.0


def _events(path: Path) -> Iterator[Mapping[str, Any]]:
    with _open(path) as handle:
        yield from ijson.items(handle, "traceEvents.item", use_float=True)


class _Names:
    """Strings to small integers, in order of first use."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def __call__(self, text: str) -> int:
        return self.ids.setdefault(text, len(self.ids))

    def table(self) -> tuple[str, ...]:
        return tuple(self.ids)


def _lane_name(kind: str, pid: object, tid: object, threads: Mapping[tuple[object, object], str]) -> str:
    if kind in ("kernel", "memset"):
        return f"GPU {pid} stream {tid}"
    if kind == "memcpy":
        return f"GPU {pid} copies"
    return f"CPU {threads.get((pid, tid), f'thread {tid}')}"


def build_index(path: Path) -> TraceIndex:
    """Reads a Chrome trace, streamed.

    Raises:
        TraceError: the file is missing, not gzip or JSON, cut short, or holds no ``traceEvents``.
    """
    try:
        base_s = _base_time_s(path)
        threads: dict[tuple[object, object], str] = {}
        lanes, names = _Names(), _Names()
        lane, name, kind, start, dur, correlation, size = [], [], [], [], [], [], []
        phases: list[tuple[str, float, float]] = []
        for event in _events(path):
            phase_type = event.get("ph")
            if phase_type == "M" and event.get("name") == "thread_name":
                threads[(event.get("pid"), event.get("tid"))] = str((event.get("args") or {}).get("name", ""))
            if phase_type != "X" or "ts" not in event:
                continue
            label = str(event.get("name", ""))
            ts, length = float(event["ts"]), float(event.get("dur") or 0.0)
            event_kind = _KIND_OF_CATEGORY.get(str(event.get("cat", "")), "other")
            if event_kind == "annotation" and label.startswith(PHASE_PREFIX):
                phases.append((label.removeprefix(PHASE_PREFIX), ts, ts + length))
                continue
            lane.append(lanes(_lane_name(event_kind, event.get("pid"), event.get("tid"), threads)))
            name.append(names(label))
            kind.append(KINDS.index(event_kind))
            start.append(ts)
            dur.append(length)
            args = event.get("args") or {}
            correlation.append(int(args.get("correlation", -1)))
            size.append(float(args.get("bytes", 0)))
    except FileNotFoundError as exc:
        raise TraceError(f"trace {path.name}: no such file") from exc
    except (ijson.JSONError, OSError, EOFError, ValueError, TypeError) as exc:
        raise TraceError(f"trace {path.name} is not a whole Chrome trace (cut short or corrupt): {exc}") from exc
    if not start and not phases:
        raise TraceError(f"trace {path.name} holds no timed events (traceEvents is empty or missing)")
    starts = np.asarray(start, dtype=np.float64)
    origin = min(([float(starts.min())] if len(starts) else []) + [s for _, s, _ in phases])
    order = np.argsort(starts, kind="stable")
    return TraceIndex(
        origin_s=base_s + origin / 1e6, lanes=lanes.table(), names=names.table(),
        lane=np.asarray(lane, dtype=np.int32)[order], name=np.asarray(name, dtype=np.int32)[order],
        kind=np.asarray(kind, dtype=np.int8)[order], start=starts[order] - origin,
        dur=np.asarray(dur, dtype=np.float64)[order],
        phases=tuple(sorted((p, s - origin, e - origin) for p, s, e in phases)),
        correlation=np.asarray(correlation, dtype=np.int64)[order], size=np.asarray(size, dtype=np.float64)[order],
    )


def index_path(trace: Path) -> Path:
    """``<stem>.timeline.npz`` beside ``<stem>.pt.trace.json.gz``."""
    return trace.with_name(trace.name.split(".pt.trace")[0].split(".json")[0] + INDEX_SUFFIX)


def save_index(index: TraceIndex, path: Path) -> None:
    """Writes the index whole (a reader never sees half of it)."""
    meta = {"origin_s": index.origin_s, "lanes": index.lanes, "names": index.names, "phases": index.phases}
    partial = path.with_name(f".{path.name}.partial")
    with partial.open("wb") as handle:
        np.savez(handle, lane=index.lane, name=index.name, kind=index.kind, start=index.start, dur=index.dur,
                 correlation=index.correlation, size=index.size,
                 meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
    partial.replace(path)


def load_index(path: Path) -> TraceIndex:
    """Raises TraceError: the index is missing or unreadable."""
    try:
        with np.load(path) as data:
            meta = json.loads(data["meta"].tobytes())
            return TraceIndex(origin_s=float(meta["origin_s"]), lanes=tuple(meta["lanes"]),
                              names=tuple(meta["names"]), lane=data["lane"], name=data["name"], kind=data["kind"],
                              start=data["start"], dur=data["dur"],
                              phases=tuple((str(p), float(s), float(e)) for p, s, e in meta["phases"]),
                              correlation=data["correlation"], size=data["size"])
    except FileNotFoundError as exc:
        raise TraceError(f"timeline index {path.name}: no such file") from exc
    except (OSError, ValueError, KeyError) as exc:
        raise TraceError(f"timeline index {path.name} is unreadable: {exc}") from exc


# --- viewing -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Boxes:
    """What to draw: one row per box (times in µs from the trace's start)."""

    lane: list[str]
    kind: list[str]
    start: list[float]
    dur: list[float]
    label: list[str]


@dataclass(frozen=True)
class TimelineView:
    """The part of a trace between ``t0`` and ``t1`` µs, at most a bounded number of boxes."""

    t0: float
    t1: float
    events: Boxes
    """Events at least one column wide, each drawn."""
    folded: Boxes
    """The shorter ones, one box per lane and column: label ``N events, B% busy``."""
    lanes: tuple[str, ...]
    phases: tuple[tuple[str, float, float], ...]
    steps: tuple[tuple[int, float, float], ...]
    """(job step, start, end) of the steps that overlap the view."""
    hidden: int
    """Events folded into column boxes."""


def window(index: TraceIndex, t0: float, t1: float, *, columns: int = 1200, max_events: int = 4000,
           first_step: int = 0) -> TimelineView:
    """The view of ``[t0, t1]`` µs drawn ``columns`` wide: at most ``max_events`` events (the longest)
    as boxes, the rest folded per lane and column."""
    t0, t1 = max(0.0, t0), max(t0 + 1.0, t1)
    width = (t1 - t0) / columns
    last = int(np.searchsorted(index.start, t1, side="right"))
    ends = index.start[:last] + index.dur[:last]
    chosen = np.flatnonzero(ends >= t0)
    wide = chosen[index.dur[chosen] >= width]
    if len(wide) > max_events:
        wide = wide[np.argsort(index.dur[wide])[::-1][:max_events]]
    keep = np.ones(len(index.start), dtype=bool)
    keep[wide] = False
    narrow = chosen[keep[chosen]]
    events = Boxes([index.lanes[i] for i in index.lane[wide]], [KINDS[k] for k in index.kind[wide]],
                   index.start[wide].tolist(), index.dur[wide].tolist(),
                   [index.names[i] for i in index.name[wide]])
    folded = _fold(index, narrow, t0, width, columns)
    lanes = tuple(index.lanes[i] for i in sorted(set(index.lane[chosen].tolist())))
    steps = tuple((first_step + n, s, e) for n, (s, e) in enumerate(index.steps) if e >= t0 and s <= t1)
    phases = tuple(p for p in index.phases if p[2] >= t0 and p[1] <= t1)
    return TimelineView(t0, t1, events, folded, lanes, phases, steps, hidden=len(narrow))


def _fold(index: TraceIndex, rows: np.ndarray, t0: float, width: float, columns: int) -> Boxes:
    """One box per (lane, kind, column) of the short events: their count and the share of the column they fill."""
    if not len(rows):
        return Boxes([], [], [], [], [])
    column = np.clip(np.floor((index.start[rows] - t0) / width), 0, columns).astype(np.int64)
    cells = columns + 1
    key = (index.lane[rows].astype(np.int64) * len(KINDS) + index.kind[rows]) * cells + column
    size = len(index.lanes) * len(KINDS) * cells
    counts = np.bincount(key, minlength=size)
    busy = np.bincount(key, weights=index.dur[rows], minlength=size)
    used = np.flatnonzero(counts)
    lane, rest = np.divmod(used, len(KINDS) * cells)
    kind, column_of = np.divmod(rest, cells)
    return Boxes([index.lanes[i] for i in lane], [KINDS[k] for k in kind], (t0 + column_of * width).tolist(),
                 [width] * len(used),
                 [f"{n} events, {min(1.0, b / width):.0%} busy" for n, b in zip(counts[used], busy[used], strict=True)])


def step_range(index: TraceIndex, step: int, first_step: int = 0) -> tuple[float, float]:
    """(start, end) µs of the job's step ``step`` in this window.

    Raises:
        InvalidInputError: the window does not hold that step.
    """
    steps = index.steps
    position = step - first_step
    if not 0 <= position < len(steps):
        held = f"steps {first_step} to {first_step + len(steps) - 1}" if steps else "no training step"
        raise InvalidInputError(f"step {step} is not in this trace window ({held})")
    return steps[position]


def whole(index: TraceIndex) -> tuple[float, float]:
    """The window's full span, in µs."""
    return 0.0, max(1.0, math.ceil(index.span_us))


def step_at(index: TraceIndex, when_s: float, first_step: int = 0) -> int | None:
    """The job's step running at epoch second ``when_s`` in this window, the nearest one if
    ``when_s`` falls between steps; None when it falls outside the window."""
    steps = index.steps
    at = (when_s - index.origin_s) * 1e6
    if not steps or at < steps[0][0] - 1e6 or at > steps[-1][1] + 1e6:  # a second of slack: buckets are coarse
        return None
    nearest = min(range(len(steps)), key=lambda i: 0.0 if steps[i][0] <= at <= steps[i][1]
                  else min(abs(at - steps[i][0]), abs(at - steps[i][1])))
    return first_step + nearest
