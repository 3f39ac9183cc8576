"""Building the arrays the rules read from SageMaker system-metrics events and the script's events."""

from __future__ import annotations

import numpy as np
import pytest

from core.profiler.data import JobInfo, StepRecords, phases_from_events, system_metrics_from_events

T = 1_800_000_000.0


def sample(t: float, cpu: tuple[float, ...], *, gpu: float | None = None, jitter: float = 0.0) -> list[tuple]:
    events: list[tuple] = []
    for i, value in enumerate(cpu):
        events += [("cpu", f"cpu{i}", "CPUUtilization", value, t + jitter * i),
                   ("cpu", f"cpu{i}", "I/OWaitPercentage", value / 10, t)]
    events.append(("memory", "MemoryUsedPercent", "Memory", 40.0, t))
    events.append(("i/o", "disks", "ReadThroughputInBytesPerSecond", 1000.0, t))
    events.append(("network", "interfaces", "ReceiveBytesPerSecond", 500.0, t))
    if gpu is not None:
        events += [("gpu", "gpu0", "GPUUtilization", gpu, t), ("gpu", "gpu0", "GPUMemoryUtilization", 25.0, t)]
    return events


def test_events_line_up_per_sample_and_core() -> None:
    events = sample(T, (10.0, 30.0), gpu=50.0) + sample(T + 0.5, (20.0, 40.0), gpu=70.0)
    metrics = system_metrics_from_events(reversed(events))
    assert metrics.samples == 2 and metrics.cores == 2 and metrics.gpus == 1
    assert metrics.interval_s == pytest.approx(0.5)
    np.testing.assert_allclose(metrics.cpu, [[10, 30], [20, 40]])
    np.testing.assert_allclose(metrics.cpu_total, [20, 30])
    np.testing.assert_allclose(metrics.iowait_total, [2, 3])
    np.testing.assert_allclose(metrics.gpu[:, 0], [50, 70])
    np.testing.assert_allclose(metrics.memory, [40, 40])
    assert set(metrics.io) == {"ReadThroughputInBytesPerSecond"} and set(metrics.network) == {"ReceiveBytesPerSecond"}


def test_timestamps_a_few_milliseconds_apart_share_a_row_and_gaps_stay_gaps() -> None:
    events = sample(T, (10.0, 30.0), jitter=0.004) + sample(T + 0.5, (20.0, 40.0), jitter=0.004)
    events += sample(T + 5.0, (60.0, 80.0))  # nine samples missing in between
    metrics = system_metrics_from_events(events, interval_s=0.5)
    assert metrics.samples == 3
    np.testing.assert_allclose(metrics.times - T, [0, 0.5, 5.0])
    np.testing.assert_allclose(metrics.cpu[:, 1], [30, 40, 80])


def test_cores_sort_numerically_and_no_gpu_gives_empty_columns() -> None:
    metrics = system_metrics_from_events(sample(T, tuple(float(i) for i in range(12))))
    np.testing.assert_allclose(metrics.cpu[0], np.arange(12))
    assert metrics.gpu.shape == (1, 0)
    assert np.isnan(metrics.gpu_total).all()


def test_no_events_give_empty_metrics() -> None:
    metrics = system_metrics_from_events([])
    assert metrics.samples == 0 and metrics.cores == 0


def test_job_info_merges_job_events_in_order() -> None:
    info = JobInfo.from_events([
        {"Type": "job", "NodeId": "algo-2", "ProcessStart": T, "Cpus": 8, "Gpus": 1, "GpuNames": ["H100"],
         "BatchSize": 64, "NumWorkers": 4, "IntervalMs": 200, "Window": "5:3"},
        {"Type": "job", "Device": "cuda:0"},
        {"Type": "job", "NumWorkers": 2, "PinMemory": True},
        {"Type": "end", "Time": T + 100},
    ])
    assert (info.node_id, info.cpus, info.gpus, info.gpu_names) == ("algo-2", 8, 1, ("H100",))
    assert (info.device, info.batch_size, info.num_workers, info.pin_memory) == ("cuda:0", 64, 2, True)
    assert (info.interval_ms, info.window, info.process_start, info.ended_at) == (200, "5:3", T, T + 100)
    assert JobInfo.from_events([]).num_workers is None


def test_steps_and_phases_from_events() -> None:
    step_events = [{"Type": "step", "Step": i, "Epoch": 1 + i // 2, "Start": T + 10 - i, "Duration": 0.1 * (i + 1),
                    "Batch": 32, "Profiled": i == 1, "Phases": {"dataloader": 0.01, "forward": 0.02}}
                   for i in range(4)]
    records = StepRecords.from_events(step_events)
    assert records.count == 4
    np.testing.assert_array_equal(records.step, [3, 2, 1, 0])  # by start time
    np.testing.assert_array_equal(records.profiled, [False, False, True, False])
    np.testing.assert_allclose(records.phases["forward"], 0.02)
    np.testing.assert_allclose(records.phases["optimizer"], 0.0)
    phases = phases_from_events([{"Type": "phase", "Name": "evaluation", "Start": T + 5, "End": T + 6},
                                 {"Type": "phase", "Name": "training", "Epoch": 1, "Start": T, "End": T + 5},
                                 {"Type": "step", "Start": T}])
    assert [(p.name, p.epoch) for p in phases] == [("training", 1), ("evaluation", None)]
