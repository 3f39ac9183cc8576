"""The profiler's costs, in one run: training speed with it on and off, and the Profiler page's data preparation.

Run with the app environment's interpreter (it starts the job environment for the job-side parts)::

    .venv/bin/python benchmarks/bench_profiler.py [--data-dir IMAGEFOLDER] [--steps 10] [--rounds 6]

1. Training images/s of ``train.train_one_epoch`` (job environment, in one process, same model and
   data) without profiling and with the system monitor (500 ms) and the step/phase timer on,
   alternating for ``--rounds`` rounds; the torch.profiler window is timed in a round of its own,
   since the target (at most 2% slower) is for the steps outside it.
2. One synthetic hour of 500 ms samples on 16 cores and 1 GPU (plus 3 steps/s and a profiler
   window) written as the training script writes it; the sidecar's final pass over it (job
   environment); then the page's data preparation (``load_profile`` and ``build_figures``),
   cold and warm, and a whole AppTest run of the page, warm (target: at most 1 s warm).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
ENTRYPOINTS_DIR = REPO_ROOT / "entrypoints"
APP_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
JOB_PYTHON = REPO_ROOT / ".venv-job" / "bin" / "python"
HOUR_S, INTERVAL_S, CORES, STEPS_PER_S = 3600, 0.5, 16, 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("all", "training"), default="all", help="training: job-side part only")
    parser.add_argument("--data-dir", type=Path, default=None, help="ImageFolder root (default: render the demo)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per setting and round")
    parser.add_argument("--rounds", type=int, default=6, help="alternating rounds")
    parser.add_argument("--batch-size", type=int, default=32, help="images per step")
    parser.add_argument("--image-size", type=int, default=32, help="input side in pixels")
    parser.add_argument("--num-workers", type=int, default=2, help="DataLoader workers")
    parser.add_argument("--window-steps", type=int, default=3, help="steps in the torch.profiler window")
    parser.add_argument("--scratch", type=Path, default=None, help="(training part) where profiler output goes")
    return parser


# --- 1. training speed (job environment) --------------------------------------------------------


def training_part(args: argparse.Namespace) -> dict[str, Any]:
    """Images/s with and without profiling, alternating; returns the rates per setting."""
    sys.path.insert(0, str(ENTRYPOINTS_DIR))
    import psutil
    import torch

    import profiling
    import train
    from imagedata import epoch_batches, load_splits, make_loader
    from imagemodels import build_model

    logging.basicConfig(level=logging.INFO, stream=io.StringIO(), format="%(message)s")
    splits = load_splits(args.data_dir, args.image_size, "light")
    torch.manual_seed(0)
    model = build_model("efficientnet_lite0", len(splits.class_names), image_size=args.image_size, pretrained=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=100_000)
    criterion = torch.nn.CrossEntropyLoss()
    scratch = Path(args.scratch)
    epochs = iter(range(1, 1_000_000))

    process = psutil.Process()

    def run(steps: int, window: tuple[int, int] | None, profiled: bool) -> tuple[float, float]:
        """(images/s, main-process CPU ms per image) of one round."""
        epoch = next(epochs)
        batches = epoch_batches(len(splits.train), args.batch_size, seed=42, epoch=epoch)[:steps]
        loader = make_loader(splits.train, batch_size=args.batch_size, num_workers=args.num_workers, seed=epoch,
                             batches=batches)
        meter = train.EpochMeter()
        session_args = argparse.Namespace(profile=profiled, profile_interval_ms=500, profile_window=window,
                                          profiler_dir=scratch / f"round-{epoch}", output_data_dir=scratch,
                                          batch_size=args.batch_size, num_workers=args.num_workers)
        with profiling.session(session_args):
            profiling.attach(model, optimizer, torch.device("cpu"))
            before = process.cpu_times()  # the monitor thread's CPU time counts: it runs in this process
            train.train_one_epoch(model, loader, criterion, optimizer, scheduler, torch.device("cpu"), meter=meter,
                                  epoch=epoch, steps=steps)
            after = process.cpu_times()
        cpu_ms = 1000 * ((after.user + after.system) - (before.user + before.system))
        return meter.seen / meter.seconds, cpu_ms / meter.seen

    run(3, None, False)  # warm-up: allocator, kernels, worker start-up paths
    rates: dict[str, list[float]] = {"without profiling": [], "monitor + step timer": []}
    cpu: dict[str, list[float]] = {name: [] for name in rates}
    for round_ in range(args.rounds):
        order = list(rates) if round_ % 2 == 0 else list(reversed(rates))
        for name in order:
            rate, cpu_ms = run(args.steps, None, name != "without profiling")
            rates[name].append(rate)
            cpu[name].append(cpu_ms)
            print(f"round {round_ + 1}: {name}: {rate:.1f} images/s, {cpu_ms:.2f} CPU ms/image", file=sys.stderr,
                  flush=True)
    started = time.perf_counter()
    window_rate, _ = run(args.window_steps, (0, args.window_steps), True)
    window_s = time.perf_counter() - started
    return {"rates": rates, "cpu_ms_per_image": cpu, "window_rate": window_rate, "window_s": window_s,
            "threads": torch.get_num_threads(), **instrumentation_costs(scratch / "costs")}


def instrumentation_costs(scratch: Path, steps: int = 3000) -> dict[str, float]:
    """What profiling adds per step and per sample, measured where the step itself costs almost nothing.

    The loop's own noise then stays small against the wrapper, hooks and event writes, so the
    cost is measured directly instead of as a small difference of two noisy throughputs.
    """
    import psutil
    import torch

    import profiling
    from system_monitor import GpuReader, MinuteFiles, SystemMonitor

    model, batch = torch.nn.Linear(4, 2), (torch.zeros(1, 4), torch.zeros(1, dtype=torch.long))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)

    def loop(profiled: bool) -> float:
        session_args = argparse.Namespace(profile=profiled, profile_interval_ms=60000, profile_window=None,
                                          profiler_dir=scratch / f"loop-{profiled}-{time.time()}",
                                          output_data_dir=scratch, batch_size=1, num_workers=0)
        with profiling.session(session_args):
            profiling.attach(model, optimizer, torch.device("cpu"))
            started = time.perf_counter()
            for x, _ in profiling.steps([batch] * steps, epoch=1):
                model(x)
                optimizer.step()
            return (time.perf_counter() - started) / steps

    per_step = {profiled: min(loop(profiled) for _ in range(3)) for profiled in (False, True)}
    files = MinuteFiles(scratch / "system", "algo-1")
    monitor = SystemMonitor(files, "algo-1", 0.5, GpuReader())
    cpu_before = psutil.Process().cpu_times()
    started = time.perf_counter()
    for _ in range(50):
        monitor.sample()
    sample_s = (time.perf_counter() - started) / 50
    cpu = psutil.Process().cpu_times()
    files.close()
    return {"step_cost_us": 1e6 * (per_step[True] - per_step[False]), "sample_ms": 1000 * sample_s,
            "sample_cpu_ms": 1000 * ((cpu.user + cpu.system) - (cpu_before.user + cpu_before.system)) / 50}


# --- 2. the synthetic hour ---------------------------------------------------------------------


def write_synthetic_hour(root: Path, start: float, seconds: float = HOUR_S) -> dict[str, int]:
    """One hour (or ``seconds``) as profiling.py writes it: system lines, step and phase events, an operator summary."""
    import numpy as np

    rng = np.random.default_rng(0)
    samples = int(seconds / INTERVAL_S)
    handles: dict[Path, Any] = {}

    def out(kind: str, t: float) -> Any:
        minute = int(t // 60 * 60)
        path = root / kind / time.strftime("%Y%m%d%H", time.gmtime(minute)) / f"{minute}.algo-1.json"
        if path not in handles:
            path.parent.mkdir(parents=True, exist_ok=True)
            handles[path] = open(path, "w")
        return handles[path]

    lines = 0
    cpu = rng.uniform(20, 95, (samples, CORES))
    gpu = np.clip(60 + 35 * np.sin(np.arange(samples) / 50) + rng.normal(0, 5, samples), 0, 100)
    for i in range(samples):
        t = round(start + i * INTERVAL_S, 3)
        rows = [("cpu", f"cpu{c}", d, v) for c in range(CORES)
                for d, v in (("CPUUtilization", cpu[i, c]), ("I/OWaitPercentage", cpu[i, c] / 20))]
        rows += [("memory", "MemoryUsedPercent", "Memory", 40 + i / samples * 10),
                 ("gpu", "gpu0", "GPUUtilization", gpu[i]), ("gpu", "gpu0", "GPUMemoryUtilization", 55.0),
                 ("i/o", "disks", "IOPS", 120.0), ("i/o", "disks", "ReadThroughputInBytesPerSecond", 5e7),
                 ("i/o", "disks", "WriteThroughputInBytesPerSecond", 1e6),
                 ("network", "interfaces", "ReceiveBytesPerSecond", 2e6),
                 ("network", "interfaces", "TransmitBytesPerSecond", 1e5)]
        out("system/incremental", t).write("".join(
            json.dumps({"Type": k, "Name": n, "Dimension": d, "Value": round(float(v), 2), "NodeId": "algo-1",
                        "Timestamp": t}) + "\n" for k, n, d, v in rows))
        lines += len(rows)
    events = [{"Type": "job", "Time": start, "ProcessStart": start - 30, "Cpus": CORES, "Gpus": 1,
               "GpuNames": ["NVIDIA H100"], "Device": "cuda", "BatchSize": 64, "NumWorkers": 12, "PinMemory": True,
               "IntervalMs": 500, "Window": "5:3"}]
    steps = int(seconds * STEPS_PER_S * 0.95)
    durations = rng.gamma(20, 1 / (20 * STEPS_PER_S), steps)
    t = start
    for i, duration in enumerate(durations):
        epoch = 1 + i // 1000
        events.append({"Type": "step", "Step": i, "Epoch": epoch, "Batch": 64, "Start": t, "Duration": float(duration),
                       "Profiled": 5 <= i < 8, "Phases": {"dataloader": 0.1 * duration, "forward": 0.3 * duration,
                                                         "backward": 0.45 * duration, "optimizer": 0.1 * duration,
                                                         "other": 0.05 * duration}})
        t += float(duration)
        if (i + 1) % 1000 == 0:
            events.append({"Type": "phase", "Name": "training", "Epoch": epoch, "Start": t - 330, "End": t})
            events.append({"Type": "phase", "Name": "evaluation", "Start": t, "End": t + 10})
            t += 10
    events.append({"Type": "end", "Time": start + seconds})
    for event in events:
        out("framework/events", float(event.get("Start", event.get("Time", start)))).write(json.dumps(event) + "\n")
    for handle in handles.values():
        handle.close()
    (root / "framework" / "pytorch").mkdir(parents=True, exist_ok=True)
    operators = [{"name": f"aten::op{i}", "kind": "operator", "calls": 10 * i, "self_cpu_ms": float(rng.uniform(1, 900)),
                  "cpu_total_ms": 1000.0, "self_device_ms": float(rng.uniform(0, 500)), "device_total_ms": 600.0,
                  "cpu_memory_mb": 1.0, "device_memory_mb": 2.0} for i in range(300)]
    (root / "framework" / "pytorch" / f"{int(start)}_algo-1_operators.json").write_text(json.dumps(
        {"trace": f"{int(start)}_algo-1.pt.trace.json.gz", "start": start + 5, "end": start + 8, "first_step": 5,
         "steps": 3, "activities": ["CPU", "CUDA"], "operators": operators}))
    return {"system lines": lines, "steps": steps}


def page_part(scratch: Path) -> list[tuple[str, float, str]]:
    """Writes the synthetic hour, runs the sidecar on it, times the page's preparation and a page run."""
    sys.path.insert(0, str(REPO_ROOT))
    os.environ["SMC_WORKSPACE"] = str(scratch / "workspace")
    os.environ["SMC_SETTINGS"] = str(scratch / "no-settings.toml")
    from core.backend import get_backend
    from core.config import load_settings
    from core.entities import TrainingJob
    from core.profiler import ProfilerStore
    from core.types import JobStatus

    backend = get_backend(load_settings())
    start = float(int(time.time()) - HOUR_S - 120)
    backend.store.insert_job(TrainingJob(name="synthetic-hour", status=JobStatus.COMPLETED, backend="local",
                                         created_at=start, started_at=start, ended_at=start + HOUR_S))
    root = scratch / "job" / "output" / "data" / "profiler-output"
    began = time.perf_counter()
    sizes = write_synthetic_hour(root, start)
    written = time.perf_counter() - began
    began = time.perf_counter()
    result = subprocess.run(
        [str(JOB_PYTHON), "-m", "analysers.profiler_sidecar", "--job-dir", str(scratch / "job"),
         "--database", str(backend.store.path), "--job-name", "synthetic-hour", "--training-pid", "0"],
        capture_output=True, text=True, timeout=900, cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    sidecar_s = time.perf_counter() - began
    if result.returncode != 0:
        raise SystemExit(f"error: the sidecar failed:\n{result.stdout[-3000:]}")
    store = ProfilerStore(backend.store)
    documents = store.documents("synthetic-hour", with_report=True)
    stored_kb = sum(len(json.dumps(d)) for d in documents.values()) / 1024

    began = time.perf_counter()
    from core.profiler.charts import build_figures
    from core.profiler.views import load_profile

    view = load_profile(store, "synthetic-hour")
    assert view is not None
    build_figures(view)
    cold = time.perf_counter() - began
    warm_times = []
    for _ in range(5):
        began = time.perf_counter()
        build_figures(load_profile(store, "synthetic-hour"))  # type: ignore[arg-type]
        warm_times.append(time.perf_counter() - began)

    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file(str(REPO_ROOT / "streamlit_app.py"), default_timeout=120).run()
    app.switch_page("app_pages/profiler.py")
    page_times = []
    for _ in range(4):
        began = time.perf_counter()
        app.run()
        page_times.append(time.perf_counter() - began)
    if app.exception:
        raise SystemExit(f"error: the page failed: {app.exception}")
    fired = ", ".join(f.rule for f in view.fired) or "none"
    return [
        ("synthetic hour written", written, f"{sizes['system lines']:,} system lines, {sizes['steps']:,} steps"),
        ("sidecar final pass (job side, once)", sidecar_s, f"documents {stored_kb:,.0f} KB in the store"),
        ("page data preparation, cold", cold, "first load_profile + build_figures in the process (imports too)"),
        ("page data preparation, warm", statistics.median(warm_times), f"median of 5; max {max(warm_times):.3f} s"),
        ("whole page run (AppTest), warm", statistics.median(page_times[1:]),
         f"median of 3 reruns; first {page_times[0]:.3f} s; findings: {fired}"),
    ]


def render_demo(out_dir: Path) -> Path:
    result = subprocess.run([str(APP_PYTHON), "-m", "core.datasets.demo", str(out_dir)], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise SystemExit(f"error: rendering the demo failed: {result.stderr[-500:]}")
    return out_dir


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.part == "training":
        print(json.dumps(training_part(args)))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-profiler-") as tmp:
        scratch = Path(tmp)
        data_dir = args.data_dir or render_demo(scratch / "demo")
        command = [str(JOB_PYTHON), __file__, "--part", "training", "--data-dir", str(data_dir),
                   "--scratch", str(scratch / "training"),
                   "--steps", str(args.steps), "--rounds", str(args.rounds), "--batch-size", str(args.batch_size),
                   "--image-size", str(args.image_size), "--num-workers", str(args.num_workers),
                   "--window-steps", str(args.window_steps)]
        print(f"training: {' '.join(command[4:])}", flush=True)
        result = subprocess.run(command, stdout=subprocess.PIPE, text=True, timeout=3600)
        if result.returncode != 0:
            raise SystemExit("error: the training part failed")
        training = json.loads(result.stdout.strip().splitlines()[-1])
        page = page_part(scratch)

    rates, cpu = training["rates"], training["cpu_ms_per_image"]
    base_median, base_best = statistics.median(rates["without profiling"]), max(rates["without profiling"])
    base_cpu = min(cpu["without profiling"])
    print(f"\nTraining (efficientnet_lite0, {args.image_size} px, batch {args.batch_size}, {args.num_workers} workers, "
          f"{training['threads']} threads, {args.rounds} alternating rounds of {args.steps} steps)")
    print(f"{'setting':<40}{'median img/s':>14}{'best img/s':>12}{'best vs off':>13}{'min CPU ms/img':>16}"
          f"{'vs off':>8}")
    for name, values in rates.items():
        best_cpu = min(cpu[name])
        print(f"{name:<40}{statistics.median(values):>14.1f}{max(values):>12.1f}"
              f"{100 * (max(values) / base_best - 1):>12.1f}%{best_cpu:>16.2f}{100 * (best_cpu / base_cpu - 1):>7.1f}%")
    print(f"{'torch.profiler window (' + str(args.window_steps) + ' steps)':<40}{training['window_rate']:>14.1f}"
          f"{'':>12}{100 * (training['window_rate'] / base_best - 1):>12.1f}%   {training['window_s']:.1f} s "
          "in all, trace export included")
    step_s = args.batch_size / base_median
    monitor_share = training["sample_cpu_ms"] / 500
    print(f"\nInstrumentation, measured directly: {training['step_cost_us']:.0f} µs per step (wrapper, hooks, event "
          f"write); one system sample {training['sample_ms']:.2f} ms wall, {training['sample_cpu_ms']:.2f} ms CPU every "
          f"500 ms ({100 * monitor_share:.2f}% of one core). At this run's median step ({step_s:.3f} s): "
          f"{100 * (training['step_cost_us'] / 1e6 / step_s + monitor_share):.2f}% at most.")
    print("\nProfiler page, one synthetic hour (500 ms samples, 16 cores, 1 GPU)")
    print(f"{'step':<40}{'seconds':>10}  notes")
    for name, seconds, note in page:
        print(f"{name:<40}{seconds:>10.3f}  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
