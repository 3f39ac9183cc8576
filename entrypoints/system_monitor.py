"""The system monitor of the training script: SageMaker system-metrics JSON lines, one file a minute.

Writes ``<root>/<YYYYMMDDHH>/<minute-epoch-s>.<node>.json`` lines such as::

    {"Type":"cpu","Name":"cpu0","Dimension":"CPUUtilization","Value":8.0,"NodeId":"algo-1","Timestamp":1591160899.757}

per core (CPUUtilization, I/OWaitPercentage), memory (MemoryUsedPercent), disks (IOPS,
Read/WriteThroughputInBytesPerSecond), network (Receive/TransmitBytesPerSecond) and, through
nvidia-ml-py, per GPU (GPUUtilization, GPUMemoryUtilization). Used by ``profiling.py``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

import psutil

LOG = logging.getLogger("train.profiling")
ROTATE_S = 60


def node_id() -> str:
    """SageMaker's node name: ``$SM_CURRENT_HOST`` when it is ``algo-N``, else ``algo-1``."""
    host = os.environ.get("SM_CURRENT_HOST", "")
    return host if re.fullmatch(r"algo-\d+", host) else "algo-1"


class MinuteFiles:
    """Appends JSON lines to ``<root>/<YYYYMMDDHH>/<minute>.<node>.json``, a new file every minute.

    The lines of one :meth:`write` go out in one system call, so a reader sees whole samples
    except at most a partial last line (which smdebug's reader skips). Used by one thread.
    """

    def __init__(self, root: Path, node: str) -> None:
        self.root = root
        self.node = node
        self._minute = -1
        self._handle: Any = None

    def write(self, lines: list[str], timestamp: float) -> None:
        minute = int(timestamp // ROTATE_S) * ROTATE_S
        if minute != self._minute:
            self._open(minute)
        self._handle.write("".join(line + "\n" for line in lines))
        self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def _open(self, minute: int) -> None:
        self.close()
        folder = self.root / time.strftime("%Y%m%d%H", time.gmtime(minute))
        folder.mkdir(parents=True, exist_ok=True)
        self._handle = open(folder / f"{minute}.{self.node}.json", "a", encoding="utf-8")
        self._minute = minute


class GpuReader:
    """GPU utilisation and memory through nvidia-ml-py; ``count`` is 0 without a driver or GPU."""

    def __init__(self, nvml: Any = None) -> None:
        self.handles: list[Any] = []
        self.names: list[str] = []
        self._nvml = nvml
        try:
            if self._nvml is None:
                import pynvml as nvml_module

                self._nvml = nvml_module
            self._nvml.nvmlInit()
            for i in range(self._nvml.nvmlDeviceGetCount()):
                handle = self._nvml.nvmlDeviceGetHandleByIndex(i)
                self.handles.append(handle)
                name = self._nvml.nvmlDeviceGetName(handle)
                self.names.append(name.decode() if isinstance(name, bytes) else str(name))
        except Exception:  # no library, no driver, no device: a CPU-only job
            self.handles = []

    @property
    def count(self) -> int:
        return len(self.handles)

    def read(self) -> list[tuple[float, float]]:
        """(utilisation %, memory used %) per GPU."""
        out = []
        for handle in self.handles:
            rates = self._nvml.nvmlDeviceGetUtilizationRates(handle)
            memory = self._nvml.nvmlDeviceGetMemoryInfo(handle)
            out.append((float(rates.gpu), 100.0 * float(memory.used) / max(float(memory.total), 1.0)))
        return out

    def close(self) -> None:
        if self.handles:
            with contextlib.suppress(Exception):
                self._nvml.nvmlShutdown()


class SystemMonitor(threading.Thread):
    """Samples the machine every ``interval_s`` on a fixed schedule and writes system-metrics lines."""

    def __init__(self, files: MinuteFiles, node: str, interval_s: float, gpus: GpuReader) -> None:
        super().__init__(name="profiler-system-monitor", daemon=True)
        self.files = files
        self.node = node
        self.interval_s = interval_s
        self.gpus = gpus
        self._stop_event = threading.Event()
        self._cpu = psutil.cpu_times(percpu=True)
        self._disk = psutil.disk_io_counters()
        self._net = psutil.net_io_counters()
        self._last = time.monotonic()

    def run(self) -> None:
        next_at = time.monotonic() + self.interval_s
        while not self._stop_event.wait(max(0.0, next_at - time.monotonic())):
            try:
                self.sample()
            except Exception as exc:  # a failed sample must not take the training down
                LOG.warning("profiler: system sample failed: %s", exc)
            next_at += self.interval_s
            if next_at < time.monotonic():  # fell behind (suspended machine): skip, don't burst
                next_at = time.monotonic() + self.interval_s
        self.sample()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)
        self.files.close()

    def sample(self) -> None:
        """One sample: every series with one timestamp, written in one call."""
        now, mono = time.time(), time.monotonic()
        elapsed = max(mono - self._last, 1e-6)
        self._last = mono
        lines = []

        def add(kind: str, name: str, dimension: str, value: float) -> None:
            lines.append(json.dumps({"Type": kind, "Name": name, "Dimension": dimension, "Value": round(value, 2),
                                     "NodeId": self.node, "Timestamp": round(now, 3)}))

        cpu = psutil.cpu_times(percpu=True)
        for i, (before, after) in enumerate(zip(self._cpu, cpu)):
            busy, iowait = _cpu_shares(before, after)
            add("cpu", f"cpu{i}", "CPUUtilization", busy)
            add("cpu", f"cpu{i}", "I/OWaitPercentage", iowait)
        self._cpu = cpu
        add("memory", "MemoryUsedPercent", "Memory", psutil.virtual_memory().percent)
        disk = psutil.disk_io_counters()
        if disk is not None and self._disk is not None:
            ops = (disk.read_count - self._disk.read_count) + (disk.write_count - self._disk.write_count)
            add("i/o", "disks", "IOPS", ops / elapsed)
            add("i/o", "disks", "ReadThroughputInBytesPerSecond", (disk.read_bytes - self._disk.read_bytes) / elapsed)
            add("i/o", "disks", "WriteThroughputInBytesPerSecond", (disk.write_bytes - self._disk.write_bytes) / elapsed)
        self._disk = disk
        net = psutil.net_io_counters()
        if net is not None and self._net is not None:
            add("network", "interfaces", "ReceiveBytesPerSecond", (net.bytes_recv - self._net.bytes_recv) / elapsed)
            add("network", "interfaces", "TransmitBytesPerSecond", (net.bytes_sent - self._net.bytes_sent) / elapsed)
        self._net = net
        for i, (util, memory) in enumerate(self.gpus.read()):
            add("gpu", f"gpu{i}", "GPUUtilization", util)
            add("gpu", f"gpu{i}", "GPUMemoryUtilization", memory)
        self.files.write(lines, now)


def _cpu_total(times: Any) -> float:
    """All time of a core; guest time is already inside user and nice on Linux."""
    return float(sum(times)) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)


def _cpu_shares(before: Any, after: Any) -> tuple[float, float]:
    """(busy %, iowait %) of one core between two psutil cpu_times readings."""
    total = _cpu_total(after) - _cpu_total(before)
    if total <= 0:
        return 0.0, 0.0
    idle = (after.idle - before.idle) + (getattr(after, "iowait", 0.0) - getattr(before, "iowait", 0.0))
    iowait = getattr(after, "iowait", 0.0) - getattr(before, "iowait", 0.0)
    return max(0.0, min(100.0, 100.0 * (total - idle) / total)), max(0.0, min(100.0, 100.0 * iowait / total))
