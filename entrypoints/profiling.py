"""The training script's own profiler: system monitor, step and phase timer, a torch.profiler window.

Everything lands under ``<profiler-dir>`` (default ``$SM_OUTPUT_DATA_DIR/profiler-output``) in
SageMaker's layout, so the same files are read for local, SageMaker and EC2 runs:

- ``system/incremental/<YYYYMMDDHH>/<minute-epoch-s>.<node>.json``: SageMaker system-metrics JSON
  lines (CPU per core, I/O wait, memory, disk, network, GPU), one file per minute, read by
  smdebug's system-metrics readers; written by ``system_monitor.py``'s thread.
- ``framework/events/<YYYYMMDDHH>/<minute-epoch-s>.<node>.json``: JSON lines of the job
  (``{"Type":"job"}``: cores, GPUs, batch size, workers), each training step (``"step"``: start,
  duration, and its phases dataloader/forward/backward/optimizer/other), phases
  (``"phase"``: training and evaluation per epoch, the profiler window) and the end (``"end"``).
- ``framework/pytorch/<epoch-s>_<node>.pt.trace.json.gz``: the Chrome/Perfetto trace of a bounded
  torch.profiler window (CPU and CUDA activities, memory), and ``..._operators.json``, its
  operator summary (calls, self and total CPU/device time, memory) by operator.

With ``--profile-out-dir s3://...`` (``{job_name}`` stands for ``$TRAINING_JOB_NAME``; the
console's SageMaker runner sets it), the first host (``algo-1``) also uploads these files there
as it trains, every few seconds and once more at the end (``s3_sync.FolderUploader``), where
the console's profiler analysis reads them; a folder there is where the files are written.

The script calls :func:`add_arguments`, runs inside :func:`session`, calls :func:`attach` once
the model exists, and iterates its loaders through :func:`steps` and :func:`evaluation`; all
of them do nothing when profiling is off. One session is active per process (like
torch.profiler's), which keeps the training loop's signatures unchanged.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psutil
import torch

from debug_config import JOB_NAME_PLACEHOLDER
from hyperparameters import parse_bool
from s3_sync import FolderUploader, split_s3_uri
from system_monitor import GpuReader, MinuteFiles, SystemMonitor, node_id

LOG = logging.getLogger("train.profiling")
PROFILER_DIR_NAME = "profiler-output"
UPLOADING_NODE = "algo-1"  # one analysis per job reads one node (see analysers/profiler_sidecar.py)
INTERVALS_MS = (100, 200, 500, 1000, 5000, 60000)
PHASE_LABELS = ("dataloader", "forward", "backward", "optimizer")
T = TypeVar("T")

_ACTIVE: ProfilingSession | None = None


# --- command line -------------------------------------------------------------------------


def parse_window(value: str) -> tuple[int, int] | None:
    """``"start:steps"`` (e.g. ``5:3``) to (start, steps); ``off``/``0``/empty to None.

    Raises:
        argparse.ArgumentTypeError: not of that form, or steps < 1.
    """
    text = value.strip().lower()
    if text in ("", "0", "off", "none", "false"):
        return None
    match = re.fullmatch(r"(\d+):(\d+)", text)
    if not match or int(match.group(2)) < 1:
        raise argparse.ArgumentTypeError(f"expected START:STEPS such as 5:3 (or off), got {value!r}")
    return int(match.group(1)), int(match.group(2))


def _interval(value: str) -> int:
    number = int(value)
    if number not in INTERVALS_MS:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(map(str, INTERVALS_MS))} ms, got {value}")
    return number


def _location(value: str) -> str:
    """An ``s3://bucket/prefix`` URI or a folder."""
    if value.startswith("s3://"):
        try:
            split_s3_uri(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    elif "://" in value or not value.strip():
        raise argparse.ArgumentTypeError(f"expected an s3:// URI or a folder, got {value!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The profiler's hyperparameters: --profile, --profile-interval-ms, --profile-window, --profiler-dir,
    --profile-out-dir."""
    add = parser.add_argument
    add("--profile", type=parse_bool, default=True,
        help="record system metrics, step phases and a torch.profiler window")
    add("--profile-interval-ms", type=_interval, default=500, help="system-metrics sampling interval (SageMaker's)")
    add("--profile-window", type=parse_window, default=(5, 3), metavar="START:STEPS",
        help="torch.profiler window: first step (0-based) and number of steps; off to skip")
    add("--profiler-dir", type=Path, default=None,
        help="where profiler output goes; unset: $SM_OUTPUT_DATA_DIR/profiler-output")
    add("--profile-out-dir", type=_location, default=None,
        help=f"s3:// URI the profiler output is uploaded to as the job trains, or a folder it is written to "
             f"(--profiler-dir wins); {JOB_NAME_PLACEHOLDER} stands for $TRAINING_JOB_NAME")


# --- steps, phases and the torch.profiler window ---------------------------------------------


class _Marks:
    """Boundaries of the current training step, set by the loop wrapper and the module hooks."""

    __slots__ = ("batch", "cuda", "data_end", "epoch", "fwd_end", "fwd_start", "opt_end", "opt_start", "start")

    def __init__(self, start: float, epoch: int) -> None:
        self.start = start
        self.epoch = epoch
        self.batch = 0
        self.data_end = self.fwd_start = self.fwd_end = self.opt_start = self.opt_end = 0.0
        self.cuda: dict[str, Any] = {}


# Which trace ranges a mark closes and opens inside the profiler window.
_TRANSITIONS = {"fwd_start": (None, "forward"), "fwd_end": ("forward", "backward"),
                "opt_start": ("backward", "optimizer"), "opt_end": ("optimizer", None)}


class ProfilingSession:
    """One process's profiler: the monitor thread, the events file, step timing, the window.

    Args:
        out_dir: the ``profiler-output`` folder.
        interval_ms: system sampling interval.
        window: (first step, steps) of the torch.profiler window, or None.
        facts: job facts for the ``job`` event (batch size, workers, ...).
        gpus: the GPU reader (a fake one in tests).
    """

    def __init__(self, out_dir: Path, *, interval_ms: int, window: tuple[int, int] | None,
                 facts: dict[str, Any], gpus: GpuReader | None = None) -> None:
        self.out_dir = Path(out_dir)
        self.node = node_id()
        self.window = window
        self.gpus = gpus or GpuReader()
        self.events = MinuteFiles(self.out_dir / "framework" / "events", self.node)
        self.monitor = SystemMonitor(MinuteFiles(self.out_dir / "system" / "incremental", self.node), self.node,
                                     interval_ms / 1000, self.gpus)
        self.global_step = 0
        self.device_type = "cpu"
        self._wall_offset = time.time() - time.perf_counter()
        self._marks: _Marks | None = None
        self._pending: list[tuple[dict[str, Any], _Marks]] = []
        self._profiler: Any = None
        self._window_started = 0.0
        self._labels: dict[str, Any] = {}
        self._hooks: list[Any] = []
        self._write_failed = False
        job = {"Type": "job", "Time": time.time(), "NodeId": self.node, "Pid": os.getpid(),
               "ProcessStart": psutil.Process().create_time(), "Cpus": psutil.cpu_count() or 1,
               "Gpus": self.gpus.count, "GpuNames": self.gpus.names, "IntervalMs": interval_ms,
               "Window": f"{window[0]}:{window[1]}" if window else "off", **facts}
        self.events.write([json.dumps(job)], time.time())  # raises here when out_dir is not writable

    # lifecycle

    def start(self) -> None:
        self.monitor.start()

    def close(self) -> None:
        """Ends an open window, writes pending steps and the end event, stops the monitor."""
        if self._profiler is not None:
            self._stop_window()
        self._resolve_pending(wait=True)
        for hook in self._hooks:
            hook.remove()
        self._emit({"Type": "end", "Time": time.time()})
        self.events.close()
        self.monitor.stop()
        self.gpus.close()

    def attach(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, device: torch.device) -> None:
        """Hooks the model's forward and the optimizer's step to time the phases of each step."""
        self.device_type = device.type
        self._hooks = [
            model.register_forward_pre_hook(lambda *_: self._mark("fwd_start")),
            model.register_forward_hook(lambda *_: self._mark("fwd_end")),
            optimizer.register_step_pre_hook(lambda *_: self._mark("opt_start")),
            optimizer.register_step_post_hook(lambda *_: self._mark("opt_end")),
        ]
        self._emit({"Type": "job", "Time": time.time(), "Device": str(device)})

    # the loops

    def train_steps(self, loader: Iterable[T], epoch: int) -> Iterator[T]:
        """Yields the loader's batches, timing each step from one batch request to the next."""
        if hasattr(loader, "num_workers"):
            self._emit({"Type": "job", "Time": time.time(), "NumWorkers": int(loader.num_workers),
                        "PinMemory": bool(getattr(loader, "pin_memory", False))})
        iterator: Iterator[T] | None = None
        epoch_start = time.time()
        try:
            while True:
                self._end_step(time.perf_counter())
                if self.window and self.global_step == self.window[0] and self._profiler is None:
                    self._start_window()
                marks = self._marks = _Marks(time.perf_counter(), epoch)
                self._label("dataloader", True)
                try:
                    if iterator is None:
                        iterator = iter(loader)
                    batch = next(iterator)
                except StopIteration:
                    self._marks = None
                    self._label("dataloader", False)
                    return
                marks.data_end = time.perf_counter()
                marks.batch = _batch_len(batch)
                self._label("dataloader", False)
                yield batch
        finally:
            self._end_step(time.perf_counter())
            if self._profiler is not None:  # the window never spans an evaluation: it ends with the epoch
                self._stop_window()
            self._emit({"Type": "phase", "Name": "training", "Epoch": epoch, "Start": epoch_start, "End": time.time()})

    def evaluation(self, loader: Iterable[T]) -> Iterator[T]:
        """Yields the loader's batches and records an ``evaluation`` phase around them."""
        start = time.time()
        try:
            yield from loader
        finally:
            self._emit({"Type": "phase", "Name": "evaluation", "Start": start, "End": time.time()})

    # step bookkeeping

    def _mark(self, name: str) -> None:
        marks = self._marks
        if marks is None or (name.endswith("_start") and getattr(marks, name)):
            return  # outside a training step, or a second forward in one step (the first start counts)
        setattr(marks, name, time.perf_counter())
        if self.device_type == "cuda":
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            marks.cuda[name] = event
        if self._profiler is not None:
            close, open_ = _TRANSITIONS[name]
            if close:
                self._label(close, False)
            if open_:
                self._label(open_, True)

    def _end_step(self, now: float) -> None:
        marks, self._marks = self._marks, None
        if marks is None:
            return
        profiled = self._profiler is not None
        if profiled:
            self._close_labels()
            self._profiler.step()
        record = {"Type": "step", "Step": self.global_step, "Epoch": marks.epoch, "Batch": marks.batch,
                  "Start": self._wall_offset + marks.start, "Duration": now - marks.start, "Profiled": profiled,
                  "Phases": _phases(marks, now)}
        self.global_step += 1
        if marks.cuda:
            self._pending.append((record, marks))
        else:
            self._emit(record)
        self._resolve_pending(wait=False)
        if profiled and self.window and self.global_step >= self.window[0] + self.window[1]:
            self._stop_window()

    def _resolve_pending(self, *, wait: bool) -> None:
        """Writes the steps whose CUDA events completed, with the phases the GPU measured."""
        if wait and self._pending:
            torch.cuda.synchronize()
        while self._pending:
            record, marks = self._pending[0]
            if not list(marks.cuda.values())[-1].query():
                return
            self._pending.pop(0)
            record["Phases"] = _cuda_phases(marks, record["Phases"], record["Duration"])
            self._emit(record)

    # the torch.profiler window

    def _start_window(self) -> None:
        activities = [torch.profiler.ProfilerActivity.CPU]
        if torch.cuda.is_available():
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        else:
            # Without a GPU, the profiler's library logs "ERROR: ... gpuGetDeviceCount failed" when it
            # starts: harmless, but it alarms whoever reads the job's log. Its level 5 keeps only
            # messages meant for users; KINETO_LOG_LEVEL set by the caller wins.
            os.environ.setdefault("KINETO_LOG_LEVEL", "5")
        self._profiler = torch.profiler.profile(activities=activities, profile_memory=True, record_shapes=False)
        self._profiler.start()
        self._window_started = time.time()

    def _stop_window(self) -> None:
        """Stops the window and writes its trace and operator summary (atomically: readers see whole files)."""
        profiler, self._profiler = self._profiler, None
        self._close_labels()
        profiler.stop()
        folder = self.out_dir / "framework" / "pytorch"
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"{int(self._window_started)}_{self.node}"
        trace = folder / f"{stem}.pt.trace.json.gz"
        partial_trace = folder / f".{stem}.partial.json.gz"  # torch gzips by the .gz suffix
        profiler.export_chrome_trace(str(partial_trace))
        os.replace(partial_trace, trace)
        first, count = self.window or (0, 0)
        summary = {"trace": trace.name, "start": self._window_started, "end": time.time(), "first_step": first,
                   "steps": count, "activities": ["CPU", "CUDA"] if torch.cuda.is_available() else ["CPU"],
                   "operators": operator_rows(profiler.key_averages())}
        partial = folder / f".{stem}_operators.json.partial"
        partial.write_text(json.dumps(summary))
        os.replace(partial, folder / f"{stem}_operators.json")
        self._emit({"Type": "phase", "Name": "profiler window", "Start": self._window_started, "End": time.time()})
        LOG.info("profiler window written to %s", trace)

    def _label(self, name: str, enter: bool) -> None:
        """Opens or closes a ``phase:<name>`` range in the trace (only inside the window)."""
        if self._profiler is None:
            return
        if enter and name not in self._labels:
            label = torch.profiler.record_function(f"phase:{name}")
            label.__enter__()
            self._labels[name] = label
        elif not enter and name in self._labels:
            self._labels.pop(name).__exit__(None, None, None)

    def _close_labels(self) -> None:
        for name in list(self._labels):
            self._label(name, False)

    def _emit(self, record: dict[str, Any]) -> None:
        if self._write_failed:
            return
        try:
            self.events.write([json.dumps(record)], time.time())
        except OSError as exc:  # a full disk ends the step records, not the training
            self._write_failed = True
            LOG.warning("profiler: stopped writing step events: %s", exc)


def _batch_len(batch: Any) -> int:
    """Images in a batch: the first dimension of its first tensor."""
    first = batch[0] if isinstance(batch, (tuple, list)) and batch else batch
    shape = getattr(first, "shape", None)
    return int(shape[0]) if shape else 0


def _phases(marks: _Marks, end: float) -> dict[str, float]:
    """Seconds per phase from the CPU-side marks; what no mark explains is ``other``."""
    data = max(0.0, marks.data_end - marks.start)
    forward = max(0.0, marks.fwd_end - marks.fwd_start) if marks.fwd_end else 0.0
    backward = max(0.0, marks.opt_start - marks.fwd_end) if marks.opt_start and marks.fwd_end else 0.0
    optimizer = max(0.0, marks.opt_end - marks.opt_start) if marks.opt_end else 0.0
    other = max(0.0, (end - marks.start) - data - forward - backward - optimizer)
    return {"dataloader": data, "forward": forward, "backward": backward, "optimizer": optimizer, "other": other}


def _cuda_phases(marks: _Marks, cpu: dict[str, float], duration: float) -> dict[str, float]:
    """Forward, backward and optimizer as the GPU timed them (kernels run after the CPU queues them)."""
    events = marks.cuda

    def between(a: str, b: str) -> float:
        return float(events[a].elapsed_time(events[b])) / 1000 if a in events and b in events else 0.0

    phases = dict(cpu)
    phases["forward"] = between("fwd_start", "fwd_end")
    phases["backward"] = between("fwd_end", "opt_start")
    phases["optimizer"] = between("opt_start", "opt_end")
    phases["other"] = max(0.0, duration - sum(phases[p] for p in PHASE_LABELS))
    return phases


def operator_rows(averages: Iterable[Any]) -> list[dict[str, Any]]:
    """The operator summary of a profiler window: one row per name (times in ms, memory in MB)."""
    rows = []
    for avg in averages:
        name = str(avg.key)
        kind = "phase" if name.startswith("phase:") else "step" if name.startswith("ProfilerStep") else "operator"
        rows.append({
            "name": name, "kind": kind, "calls": int(avg.count),
            "self_cpu_ms": avg.self_cpu_time_total / 1000, "cpu_total_ms": avg.cpu_time_total / 1000,
            "self_device_ms": getattr(avg, "self_device_time_total", 0.0) / 1000,
            "device_total_ms": getattr(avg, "device_time_total", 0.0) / 1000,
            "self_cpu_memory_mb": getattr(avg, "self_cpu_memory_usage", 0) / 2**20,
            "cpu_memory_mb": getattr(avg, "cpu_memory_usage", 0) / 2**20,
            "self_device_memory_mb": getattr(avg, "self_device_memory_usage", 0) / 2**20,
            "device_memory_mb": getattr(avg, "device_memory_usage", 0) / 2**20,
        })
    return rows


# --- the script's calls -----------------------------------------------------------------------


def locations(args: argparse.Namespace) -> tuple[Path, str | None]:
    """(the folder the profiler writes, the ``s3://`` URI it uploads that folder to, or None).

    Raises:
        ValueError: ``--profile-out-dir`` names ``{job_name}`` but ``$TRAINING_JOB_NAME`` is unset.
    """
    target = getattr(args, "profile_out_dir", None)
    if target and JOB_NAME_PLACEHOLDER in target:
        if not os.environ.get("TRAINING_JOB_NAME"):
            raise ValueError(f"--profile-out-dir {target} names {JOB_NAME_PLACEHOLDER} but TRAINING_JOB_NAME is unset")
        target = target.replace(JOB_NAME_PLACEHOLDER, os.environ["TRAINING_JOB_NAME"])
    upload = target if target and target.startswith("s3://") else None
    if args.profiler_dir:
        return Path(args.profiler_dir), upload
    if target and not upload:
        return Path(target), None
    return Path(args.output_data_dir) / PROFILER_DIR_NAME, upload


@contextlib.contextmanager
def session(args: argparse.Namespace) -> Iterator[ProfilingSession | None]:
    """Profiles the block when ``args.profile``; meanwhile the session is the process's active one.

    With an upload location, the first host's files go there as the job trains (a failed upload
    is logged and retried; it never stops the training).
    """
    global _ACTIVE
    if not getattr(args, "profile", False):
        yield None
        return
    try:
        out_dir, upload = locations(args)
    except ValueError as exc:  # nowhere to record it but the log
        LOG.warning("profiler: not profiling this run: %s", exc)
        yield None
        return
    facts = {"BatchSize": args.batch_size, "NumWorkers": args.num_workers, "Model": getattr(args, "model", None),
             "Augment": getattr(args, "augment", None)}
    try:
        active = ProfilingSession(out_dir, interval_ms=args.profile_interval_ms, window=args.profile_window,
                                  facts=facts)
        active.start()
    except Exception as exc:  # a profiler that cannot start never stops the training
        LOG.warning("profiler: not profiling this run: cannot write to %s (%s)", out_dir, exc)
        yield None
        return
    uploader = None
    if upload and active.node == UPLOADING_NODE:
        uploader = FolderUploader(out_dir, upload)
        uploader.start()
        LOG.info("profiler: uploading %s to %s as the job trains", out_dir, upload)
    elif upload:
        LOG.info("profiler: %s keeps its profiler output: only %s's is uploaded and analysed", active.node,
                 UPLOADING_NODE)
    _ACTIVE = active
    try:
        yield active
    finally:
        _ACTIVE = None
        active.close()
        if uploader is not None:
            uploader.close()


def attach(model: torch.nn.Module, optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """Times the forward, backward and optimizer phases of the active session's steps (no-op without one)."""
    if _ACTIVE is not None:
        _ACTIVE.attach(model, optimizer, device)


def steps(loader: Iterable[T], *, epoch: int) -> Iterable[T]:
    """The loader, timed step by step when a session is active (else the loader itself)."""
    return loader if _ACTIVE is None else _ACTIVE.train_steps(loader, epoch)


def evaluation(loader: Iterable[T]) -> Iterable[T]:
    """The loader, recorded as an ``evaluation`` phase when a session is active."""
    return loader if _ACTIVE is None else _ACTIVE.evaluation(loader)
