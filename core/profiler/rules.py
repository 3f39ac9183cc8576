"""The ProfilerReport rules, by name, with SageMaker's default parameters.

Each rule is a function ``rule(data, params) -> Finding`` over a :class:`ProfileData`, and
:data:`RULES` maps the rule names to ``(function, default parameters)``. Windows and
patience count samples of the system monitor, as SageMaker's rules count data points; a
rule that cannot judge says why (:class:`RuleStatus`). Pure numpy: the sidecar runs them
job-side, the tests run them on synthetic metrics.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from core.profiler.data import ProfileData
from core.profiler.entities import Finding, RuleStatus

NO_GPU = "no GPU in this job"


@dataclass(frozen=True)
class LowGPUUtilization:
    threshold_p95: float = 70.0
    threshold_p5: float = 10.0
    window: int = 500
    patience: int = 1000


@dataclass(frozen=True)
class CPUBottleneck:
    threshold: float = 50.0
    gpu_threshold: float = 10.0
    cpu_threshold: float = 90.0
    patience: int = 1000


@dataclass(frozen=True)
class IOBottleneck:
    threshold: float = 50.0
    gpu_threshold: float = 10.0
    io_threshold: float = 50.0
    patience: int = 1000


@dataclass(frozen=True)
class BatchSize:
    cpu_threshold_p95: float = 70.0
    gpu_threshold_p95: float = 70.0
    gpu_memory_threshold_p95: float = 70.0
    patience: int = 1000
    window: int = 500


@dataclass(frozen=True)
class StepOutlier:
    stddev: float = 3.0
    n_outliers: int = 10


@dataclass(frozen=True)
class Dataloader:
    min_threshold: float = 70.0
    max_threshold: float = 200.0


@dataclass(frozen=True)
class GPUMemoryIncrease:
    increase: float = 5.0
    patience: int = 1000
    window: int = 10


@dataclass(frozen=True)
class MaxInitializationTime:
    threshold: float = 20.0  # minutes


@dataclass(frozen=True)
class LoadBalancing:
    threshold: float = 0.5
    patience: int = 1000


@dataclass(frozen=True)
class OverallSystemUsage:
    pass


def _finding(name: str, params: Any, status: RuleStatus, message: str, recommendation: str = "",
             triggered_at: float | None = None, **details: Any) -> Finding:
    return Finding(rule=name, status=status, message=message, recommendation=recommendation if status.fired else "",
                   parameters=asdict(params), details=details, triggered_at=triggered_at)


def _gpu_missing(name: str, params: Any, data: ProfileData) -> Finding | None:
    if data.system.gpus == 0:
        return _finding(name, params, RuleStatus.NOT_APPLICABLE,
                        f"{NO_GPU}: the rule looks at GPU utilisation, so it does not apply to a CPU-only run.")
    return None


def _after_patience(name: str, params: Any, data: ProfileData, patience: int, needed: int = 1) -> Finding | int:
    """The first row to judge, or a Finding saying that too few samples exist yet."""
    samples = data.system.samples
    if samples - patience < needed:
        return _finding(name, params, RuleStatus.INSUFFICIENT_DATA,
                        f"{samples} samples so far; the rule skips the first {patience} (patience) and needs "
                        f"{needed} more to judge ({(patience + needed) * data.system.interval_s / 60:.1f} min at "
                        f"{data.system.interval_s * 1000:.0f} ms).")
    return patience


def _windows(values: np.ndarray, size: int) -> list[np.ndarray]:
    return [values[i:i + size] for i in range(0, values.shape[0] - size + 1, size)]


def low_gpu_utilization(data: ProfileData, params: LowGPUUtilization = LowGPUUtilization()) -> Finding:
    """p95 of GPU utilisation under threshold_p95 (underused), or p5 under threshold_p5 (fluctuating)."""
    name = "LowGPUUtilization"
    start = _gpu_missing(name, params, data) or _after_patience(name, params, data, params.patience, params.window)
    if isinstance(start, Finding):
        return start
    low: dict[str, int] = {}
    fluctuating: dict[str, int] = {}
    first: float | None = None
    for g in range(data.system.gpus):
        column = data.system.gpu[start:, g]
        for i, window in enumerate(_windows(column, params.window)):
            p95, p5 = np.nanpercentile(window, 95), np.nanpercentile(window, 5)
            if p95 < params.threshold_p95:
                low[f"gpu{g}"] = low.get(f"gpu{g}", 0) + 1
            elif p5 < params.threshold_p5:
                fluctuating[f"gpu{g}"] = fluctuating.get(f"gpu{g}", 0) + 1
            else:
                continue
            first = first or float(data.system.times[start + i * params.window])
    if not low and not fluctuating:
        return _finding(name, params, RuleStatus.NO_ISSUES_FOUND, "GPU utilisation stayed high and steady in every window.")
    parts = [f"{g}: {n} window(s) with p95 < {params.threshold_p95:g}%" for g, n in low.items()]
    parts += [f"{g}: {n} window(s) fluctuating (p5 < {params.threshold_p5:g}%)" for g, n in fluctuating.items()]
    return _finding(name, params, RuleStatus.ISSUES_FOUND, "; ".join(parts) + ".",
                    "The GPU waits: raise the batch size, add data-loader workers, or pick a smaller GPU instance. "
                    "Fluctuations point to a bottleneck between steps (data loading, pre-processing, logging).",
                    first, low_windows=low, fluctuating_windows=fluctuating)


def _share_rule(name: str, params: Any, data: ProfileData, values: np.ndarray, threshold: float,
                what: str, recommendation: str) -> Finding:
    start = _gpu_missing(name, params, data) or _after_patience(name, params, data, params.patience)
    if isinstance(start, Finding):
        return start
    gpu = data.system.gpu_total[start:]
    busy = (values[start:] > threshold) & (gpu < params.gpu_threshold)
    share = 100.0 * float(busy.sum()) / busy.shape[0]
    fired = share > params.threshold
    first = float(data.system.times[start + int(np.argmax(busy))]) if busy.any() else None
    message = (f"{what} > {threshold:g}% while the GPU was < {params.gpu_threshold:g}% in {share:.1f}% of "
               f"{busy.shape[0]} samples (fires above {params.threshold:g}%).")
    return _finding(name, params, RuleStatus.ISSUES_FOUND if fired else RuleStatus.NO_ISSUES_FOUND, message,
                    recommendation, first if fired else None, share_percent=share, samples=int(busy.shape[0]))


def cpu_bottleneck(data: ProfileData, params: CPUBottleneck = CPUBottleneck()) -> Finding:
    """CPU above cpu_threshold while the GPU is below gpu_threshold, for more than threshold % of the time."""
    return _share_rule("CPUBottleneck", params, data, data.system.cpu_total, params.cpu_threshold, "CPU",
                       "The CPU starves the GPU: move pre-processing to the GPU or offline, add data-loader "
                       "workers, or choose an instance with more cores per GPU.")


def io_bottleneck(data: ProfileData, params: IOBottleneck = IOBottleneck()) -> Finding:
    """I/O wait above io_threshold while the GPU is below gpu_threshold, for more than threshold % of the time."""
    return _share_rule("IOBottleneck", params, data, data.system.iowait_total, params.io_threshold, "I/O wait",
                       "Reading data blocks the GPU: pre-fetch, pack small files into larger shards, use "
                       "faster storage (local NVMe, FSx) or Pipe/FastFile input modes.")


def batch_size(data: ProfileData, params: BatchSize = BatchSize()) -> Finding:
    """CPU p95, GPU p95 and GPU-memory p95 all under their thresholds in a window: the batch could grow."""
    name = "BatchSize"
    start = _gpu_missing(name, params, data) or _after_patience(name, params, data, params.patience, params.window)
    if isinstance(start, Finding):
        return start
    cpu = data.system.cpu_total[start:]
    small, first = 0, None
    for g in range(data.system.gpus):
        gpu, memory = data.system.gpu[start:, g], data.system.gpu_memory[start:, g]
        for i in range(0, cpu.shape[0] - params.window + 1, params.window):
            part = slice(i, i + params.window)
            if (np.nanpercentile(cpu[part], 95) < params.cpu_threshold_p95
                    and np.nanpercentile(gpu[part], 95) < params.gpu_threshold_p95
                    and np.nanpercentile(memory[part], 95) < params.gpu_memory_threshold_p95):
                small += 1
                first = first or float(data.system.times[start + i])
    if not small:
        return _finding(name, params, RuleStatus.NO_ISSUES_FOUND, "CPU, GPU or GPU memory was well used in every window.")
    return _finding(name, params, RuleStatus.ISSUES_FOUND,
                    f"{small} window(s) where CPU, GPU and GPU memory p95 all stayed under 70%: the batch is small "
                    "for this instance.",
                    "Raise the batch size (and the learning rate with it), or move to a smaller instance.",
                    first, windows=small)


def step_outlier(data: ProfileData, params: StepOutlier = StepOutlier()) -> Finding:
    """Training steps slower than mean + stddev·σ; fires from n_outliers of them (profiled steps excluded)."""
    name = "StepOutlier"
    keep = ~data.steps.profiled
    durations, starts = data.steps.duration[keep], data.steps.start[keep]
    if durations.shape[0] < 2:
        return _finding(name, params, RuleStatus.INSUFFICIENT_DATA,
                        f"{durations.shape[0]} timed training step(s) so far; at least 2 are needed.")
    mean, std = float(durations.mean()), float(durations.std())
    threshold = mean + params.stddev * std
    outliers = np.flatnonzero(durations > threshold)
    fired = outliers.shape[0] >= params.n_outliers
    message = (f"{outliers.shape[0]} of {durations.shape[0]} steps took longer than {threshold * 1000:.0f} ms "
               f"(mean {mean * 1000:.0f} ms + {params.stddev:g}σ, σ = {std * 1000:.0f} ms); fires from "
               f"{params.n_outliers}.")
    return _finding(name, params, RuleStatus.ISSUES_FOUND if fired else RuleStatus.NO_ISSUES_FOUND, message,
                    "Look at what the slow steps share: checkpointing, evaluation, logging, data-loader restarts "
                    "at epoch starts, or other processes on the machine.",
                    float(starts[outliers[0]]) if fired else None,
                    outliers=int(outliers.shape[0]), threshold_s=threshold, mean_s=mean, std_s=std)


def dataloader(data: ProfileData, params: Dataloader = Dataloader()) -> Finding:
    """Data-loader workers under min_threshold % or over max_threshold % of the CPU cores."""
    name = "Dataloader"
    info = data.info
    if info.num_workers is None or info.cpus <= 0:
        return _finding(name, params, RuleStatus.INSUFFICIENT_DATA,
                        "the training script has not reported its data-loader workers and cores yet.")
    ratio = 100.0 * info.num_workers / info.cpus
    loading = float(data.steps.phases["dataloader"].sum()) if data.steps.count else 0.0
    total = float(data.steps.duration.sum()) if data.steps.count else 0.0
    share = 100.0 * loading / total if total > 0 else 0.0
    details: dict[str, Any] = {"num_workers": info.num_workers, "cpus": info.cpus, "workers_percent": ratio,
                               "dataloading_percent": share, "pin_memory": info.pin_memory}
    where = "in the training process itself (num-workers=0)" if info.num_workers == 0 else \
        f"in {info.num_workers} worker process(es)"
    message = (f"Data is loaded {where} on {info.cpus} cores: {ratio:.0f}% of the cores (fires outside "
               f"{params.min_threshold:g}–{params.max_threshold:g}%). Waiting for data took {share:.1f}% of the "
               "training step time.")
    low, high = ratio < params.min_threshold, ratio > params.max_threshold
    if low or high:
        advice = (f"Use more data-loader workers (num-workers={info.cpus} for {info.cpus} cores) so images are decoded "
                  "and augmented in parallel with the training step." if low else
                  f"Use fewer data-loader workers (at most {int(info.cpus * params.max_threshold / 100)}): too many "
                  "processes compete for the cores and memory.")
        return _finding(name, params, RuleStatus.ISSUES_FOUND, message, advice, data.info.process_start, **details)
    if info.device.startswith("cuda") and not info.pin_memory:
        message += " pin_memory is off on a GPU job: host-to-device copies cannot overlap."
    return _finding(name, params, RuleStatus.NO_ISSUES_FOUND, message, **details)


def gpu_memory_increase(data: ProfileData, params: GPUMemoryIncrease = GPUMemoryIncrease()) -> Finding:
    """The mean GPU memory of a window of `window` samples exceeds the previous window's by > increase points."""
    name = "GPUMemoryIncrease"
    start = _gpu_missing(name, params, data) or _after_patience(name, params, data, params.patience, 2 * params.window)
    if isinstance(start, Finding):
        return start
    worst, first = 0.0, None
    for g in range(data.system.gpus):
        column = np.nan_to_num(data.system.gpu_memory[start:, g])
        sums = np.concatenate([[0.0], np.cumsum(column)])
        means = (sums[params.window:] - sums[:-params.window]) / params.window
        growth = means[params.window:] - means[:-params.window]
        if growth.size and growth.max() > worst:
            worst = float(growth.max())
            over = np.flatnonzero(growth > params.increase)
            if over.size:
                first = float(data.system.times[start + over[0] + 2 * params.window - 1])
    fired = worst > params.increase
    message = (f"the largest rise of mean GPU memory from one {params.window}-sample window to the next was "
               f"{worst:.1f} points (fires above {params.increase:g}).")
    return _finding(name, params, RuleStatus.ISSUES_FOUND if fired else RuleStatus.NO_ISSUES_FOUND, message,
                    "GPU memory keeps growing: look for tensors kept across steps (losses appended without "
                    ".item(), caches), or a batch size too close to the memory limit.",
                    first if fired else None, max_increase=worst)


def max_initialization_time(data: ProfileData, params: MaxInitializationTime = MaxInitializationTime()) -> Finding:
    """Time from the training process's start to its first step over threshold minutes."""
    name = "MaxInitializationTime"
    start = data.info.process_start
    if start is None:
        return _finding(name, params, RuleStatus.INSUFFICIENT_DATA, "the training script has not reported its start yet.")
    limit = params.threshold * 60
    if data.steps.count == 0:
        waited = data.now - start
        if waited > limit:
            return _finding(name, params, RuleStatus.ISSUES_FOUND,
                            f"no training step after {waited / 60:.1f} min (limit {params.threshold:g} min).",
                            _INIT_ADVICE, start + limit, initialization_s=waited)
        return _finding(name, params, RuleStatus.INSUFFICIENT_DATA,
                        f"no training step yet ({waited:.0f} s since the start).")
    init = float(data.steps.start.min()) - start
    fired = init > limit
    return _finding(name, params, RuleStatus.ISSUES_FOUND if fired else RuleStatus.NO_ISSUES_FOUND,
                    f"initialisation took {init:.1f} s before the first step (limit {params.threshold:g} min).",
                    _INIT_ADVICE, start + limit if fired else None, initialization_s=init)


_INIT_ADVICE = ("Start-up is slow: use FastFile or Pipe input instead of downloading the whole data set, "
                "cache pre-processed data, and load weights from local disk.")


def load_balancing(data: ProfileData, params: LoadBalancing = LoadBalancing()) -> Finding:
    """Histograms of utilisation of two GPUs further apart (total variation) than threshold."""
    name = "LoadBalancing"
    missing = _gpu_missing(name, params, data)
    if missing:
        return missing
    if data.system.gpus < 2:
        return _finding(name, params, RuleStatus.NOT_APPLICABLE, "one GPU: there is no load to balance.")
    start = _after_patience(name, params, data, params.patience)
    if isinstance(start, Finding):
        return start
    bins = np.linspace(0, 100, 21)
    hists = []
    for g in range(data.system.gpus):
        column = data.system.gpu[start:, g]
        counts, _ = np.histogram(column[~np.isnan(column)], bins=bins)
        hists.append(counts / max(counts.sum(), 1))
    worst, pair = 0.0, ("", "")
    for a in range(len(hists)):
        for b in range(a + 1, len(hists)):
            distance = 0.5 * float(np.abs(hists[a] - hists[b]).sum())
            if distance > worst:
                worst, pair = distance, (f"gpu{a}", f"gpu{b}")
    fired = worst > params.threshold
    return _finding(name, params, RuleStatus.ISSUES_FOUND if fired else RuleStatus.NO_ISSUES_FOUND,
                    f"the most different GPUs ({pair[0]}, {pair[1]}) are {worst:.2f} apart (fires above "
                    f"{params.threshold:g}).",
                    "Work is spread unevenly over the GPUs: check the data-parallel set-up and per-rank batch sizes.",
                    float(data.system.times[start]) if fired else None, distance=worst, pair=list(pair))


def overall_system_usage(data: ProfileData, params: OverallSystemUsage = OverallSystemUsage()) -> Finding:
    """Percentiles of each resource on the node (never fires)."""
    name = "OverallSystemUsage"
    if data.system.samples == 0:
        return _finding(name, params, RuleStatus.INSUFFICIENT_DATA, "no system-metrics samples yet.")
    usage = usage_percentiles(data)
    text = ", ".join(f"{k} p95 {v['p95']:.0f}%" for k, v in usage.items() if k in ("CPU", "GPU", "Memory"))
    return _finding(name, params, RuleStatus.NO_ISSUES_FOUND, f"{data.info.node_id}: {text}.", usage=usage)


def usage_percentiles(data: ProfileData) -> dict[str, dict[str, float]]:
    """Max, p99, p95, p50, min per resource (the ProfilerReport's system usage table)."""
    system = data.system
    columns: dict[str, np.ndarray] = {"CPU": system.cpu_total, "I/O wait": system.iowait_total, "Memory": system.memory}
    if system.gpus:
        columns["GPU"] = system.gpu_total
        columns["GPU memory"] = system.gpu_memory_total
    columns.update({f"network {k}": v for k, v in system.network.items()})
    columns.update({f"disk {k}": v for k, v in system.io.items()})
    table = {}
    for key, values in columns.items():
        values = values[~np.isnan(values)]
        if values.size:
            p = np.percentile(values, [100, 99, 95, 50, 0])
            table[key] = {"max": float(p[0]), "p99": float(p[1]), "p95": float(p[2]), "p50": float(p[3]), "min": float(p[4])}
    return table


Rule = Callable[[ProfileData, Any], Finding]

RULES: Mapping[str, tuple[Rule, Any]] = {
    "LowGPUUtilization": (low_gpu_utilization, LowGPUUtilization()),
    "CPUBottleneck": (cpu_bottleneck, CPUBottleneck()),
    "IOBottleneck": (io_bottleneck, IOBottleneck()),
    "BatchSize": (batch_size, BatchSize()),
    "StepOutlier": (step_outlier, StepOutlier()),
    "Dataloader": (dataloader, Dataloader()),
    "GPUMemoryIncrease": (gpu_memory_increase, GPUMemoryIncrease()),
    "MaxInitializationTime": (max_initialization_time, MaxInitializationTime()),
    "LoadBalancing": (load_balancing, LoadBalancing()),
    "OverallSystemUsage": (overall_system_usage, OverallSystemUsage()),
}


def evaluate_rules(data: ProfileData, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> list[Finding]:
    """Every rule of :data:`RULES` on data, with parameters overridden per rule name.

    Raises:
        ValueError: an override names an unknown rule or parameter.
    """
    overrides = overrides or {}
    unknown = set(overrides) - set(RULES)
    if unknown:
        raise ValueError(f"unknown profiler rule(s) {sorted(unknown)}; known: {sorted(RULES)}")
    findings = []
    for name, (rule, defaults) in RULES.items():
        try:
            params = type(defaults)(**{**asdict(defaults), **overrides.get(name, {})})
        except TypeError as exc:
            raise ValueError(f"{name}: {exc}") from None
        with warnings.catch_warnings():  # all-NaN windows (gaps in the samples) are judged as no data
            warnings.simplefilter("ignore", RuntimeWarning)
            findings.append(rule(data, params))
    return findings
