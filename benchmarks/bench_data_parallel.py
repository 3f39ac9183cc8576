"""Data-parallel training on this machine: train.py as 2 processes (gloo on 127.0.0.1) against 1, in one run.

Run with the job environment's interpreter::

    .venv-job/bin/python benchmarks/bench_data_parallel.py [--data-dir IMAGEFOLDER] [--seeds 0 1]

Every setting trains the same job (default hyperparameters: EfficientNet-Lite0 with its packaged
weights, 64 px, 2 epochs, batch 32) on the same data, as the local backend runs it:

- ``1 process, N threads``: a job of one instance today (the baseline);
- ``1 process, 1 thread``: the same with one torch thread;
- ``2 processes, N/2 threads each``: a job of two instances: the hosts of SageMaker's contract
  (``SM_HOSTS``, ``SM_CURRENT_HOST``, ``MASTER_ADDR``/``MASTER_PORT``), each training on half of every
  batch, gradients averaged by DistributedDataParallel.

The table gives wall time, the images/s of the last epoch (the job's, over all processes) and the
test accuracy, per seed; the accuracy of the 2-process job should be within a point of the baseline.
Without ``--data-dir`` the digits demo is rendered with the app environment.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TRAIN_PY = REPO_ROOT / "entrypoints" / "train.py"
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

from bench_training import render_demo  # noqa: E402

EPOCH_RATE = re.compile(r"^epoch=\d+/\d+ .*images_per_s=([\d.]+)", re.MULTILINE)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None, help="ImageFolder root (default: render the demo)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run of each setting per seed")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of every run")
    parser.add_argument("--image-size", type=int, default=64, help="input side in pixels")
    return parser


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_job(data_dir: Path, out: Path, *, processes: int, threads: int, seed: int, epochs: int,
            image_size: int) -> dict[str, float]:
    """One job as ``processes`` hosts; its wall time, last-epoch images/s and test accuracy."""
    hosts = [f"algo-{i}" for i in range(1, processes + 1)] if processes > 1 else ["localhost"]
    port = str(free_port())
    args = [sys.executable, str(TRAIN_PY), "--data-dir", str(data_dir), "--model-dir", str(out / "model"),
            "--output-data-dir", str(out / "output"), "--checkpoint-dir", str(out / "checkpoints"),
            "--epochs", str(epochs), "--image-size", str(image_size), "--seed", str(seed), "--num-workers", "0",
            "--debug", "false"]
    started = time.perf_counter()
    running = []
    for host in hosts:
        env = {**os.environ, "SM_HOSTS": json.dumps(hosts), "SM_CURRENT_HOST": host, "SM_NUM_CPUS": str(threads),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "PYTHONUNBUFFERED": "1"}
        running.append(subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [process.communicate()[0] for process in running]
    wall = time.perf_counter() - started
    for process, output in zip(running, outputs, strict=True):
        if process.returncode != 0:
            raise SystemExit(f"error: train.py exited {process.returncode}:\n{output[-2000:]}")
    metrics = json.loads((out / "output" / "metrics.json").read_text())
    rates = EPOCH_RATE.findall(outputs[0])
    return {"wall_s": wall, "images_per_s": float(rates[-1]), "test_acc": float(metrics["test_acc"])}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cpus = os.cpu_count() or 1
    settings = [(f"1 process, {cpus} threads", 1, cpus), ("1 process, 1 thread", 1, 1),
                (f"2 processes, {max(1, cpus // 2)} thread(s) each", 2, max(1, cpus // 2))]
    with tempfile.TemporaryDirectory(prefix="bench-dp-") as tmp:
        scratch = Path(tmp)
        data_dir = args.data_dir or render_demo(scratch / "demo")
        print(f"data {data_dir}, {args.epochs} epochs at {args.image_size} px, {cpus} CPUs, seeds {args.seeds}",
              flush=True)
        rows = []
        for seed in args.seeds:
            for name, processes, threads in settings:
                result = run_job(data_dir, scratch / f"{seed}-{processes}-{threads}", processes=processes,
                                 threads=threads, seed=seed, epochs=args.epochs, image_size=args.image_size)
                print(f"seed {seed}: {name}: {result}", flush=True)
                rows.append((seed, name, result))
    print(f"\n{'seed':<6}{'setting':<34}{'wall s':>8}{'images/s':>10}{'vs base':>9}{'test acc':>10}{'Δ points':>10}")
    for seed in args.seeds:
        base = next(r for s, _, r in rows if s == seed)
        for s, name, r in rows:
            if s == seed:
                print(f"{seed:<6}{name:<34}{r['wall_s']:>8.1f}{r['images_per_s']:>10.1f}"
                      f"{r['images_per_s'] / base['images_per_s']:>9.2f}{r['test_acc']:>10.4f}"
                      f"{100 * (r['test_acc'] - base['test_acc']):>+10.2f}")
    base_acc = sum(r["test_acc"] for _, name, r in rows if name == settings[0][0]) / len(args.seeds)
    for name, _, _ in settings:
        runs = [r for _, n, r in rows if n == name]
        acc = sum(r["test_acc"] for r in runs) / len(runs)
        rate = sum(r["images_per_s"] for r in runs) / len(runs)
        print(f"{'mean':<6}{name:<34}{'':>8}{rate:>10.1f}{'':>9}{acc:>10.4f}{100 * (acc - base_acc):>+10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
