"""Images/s of entrypoints/train.py's training loop against a bare PyTorch loop, in one run.

Run with the job environment's interpreter::

    .venv-job/bin/python benchmarks/bench_training.py [--data-dir IMAGEFOLDER] [--steps 30]

Same model, data, transforms, batch size, optimizer and worker count in every setting:

- ``bare PyTorch loop``: DataLoader(shuffle=True) + forward/backward/step, nothing else;
- ``bare PyTorch loop, AMP``: the same under autocast (bfloat16, or float16 with a gradient
  scaler where the GPU lacks bfloat16): the baseline of ``--amp``;
- ``train.train_one_epoch``: the script's loop (seeded batches, meters, scheduler, progress
  lines), called in this process;
- ``train.py subprocess``: the whole script as a job runs it, for one epoch capped at
  ``--steps``; its rate is the ``images_per_s`` it prints (first steps included), without the
  profiler's torch.profiler window (a fixed cost per job, measured by bench_profiler.py: under
  bfloat16 autocast on a CPU its three steps take minutes);
- ``train.py --amp`` and ``--amp --channels-last``: the same with the fast path;
- ``train.py --compile``: the steps through torch.compile, its compile time included in the rate
  (a job pays it once: run more ``--steps`` to see what a long job gains).

Everything runs on the GPU when there is one (the issue's target there: ``train.py --amp`` at least
1.5× ``train.py`` and 95% of the bare AMP loop), else on the CPU.

The settings alternate for ``--rounds`` rounds (the in-process ones after ``--warmup`` untimed
steps) and each keeps its best round, which damps noise from other processes on the machine. Without
``--data-dir`` the digits demo is rendered with the app environment
(``python -m core.datasets.demo``).
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

REPO_ROOT = Path(__file__).resolve().parent.parent
ENTRYPOINTS_DIR = REPO_ROOT / "entrypoints"
APP_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
sys.path.insert(0, str(ENTRYPOINTS_DIR))

import train  # noqa: E402  (entrypoints/ is a script folder, not a package)
from imagedata import ImageSamples, epoch_batches, load_splits, make_loader  # noqa: E402
from imagemodels import build_model  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    """Benchmark options; the training ones mirror train.py's defaults."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None, help="ImageFolder root (default: render the demo)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per setting and round")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before the first round")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds; the best is kept")
    parser.add_argument("--model", default="efficientnet_lite0", help="architecture")
    parser.add_argument("--batch-size", type=int, default=32, help="images per step")
    parser.add_argument("--image-size", type=int, default=64, help="input side in pixels")
    parser.add_argument("--num-workers", type=int, default=2, help="DataLoader workers")
    parser.add_argument("--lr", type=float, default=2e-3, help="AdamW learning rate")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    return parser


def render_demo(out_dir: Path) -> Path:
    """Render the digits demo ImageFolder into ``out_dir`` with the app environment.

    Raises:
        SystemExit: the app environment or its demo command failed.
    """
    try:
        result = subprocess.run(
            [str(APP_PYTHON), "-m", "core.datasets.demo", str(out_dir)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
    except OSError as exc:
        raise SystemExit(f"error: cannot run {APP_PYTHON} to render the demo ({exc}); pass --data-dir") from None
    if result.returncode != 0:
        raise SystemExit(
            f"error: `python -m core.datasets.demo` failed (exit {result.returncode}): "
            f"{result.stderr.strip()[-500:]}\npass --data-dir IMAGEFOLDER instead"
        )
    return out_dir


def bare_loop(
    model: nn.Module, dataset: ImageSamples, optimizer: torch.optim.Optimizer, *, batch_size: int, workers: int,
    amp: bool = False,
) -> Callable[[int], float]:
    """A plain PyTorch loop on ``DEVICE``; returns a function that runs ``steps`` steps and gives images/s.

    ``amp``: autocast to bfloat16 where the device has it, else float16 with a gradient scaler.
    """
    criterion = nn.CrossEntropyLoss()
    half = DEVICE.type == "cuda" and not torch.cuda.is_bf16_supported()
    dtype = torch.float16 if half else torch.bfloat16
    scaler = torch.amp.GradScaler("cuda") if amp and half else None

    def run(steps: int) -> float:
        model.train()
        start, seen = time.perf_counter(), 0
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers, drop_last=True,
                            pin_memory=DEVICE.type == "cuda")
        for step, (images, labels) in enumerate(loader):
            if step == steps:
                break
            images, labels = images.to(DEVICE, non_blocking=True), labels.to(DEVICE, non_blocking=True)
            with torch.autocast(DEVICE.type, dtype=dtype, enabled=amp):
                loss = criterion(model(images), labels)
            optimizer.zero_grad()
            if scaler is None:
                loss.backward()
                optimizer.step()
            else:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            seen += labels.numel()
        if DEVICE.type == "cuda":
            torch.cuda.synchronize()
        return seen / (time.perf_counter() - start)

    return run


def script_loop(
    model: nn.Module, dataset: ImageSamples, optimizer: torch.optim.Optimizer, *, batch_size: int, workers: int
) -> Callable[[int], float]:
    """train.py's own loop (loader over seeded batches, meters, scheduler, progress lines)."""
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=10_000)
    criterion = nn.CrossEntropyLoss()
    epochs = iter(range(1_000_000))

    def run(steps: int) -> float:
        epoch = next(epochs)
        batches = epoch_batches(len(dataset), batch_size, seed=42, epoch=epoch)[:steps]
        loader = make_loader(dataset, batch_size=batch_size, num_workers=workers, seed=epoch, batches=batches)
        meter = train.EpochMeter()
        train.train_one_epoch(model, loader, criterion, optimizer, scheduler, DEVICE, meter=meter, epoch=epoch,
                              steps=steps)
        return meter.seen / meter.seconds

    return run


def subprocess_rate(args: argparse.Namespace, data_dir: Path, scratch: Path, *extra: str) -> float:
    """Run train.py (with ``extra`` options) for one epoch of ``--steps`` steps and read the images_per_s it prints."""
    shutil.rmtree(scratch / "checkpoints", ignore_errors=True)  # a fresh run, not a resume
    command = [
        sys.executable, str(ENTRYPOINTS_DIR / "train.py"), "--data-dir", str(data_dir),
        "--model-dir", str(scratch / "model"), "--output-data-dir", str(scratch / "output"),
        "--checkpoint-dir", str(scratch / "checkpoints"), "--epochs", "1",
        "--max-steps-per-epoch", str(args.steps), "--model", args.model, "--batch-size", str(args.batch_size),
        "--image-size", str(args.image_size), "--num-workers", str(args.num_workers), "--lr", str(args.lr),
        "--profile-window", "off", *extra,
    ]  # fmt: skip
    env = dict(os.environ)
    if args.threads:
        env["SM_NUM_CPUS"] = str(args.threads)  # how train.py is told its thread count
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    match = re.search(r"^epoch=1/1 .*images_per_s=([0-9.]+)", result.stdout, re.MULTILINE)
    if result.returncode != 0 or not match:
        output = result.stdout[-2000:] + result.stderr[-2000:]
        raise SystemExit(f"error: train.py failed (exit {result.returncode}):\n{output}")
    return float(match.group(1))


def main(argv: Sequence[str] | None = None) -> int:
    """Time every setting and print the table."""
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    # train's progress lines are formatted and written, as in a job, but to a throwaway stream.
    logging.basicConfig(level=logging.INFO, stream=io.StringIO(), format="%(message)s")
    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        scratch = Path(tmp)
        data_dir = args.data_dir or render_demo(scratch / "demo")
        splits = load_splits(data_dir, args.image_size, "light")
        print(
            f"data={data_dir} train_images={len(splits.train)} model={args.model} batch_size={args.batch_size} "
            f"image_size={args.image_size} workers={args.num_workers} threads={torch.get_num_threads()} "
            f"steps={args.steps} rounds={args.rounds} device={DEVICE}",
            flush=True,
        )
        loops: dict[str, Callable[[int], float]] = {}
        for name, make in (("bare PyTorch loop", bare_loop), ("bare PyTorch loop, AMP", partial(bare_loop, amp=True)),
                           ("train.train_one_epoch", script_loop)):
            torch.manual_seed(0)
            model = build_model(args.model, len(splits.class_names), image_size=args.image_size,
                                pretrained=True).to(DEVICE)
            optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
            loops[name] = make(model, splits.train, optimizer, batch_size=args.batch_size, workers=args.num_workers)
            loops[name](args.warmup)
        for name, extra in (("train.py subprocess (1 epoch)", ()), ("train.py --amp", ("--amp", "true")),
                            ("train.py --amp --channels-last", ("--amp", "true", "--channels-last", "true")),
                            ("train.py --compile", ("--compile", "true"))):
            loops[name] = partial(lambda steps, extra: subprocess_rate(args, data_dir, scratch, *extra), extra=extra)
        rates: dict[str, float] = dict.fromkeys(loops, 0.0)
        for round_ in range(1, args.rounds + 1):
            for name, loop in loops.items():
                rate = loop(args.steps)
                rates[name] = max(rates[name], rate)
                print(f"round {round_}: {name}: {rate:.1f} images/s", flush=True)

    baseline = rates["bare PyTorch loop"]
    print(f"\n{'setting':<34}{'images/s':>10}{'relative':>10}")
    for name, rate in rates.items():
        print(f"{name:<34}{rate:>10.1f}{rate / baseline:>10.2f}")
    print(f"train.py --amp / train.py fp32: {rates['train.py --amp'] / rates['train.py subprocess (1 epoch)']:.2f}; "
          f"train.py --amp / bare AMP loop: {rates['train.py --amp'] / rates['bare PyTorch loop, AMP']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
