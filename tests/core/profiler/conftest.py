"""Synthetic profiler data: system samples and steps built from plain arrays."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from core.profiler.data import PHASES, JobInfo, Phase, ProfileData, StepRecords, SystemMetrics

T0 = 1_800_000_000.0


def system(n: int, *, cores: int = 4, gpus: int = 1, cpu: Any = 50.0, iowait: Any = 0.0, gpu: Any = 80.0,
           gpu_memory: Any = 80.0, memory: Any = 30.0, interval_s: float = 0.5) -> SystemMetrics:
    """n samples; each value is a scalar, an (n,) array (same for every core/GPU) or an (n, k) array."""

    def matrix(value: Any, width: int) -> np.ndarray:
        array = np.asarray(value, dtype=float)
        if array.ndim == 0:
            return np.full((n, width), float(array))
        return array.reshape(n, -1) if array.ndim == 2 else np.repeat(array[:, None], width, axis=1)

    return SystemMetrics(
        times=T0 + interval_s * np.arange(n), interval_s=interval_s, cpu=matrix(cpu, cores),
        iowait=matrix(iowait, cores), memory=np.broadcast_to(np.asarray(memory, dtype=float), (n,)).copy(),
        gpu=matrix(gpu, gpus), gpu_memory=matrix(gpu_memory, gpus),
        io={"ReadThroughputInBytesPerSecond": np.full(n, 1e6)}, network={"ReceiveBytesPerSecond": np.full(n, 2e5)},
    )


def steps(durations: Any, *, profiled: Any = None, dataloader_share: float = 0.1, epoch_every: int = 0,
          batch: int = 32, start: float = T0 + 30) -> StepRecords:
    durations = np.asarray(durations, dtype=float)
    n = durations.shape[0]
    starts = start + np.concatenate([[0.0], np.cumsum(durations)[:-1]])
    rest = (1 - dataloader_share) / (len(PHASES) - 1)
    phases = {p: durations * (dataloader_share if p == "dataloader" else rest) for p in PHASES}
    return StepRecords(
        step=np.arange(n), epoch=(np.arange(n) // epoch_every + 1) if epoch_every else np.ones(n, dtype=int),
        start=starts, duration=durations, batch=np.full(n, batch),
        profiled=np.zeros(n, dtype=bool) if profiled is None else np.asarray(profiled, dtype=bool), phases=phases,
    )


def data(system_metrics: SystemMetrics | None = None, step_records: StepRecords | None = None, *,
         info: JobInfo | None = None, phases: tuple[Phase, ...] = (), now: float = T0 + 3600) -> ProfileData:
    return ProfileData(
        system=system_metrics if system_metrics is not None else system(10),
        steps=step_records if step_records is not None else steps(np.full(20, 0.1)),
        phases=phases,
        info=info or JobInfo(process_start=T0, cpus=4, gpus=1, num_workers=4, batch_size=32, device="cuda"),
        now=now,
    )


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)
