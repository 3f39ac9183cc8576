"""Pre-aggregation: the small JSON documents the page and the report read instead of raw samples.

An hour of 500 ms samples on 16 cores is ~300,000 values; the page gets at most
:data:`MAX_POINTS` buckets per series, step statistics instead of steps, and the top operators.
Written job-side by the sidecar into the job store (see :mod:`core.profiler._store`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from core.profiler.data import PHASES, Phase, ProfileData, StepRecords
from core.profiler.entities import Finding
from core.profiler.rules import StepOutlier, usage_percentiles

MAX_POINTS = 720
"""Buckets per series at most (one hour at 5 s)."""
NICE_BUCKETS_S = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)
HISTOGRAM_BINS = 40
TOP_OPERATORS = 25
RECENT_STEPS = 30


def bucket_seconds(span_s: float, interval_s: float, max_points: int = MAX_POINTS) -> float:
    """The smallest round bucket, not finer than the interval, that covers span_s in max_points."""
    wanted = max(interval_s, span_s / max_points)
    return next((b for b in NICE_BUCKETS_S if b >= wanted - 1e-9), float(math.ceil(wanted)))


def bucket_means(times: np.ndarray, columns: np.ndarray, t0: float, bucket_s: float, buckets: int) -> np.ndarray:
    """Means of each column per time bucket, ignoring NaN; NaN for an empty bucket.

    Args:
        times: (n,) timestamps.
        columns: (n, k) values.
        t0: start of the first bucket.
        bucket_s: bucket width.
        buckets: number of buckets.

    Returns:
        (buckets, k) array.
    """
    index = np.clip(((times - t0) // bucket_s).astype(np.int64), 0, buckets - 1)
    out = np.full((buckets, columns.shape[1]), np.nan)
    for k in range(columns.shape[1]):
        column = columns[:, k]
        valid = ~np.isnan(column)
        counts = np.bincount(index[valid], minlength=buckets)
        sums = np.bincount(index[valid], weights=column[valid], minlength=buckets)
        filled = counts > 0
        out[filled, k] = sums[filled] / counts[filled]
    return out


def to_json_list(values: np.ndarray, digits: int = 1) -> list[float | None]:
    """Rounded floats with None for NaN (JSON has no NaN)."""
    rounded = np.round(values.astype(float), digits)
    return [None if v != v else v for v in rounded.tolist()]


def timeline_document(data: ProfileData) -> dict[str, Any]:
    """Utilisation, per-core, memory, GPU, disk and network series in at most MAX_POINTS buckets."""
    system = data.system
    if system.samples == 0:
        return {"samples": 0}
    t0 = float(system.times[0])
    span = float(system.times[-1]) - t0 + system.interval_s
    bucket = bucket_seconds(span, system.interval_s)
    buckets = max(1, math.ceil(span / bucket))
    named: list[tuple[str, np.ndarray]] = [("cpu", system.cpu_total), ("iowait", system.iowait_total),
                                           ("memory", system.memory)]
    named += [(f"gpu:gpu{g}", system.gpu[:, g]) for g in range(system.gpus)]
    named += [(f"gpu_memory:gpu{g}", system.gpu_memory[:, g]) for g in range(system.gpus)]
    named += [(f"io:{k}", v) for k, v in sorted(system.io.items())]
    named += [(f"network:{k}", v) for k, v in sorted(system.network.items())]
    matrix = np.column_stack([v for _, v in named] + [system.cpu[:, c] for c in range(system.cores)])
    means = bucket_means(system.times, matrix, t0, bucket, buckets)
    doc: dict[str, Any] = {
        "samples": system.samples, "interval_s": system.interval_s, "t0": t0, "bucket_s": bucket,
        "times": to_json_list(t0 + np.arange(buckets) * bucket, 3),
        "gpu": {}, "gpu_memory": {}, "io": {}, "network": {},
    }
    for i, (name, _) in enumerate(named):
        values = to_json_list(means[:, i], 0 if name.startswith(("io:", "network:")) else 1)
        if ":" in name:
            group, key = name.split(":", 1)
            doc[group][key] = values
        else:
            doc[name] = values
    doc["cores"] = [to_json_list(means[:, len(named) + c], 0) for c in range(system.cores)]
    return doc


def steps_document(steps: StepRecords, params: StepOutlier = StepOutlier()) -> dict[str, Any]:
    """Step statistics: histogram with outliers, per-epoch phase means, recent steps, a bucketed timeline."""
    if steps.count == 0:
        return {"count": 0}
    normal = ~steps.profiled
    durations = steps.duration[normal] if normal.any() else steps.duration
    mean, std = float(durations.mean()), float(durations.std())
    threshold = mean + params.stddev * std
    is_outlier = (steps.duration > threshold) & normal
    edges = np.linspace(float(durations.min()), max(float(durations.max()), float(durations.min()) + 1e-6),
                        HISTOGRAM_BINS + 1)
    kept = steps.duration[normal]
    outlier_values = steps.duration[is_outlier]
    slowest = np.argsort(-np.where(is_outlier, steps.duration, -np.inf))[: min(50, int(is_outlier.sum()))]
    recent = slice(max(0, steps.count - RECENT_STEPS), steps.count)
    doc: dict[str, Any] = {
        "count": steps.count,
        "profiled_steps": int(steps.profiled.sum()),
        "mean_s": mean, "std_s": std, "threshold_s": threshold,
        "p50_s": float(np.percentile(durations, 50)), "p95_s": float(np.percentile(durations, 95)),
        "max_s": float(durations.max()), "min_s": float(durations.min()),
        "outliers": int(is_outlier.sum()),
        "images_per_s": float(steps.batch[normal].sum() / max(float(kept.sum()), 1e-9)) if normal.any() else 0.0,
        "histogram": {
            "edges": to_json_list(edges, 4),
            "normal": np.histogram(kept[kept <= threshold], bins=edges)[0].tolist(),
            "outlier": np.histogram(outlier_values, bins=edges)[0].tolist(),
        },
        "outlier_steps": [_step_row(steps, int(i)) for i in slowest],
        "recent": [_step_row(steps, i) for i in range(recent.start, recent.stop)],
        "phases_total": {p: float(steps.phases[p][normal].sum()) for p in PHASES},
        "per_epoch": _per_epoch(steps),
    }
    t0 = float(steps.start.min())
    span = float(steps.start.max()) - t0 + 1e-3
    bucket = bucket_seconds(span, 0.1)
    buckets = max(1, math.ceil(span / bucket))
    columns = np.column_stack([steps.duration, *(steps.phases[p] for p in PHASES)])
    means = bucket_means(steps.start, columns, t0, bucket, buckets)
    doc["timeline"] = {"times": to_json_list(t0 + np.arange(buckets) * bucket, 3), "bucket_s": bucket,
                       "duration": to_json_list(means[:, 0], 4),
                       **{p: to_json_list(means[:, 1 + i], 4) for i, p in enumerate(PHASES)}}
    return doc


def _step_row(steps: StepRecords, i: int) -> dict[str, Any]:
    return {"step": int(steps.step[i]), "epoch": int(steps.epoch[i]), "start": float(steps.start[i]),
            "duration": float(steps.duration[i]), "profiled": bool(steps.profiled[i]),
            **{p: float(steps.phases[p][i]) for p in PHASES}}


def _per_epoch(steps: StepRecords) -> list[dict[str, Any]]:
    rows = []
    for epoch in np.unique(steps.epoch):
        mask = (steps.epoch == epoch) & ~steps.profiled
        if not mask.any():
            continue
        seconds = float(steps.duration[mask].sum())
        rows.append({"epoch": int(epoch), "steps": int(mask.sum()), "duration": float(steps.duration[mask].mean()),
                     "images_per_s": float(steps.batch[mask].sum()) / max(seconds, 1e-9),
                     **{p: float(steps.phases[p][mask].mean()) for p in PHASES}})
    return rows


def job_phases(data: ProfileData) -> list[Phase]:
    """The recorded phases plus initialization (start to first step) and finalization (last step to end)."""
    phases = list(data.phases)
    info = data.info
    first = float(data.steps.start.min()) if data.steps.count else None
    if info.process_start is not None and first is not None:
        phases.append(Phase("initialization", info.process_start, first))
    if info.ended_at is not None and phases:
        last = max(p.end for p in phases)
        if data.steps.count:
            last = max(last, float((data.steps.start + data.steps.duration).max()))
        if info.ended_at > last:
            phases.append(Phase("finalization", last, info.ended_at))
    return sorted(phases, key=lambda p: p.start)


def time_split(phases: Sequence[Phase]) -> dict[str, float]:
    """Seconds per kind of phase (initialization, training, evaluation, finalization)."""
    split: dict[str, float] = {}
    for phase in phases:
        if phase.name == "profiler window":
            continue
        split[phase.name] = split.get(phase.name, 0.0) + max(0.0, phase.end - phase.start)
    return split


def top_operators(rows: Iterable[Mapping[str, Any]], key: str, n: int = TOP_OPERATORS) -> list[dict[str, Any]]:
    """The n operator rows with the largest ``key`` (rows without time in it left out)."""
    ranked = sorted((dict(r) for r in rows if float(r.get(key, 0) or 0) > 0), key=lambda r: -float(r[key]))
    return ranked[:n]


def merge_operator_rows(summaries: Iterable[Sequence[Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """Sums operator rows of several profiler windows by name."""
    merged: dict[str, dict[str, Any]] = {}
    for rows in summaries:
        for row in rows:
            target = merged.setdefault(str(row["name"]), {"name": row["name"], "kind": row.get("kind", "operator")})
            for key, value in row.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    target[key] = target.get(key, 0) + value
    return list(merged.values())


def build_documents(data: ProfileData, findings: Sequence[Finding], operators: Mapping[str, Any] | None,
                    *, state: str, errors: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """The documents of one analysis pass, by kind (``summary``, ``timeline``, ``steps``, ...).

    Args:
        data: what was read so far.
        findings: the rules' results on it.
        operators: the ``operators`` document (windows and top rows), or None without a window.
        state: ``collecting`` while the job runs, ``complete`` after the final pass.
        errors: problems met while reading (shown on the page and in the report).
    """
    phases = job_phases(data)
    steps = steps_document(data.steps)
    summary = {
        "state": state, "updated_at": data.now, "node_id": data.info.node_id,
        "job": {"cpus": data.info.cpus, "gpus": data.info.gpus, "gpu_names": list(data.info.gpu_names),
                "device": data.info.device, "batch_size": data.info.batch_size,
                "num_workers": data.info.num_workers, "pin_memory": data.info.pin_memory,
                "interval_ms": data.info.interval_ms, "window": data.info.window,
                "process_start": data.info.process_start, "ended_at": data.info.ended_at},
        "samples": data.system.samples, "interval_s": data.system.interval_s if data.system.samples else None,
        "cores": data.system.cores, "gpus": data.system.gpus,
        "first_sample": float(data.system.times[0]) if data.system.samples else None,
        "last_sample": float(data.system.times[-1]) if data.system.samples else None,
        "usage": usage_percentiles(data) if data.system.samples else {},
        "time_split": time_split(phases), "steps": data.steps.count,
        "images_per_s": steps.get("images_per_s"), "errors": list(errors),
        "fired": [f.rule for f in findings if f.status.fired],
    }
    return {
        "summary": summary,
        "timeline": timeline_document(data),
        "steps": steps,
        "phases": {"phases": [{"name": p.name, "start": p.start, "end": p.end, "epoch": p.epoch} for p in phases]},
        "findings": {"findings": [f.to_dict() for f in findings]},
        "operators": dict(operators) if operators else {"windows": [], "cpu": [], "gpu": []},
    }
