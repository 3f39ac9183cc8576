"""What a profiled job recorded, as arrays: system samples, training steps, phases, job facts.

Built job-side by the profiler sidecar from SageMaker system-metrics events and the training
script's step events, and by tests from synthetic values. Only numpy: this module runs in both
environments (numpy 1.26 in the job environment, numpy 2 in the app's).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np

PHASES: tuple[str, ...] = ("dataloader", "forward", "backward", "optimizer", "other")
"""The parts of a training step the script times, in order."""

SystemEvent = tuple[str, str | None, str, float, float]
"""One system-metrics line: (Type, Name, Dimension, Value, Timestamp)."""


@dataclass(frozen=True)
class SystemMetrics:
    """System samples on a regular grid (one row per sample; NaN where a value is missing).

    Attributes:
        times: sample timestamps, seconds since the epoch, increasing.
        interval_s: the sampling interval.
        cpu: CPUUtilization per core (rows × cores), percent.
        iowait: I/OWaitPercentage per core (rows × cores), percent.
        memory: MemoryUsedPercent (rows,).
        gpu: GPUUtilization per GPU (rows × GPUs), percent; zero columns without a GPU.
        gpu_memory: GPUMemoryUtilization per GPU (rows × GPUs), percent.
        io: disk series by dimension (IOPS, Read/WriteThroughputInBytesPerSecond).
        network: network series by dimension (Receive/TransmitBytesPerSecond).
    """

    times: np.ndarray
    interval_s: float
    cpu: np.ndarray
    iowait: np.ndarray
    memory: np.ndarray
    gpu: np.ndarray
    gpu_memory: np.ndarray
    io: Mapping[str, np.ndarray] = field(default_factory=dict)
    network: Mapping[str, np.ndarray] = field(default_factory=dict)

    @property
    def samples(self) -> int:
        return int(self.times.shape[0])

    @property
    def cores(self) -> int:
        return int(self.cpu.shape[1])

    @property
    def gpus(self) -> int:
        return int(self.gpu.shape[1])

    @property
    def cpu_total(self) -> np.ndarray:
        """Mean utilisation over the cores per sample."""
        return _row_mean(self.cpu)

    @property
    def iowait_total(self) -> np.ndarray:
        """Mean I/O wait over the cores per sample."""
        return _row_mean(self.iowait)

    @property
    def gpu_total(self) -> np.ndarray:
        """Mean utilisation over the GPUs per sample (NaN without a GPU)."""
        return _row_mean(self.gpu)

    @property
    def gpu_memory_total(self) -> np.ndarray:
        """Mean memory use over the GPUs per sample (NaN without a GPU)."""
        return _row_mean(self.gpu_memory)

    @classmethod
    def empty(cls) -> SystemMetrics:
        nothing = np.zeros((0, 0))
        return cls(np.zeros(0), 0.5, nothing, nothing, np.zeros(0), nothing, nothing)


@dataclass(frozen=True)
class StepRecords:
    """Training steps as parallel arrays (seconds; ``start`` is wall-clock).

    ``phases`` holds one array per name of :data:`PHASES`; ``profiled`` marks the steps that ran
    inside the torch.profiler window (slower on purpose).
    """

    step: np.ndarray
    epoch: np.ndarray
    start: np.ndarray
    duration: np.ndarray
    batch: np.ndarray
    profiled: np.ndarray
    phases: Mapping[str, np.ndarray]

    @property
    def count(self) -> int:
        return int(self.duration.shape[0])

    @classmethod
    def from_events(cls, events: Sequence[Mapping[str, object]]) -> StepRecords:
        """From the script's ``{"Type": "step", ...}`` events, sorted by start time."""
        rows = sorted(events, key=lambda e: float(e["Start"]))  # type: ignore[arg-type]
        step_phases = [cast("Mapping[str, float]", e.get("Phases", {})) for e in rows]
        phases = {name: np.array([float(p.get(name, 0.0)) for p in step_phases]) for name in PHASES}
        return cls(
            step=np.array([int(e.get("Step", i)) for i, e in enumerate(rows)], dtype=np.int64),  # type: ignore[call-overload]
            epoch=np.array([int(e.get("Epoch", 0)) for e in rows], dtype=np.int64),  # type: ignore[call-overload]
            start=np.array([float(e["Start"]) for e in rows]),  # type: ignore[arg-type]
            duration=np.array([float(e["Duration"]) for e in rows]),  # type: ignore[arg-type]
            batch=np.array([int(e.get("Batch", 0)) for e in rows], dtype=np.int64),  # type: ignore[call-overload]
            profiled=np.array([bool(e.get("Profiled", False)) for e in rows], dtype=bool),
            phases=phases,
        )


@dataclass(frozen=True)
class Phase:
    """A span of the job: initialization, an epoch's training, an evaluation, the profiler window."""

    name: str
    start: float
    end: float
    epoch: int | None = None


@dataclass(frozen=True)
class JobInfo:
    """What the training script reported about itself (its ``{"Type": "job"}`` events)."""

    node_id: str = "algo-1"
    process_start: float | None = None
    cpus: int = 0
    gpus: int = 0
    gpu_names: tuple[str, ...] = ()
    device: str = "cpu"
    batch_size: int = 0
    num_workers: int | None = None
    pin_memory: bool = False
    interval_ms: int | None = None
    window: str = ""
    ended_at: float | None = None

    @classmethod
    def from_events(cls, events: Sequence[Mapping[str, object]]) -> JobInfo:
        """Merges job events in order (later ones win) and the last ``end`` event."""
        merged: dict[str, object] = {}
        ended = None
        for event in events:
            if event.get("Type") == "job":
                merged.update({k: v for k, v in event.items() if v is not None})
            elif event.get("Type") == "end":
                ended = float(event["Time"])  # type: ignore[arg-type]
        return cls(
            node_id=str(merged.get("NodeId", "algo-1")),
            process_start=_float_or_none(merged.get("ProcessStart")),
            cpus=int(merged.get("Cpus", 0)),  # type: ignore[call-overload]
            gpus=int(merged.get("Gpus", 0)),  # type: ignore[call-overload]
            gpu_names=tuple(str(n) for n in cast("Iterable[object]", merged.get("GpuNames") or ())),
            device=str(merged.get("Device", "cpu")),
            batch_size=int(merged.get("BatchSize", 0)),  # type: ignore[call-overload]
            num_workers=int(merged["NumWorkers"]) if "NumWorkers" in merged else None,  # type: ignore[call-overload]
            pin_memory=bool(merged.get("PinMemory", False)),
            interval_ms=int(merged["IntervalMs"]) if "IntervalMs" in merged else None,  # type: ignore[call-overload]
            window=str(merged.get("Window", "")),
            ended_at=ended,
        )


@dataclass(frozen=True)
class ProfileData:
    """Everything the rules and the aggregations look at."""

    system: SystemMetrics
    steps: StepRecords
    phases: tuple[Phase, ...]
    info: JobInfo
    now: float


def phases_from_events(events: Iterable[Mapping[str, object]]) -> tuple[Phase, ...]:
    """The ``{"Type": "phase"}`` events as Phases, by start time."""
    phases = [
        Phase(str(e["Name"]), float(e["Start"]), float(e["End"]),  # type: ignore[arg-type]
              int(e["Epoch"]) if e.get("Epoch") is not None else None)  # type: ignore[call-overload]
        for e in events if e.get("Type") == "phase"
    ]
    return tuple(sorted(phases, key=lambda p: p.start))


SeriesKey = tuple[str, str, str]
"""(Type, Name, Dimension) of one system-metrics series."""


def system_metrics_from_events(events: Iterable[SystemEvent], interval_s: float | None = None) -> SystemMetrics:
    """Lines up system-metrics events on a grid of the sampling interval (see :func:`system_metrics_from_series`).

    Args:
        events: (Type, Name, Dimension, Value, Timestamp) tuples, any order.
        interval_s: the sampling interval; None infers it from the cpu0 timestamps.
    """
    grouped: dict[SeriesKey, tuple[list[float], list[float]]] = {}
    for kind, name, dimension, value, timestamp in events:
        times, values = grouped.setdefault((kind, name or "", dimension), ([], []))
        times.append(float(timestamp))
        values.append(float(value))
    return system_metrics_from_series(
        {key: (np.asarray(t), np.asarray(v)) for key, (t, v) in grouped.items()}, interval_s)


def system_metrics_from_series(series: Mapping[SeriesKey, tuple[np.ndarray, np.ndarray]],
                               interval_s: float | None = None) -> SystemMetrics:
    """Lines up series of (timestamps, values) on a grid of the sampling interval.

    Events of one sample carry (nearly) one timestamp; each is snapped to the nearest grid row,
    so series written a few milliseconds apart still share a row. Rows no series has are dropped.

    Args:
        series: (timestamps, values) by (Type, Name, Dimension).
        interval_s: the sampling interval; None infers it from the cpu0 timestamps.
    """
    series = {k: v for k, v in series.items() if v[0].size}
    if not series:
        return SystemMetrics.empty()
    t0 = min(float(t.min()) for t, _ in series.values())
    t_end = max(float(t.max()) for t, _ in series.values())
    interval = interval_s or _infer_interval(series)
    rows = int(np.round((t_end - t0) / interval)) + 1
    present = np.zeros(rows, dtype=bool)
    grid: dict[SeriesKey, np.ndarray] = {}
    for key, (times, values) in series.items():
        index = np.round((times - t0) / interval).astype(np.int64)
        column = np.full(rows, np.nan)
        column[index] = values
        present[index] = True
        grid[key] = column
    keep = np.flatnonzero(present)

    def matrix(kind: str, prefix: str, dimension: str) -> np.ndarray:
        names = sorted({k[1] for k in grid if k[0] == kind and k[1].startswith(prefix) and k[1][len(prefix):].isdigit()},
                       key=lambda n: int(n[len(prefix):]))
        columns = [grid.get((kind, n, dimension), np.full(rows, np.nan))[keep] for n in names]
        return np.stack(columns, axis=1) if columns else np.zeros((keep.size, 0))

    def by_dimension(kind: str) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for (k, _, dimension), column in grid.items():
            if k == kind:
                out[dimension] = np.nansum([out[dimension], column[keep]], axis=0) if dimension in out else column[keep]
        return out

    memory = next((c[keep] for (k, _, _), c in grid.items() if k == "memory"), np.full(keep.size, np.nan))
    return SystemMetrics(
        times=t0 + keep * interval,
        interval_s=interval,
        cpu=matrix("cpu", "cpu", "CPUUtilization"),
        iowait=matrix("cpu", "cpu", "I/OWaitPercentage"),
        memory=memory,
        gpu=matrix("gpu", "gpu", "GPUUtilization"),
        gpu_memory=matrix("gpu", "gpu", "GPUMemoryUtilization"),
        io=by_dimension("i/o"),
        network=by_dimension("network"),
    )


def _infer_interval(series: Mapping[SeriesKey, tuple[np.ndarray, np.ndarray]]) -> float:
    times = series.get(("cpu", "cpu0", "CPUUtilization"), next(iter(series.values())))[0]
    if times.size < 2:
        return 0.5
    gaps = np.diff(np.sort(times))
    gaps = gaps[gaps > 1e-3]
    return float(np.median(gaps)) if gaps.size else 0.5


def _row_mean(matrix: np.ndarray) -> np.ndarray:
    if matrix.shape[1] == 0:
        return np.full(matrix.shape[0], np.nan)
    counts = np.sum(~np.isnan(matrix), axis=1)
    sums = np.nansum(matrix, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _float_or_none(value: object) -> float | None:
    return float(value) if value is not None else None  # type: ignore[arg-type]
