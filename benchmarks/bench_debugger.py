"""The Debugger's two costs, in one run: the hook's training slowdown and the page's data preparation.

    .venv/bin/python benchmarks/bench_debugger.py [--part all|training|page] [--steps 30] [--rounds 4]

- ``training`` (job environment): images/s of the training step (forward, backward,
  AdamW) of two copies of the same pretrained EfficientNet-Lite0 on the same decoded demo
  batches, one with the default hook (``debug_hook.attach``: losses, labels and predictions
  every step, reductions of weights, biases and gradients every 20 steps) and one without.
  The two alternate step by step, so a busy machine slows both alike; each setting's
  ``--steps`` x ``--rounds`` steps are cut into rounds (every round holds the same number of
  saved steps) and the quickest round counts. Target: the hook costs at most 5%.
- ``page`` (app environment, with a job-environment step): writes a synthetic 5,000-step
  trial with smdebug (``--layers`` weight tensors and their gradients as reductions every
  10 train steps, the loss every step, a validation pass every 250 steps), copies it into a
  job store with the evaluator's collector (timed, for information), then times the
  Debugger page's data preparation (loss curves, gradient heatmap, one layer's statistics,
  the layer profile, the rule table): once cold, then warm. Target: at most 1 s warm.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
APP_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
JOB_PYTHON = REPO_ROOT / ".venv-job" / "bin" / "python"
JOB_NAME = "bench-debugger"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("all", "training", "page", "training-run", "page-trial"), default="all",
                        help="training-run and page-trial are the job-environment halves (internal)")
    parser.add_argument("--data-dir", type=Path, default=None, help="ImageFolder; default: render the demo")
    parser.add_argument("--steps", type=int, default=30, help="training steps per timed round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--trial-steps", type=int, default=5000)
    parser.add_argument("--layers", type=int, default=149, help="weight tensors (EfficientNet-Lite0 has 149)")
    parser.add_argument("--scratch", type=Path, default=None, help="(internal) working folder")
    return parser


# --- training: hook against no hook (job environment) ----------------------------------------


def training(args: argparse.Namespace, scratch: Path) -> list[tuple[str, float]]:
    import logging

    sys.path.insert(0, str(REPO_ROOT / "entrypoints"))
    import torch

    import debug_hook
    import train
    from imagedata import epoch_batches, load_splits, make_loader
    from imagemodels import build_model

    logging.basicConfig(level=logging.WARNING)
    data_dir = args.data_dir or _render_demo(scratch / "demo")
    splits = load_splits(data_dir, args.image_size, "light")
    total = args.warmup + args.steps * args.rounds
    order = epoch_batches(len(splits.train), args.batch_size, seed=42, epoch=0)
    loader = make_loader(splits.train, batch_size=args.batch_size, num_workers=0, seed=0,
                         batches=[order[i % len(order)] for i in range(total)])
    batches = list(loader)  # decoded once: the timing is the training step, not JPEG decoding
    print(f"training: data={data_dir} image_size={args.image_size} batch_size={args.batch_size} "
          f"threads={torch.get_num_threads()} steps={args.steps}x{args.rounds} per setting, interleaved step by step",
          flush=True)
    settings = {}
    for name, hooked in (("no hook", False), ("default hook", True)):
        torch.manual_seed(0)
        model = build_model("efficientnet_lite0", len(splits.class_names), image_size=args.image_size, pretrained=True)
        optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
        criterion = torch.nn.CrossEntropyLoss()
        if hooked:
            hp = train.build_parser().parse_args(["--debug-out-dir", str(scratch / "trial")])
            if debug_hook.attach(model, criterion, hp) is None:
                raise SystemExit("error: the hook did not start (see the log above)")
        model.train()
        settings[name] = (model, optimizer, criterion)

    def step(name: str, images: torch.Tensor, labels: torch.Tensor) -> float:
        model, optimizer, criterion = settings[name]
        started = time.perf_counter()
        loss = criterion(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return time.perf_counter() - started

    seconds = {name: [] for name in settings}
    for index, (images, labels) in enumerate(batches):
        names = list(settings) if index % 2 else list(reversed(settings))
        for name in names:
            elapsed = step(name, images, labels)
            if index >= args.warmup:
                seconds[name].append(elapsed)
    rates = []
    for name, times in seconds.items():
        rounds = [times[r * args.steps : (r + 1) * args.steps] for r in range(args.rounds)]
        best = min(sum(chunk) for chunk in rounds)  # the quietest round (each holds the same saved steps)
        rates.append((name, args.batch_size * args.steps / best))
        print(f"{name}: rounds of {args.steps} steps took {', '.join(f'{sum(c):.2f}' for c in rounds)} s", flush=True)
    return rates


def _render_demo(out_dir: Path) -> Path:
    result = subprocess.run([str(APP_PYTHON), "-m", "core.datasets.demo", str(out_dir)], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise SystemExit(f"error: rendering the demo failed: {result.stderr[-500:]}; pass --data-dir")
    return out_dir


# --- page: a 5,000-step trial (job environment writes and collects, the app times) -----------


def write_and_collect(args: argparse.Namespace, scratch: Path) -> None:
    """Job environment: writes the synthetic trial and copies it into ``scratch/console.db``."""
    import numpy as np

    sys.path[:0] = [str(REPO_ROOT / "entrypoints"), str(REPO_ROOT / "tests" / "entrypoints"), str(REPO_ROOT)]
    import synthetic_trials as st
    from smdebug.analysis.utils import no_refresh
    from smdebug.trials import create_trial

    import debug_hook
    from analysers.debug_sidecar import Collector
    from core.debugger import DebugStore
    from core.jobstore import JobStore

    debug_hook.patch_tensor_writer()  # the training script's writer: smdebug's own is several times slower
    rng = np.random.default_rng(0)
    train_steps = args.trial_steps
    losses = 2.3 * np.exp(-np.arange(train_steps) / 1500) + rng.normal(0, 0.05, train_steps)
    evals = [list(0.9 * 2.3 * np.exp(-(k + 1) * 250 / 1500) + rng.normal(0, 0.02, 8)) for k in range(train_steps // 250)]
    started = time.perf_counter()
    steps, collections = st.training_run(list(losses), eval_losses=evals, steps_per_epoch=250, layers=args.layers,
                                         save_interval=10, seed=1)
    trial_dir = scratch / "trial"
    st.write_trial(trial_dir, steps, collections)
    written = time.perf_counter() - started
    store = DebugStore(JobStore(scratch / "console.db"))
    started = time.perf_counter()
    trial = create_trial(str(trial_dir))
    trial.maybe_refresh()
    collector = Collector(store, JOB_NAME, trial, [])
    with no_refresh(trial):
        rows = collector.ingest(trial.steps())
    collected = time.perf_counter() - started
    store.set_trial(JOB_NAME, path=str(trial_dir), state="Complete", steps=len(steps), last_step=len(steps) - 1)
    print(f"page: trial of {len(steps)} global steps ({train_steps} train) with {2 * args.layers} reduced tensors "
          f"written in {written:.1f} s; the collector stored {rows} tensor-step rows in {collected:.1f} s", flush=True)


def page(args: argparse.Namespace, scratch: Path) -> list[tuple[str, float]]:
    """App environment: times the page's data preparation on the collected trial."""
    subprocess.run([str(JOB_PYTHON), __file__, "--part", "page-trial", "--scratch", str(scratch),
                    "--trial-steps", str(args.trial_steps), "--layers", str(args.layers)], check=True, cwd=REPO_ROOT)
    sys.path.insert(0, str(REPO_ROOT))
    from core.debugger import DebugStore, views
    from core.jobstore import JobStore

    store = DebugStore(JobStore(scratch / "console.db"))

    def prepare() -> dict[str, int]:
        curves = views.loss_curves(store, JOB_NAME)
        matrix = views.heatmap(store, JOB_NAME, collection="gradients", reduction="l2")
        first = store.tensors(JOB_NAME, "weights")[0][0]
        stats = views.tensor_stats(store, JOB_NAME, "weights", first)
        profile = views.layer_profile(store, JOB_NAME, "weights")
        table = views.rules_table(store.rules(JOB_NAME))
        return {"loss points": len(curves), "heatmap cells": matrix.size, "stat rows": len(stats),
                "profile layers": len(profile), "rules": len(table)}

    timings = []
    for label in ("cold", "warm", "warm"):
        started = time.perf_counter()
        sizes = prepare()
        timings.append((label, time.perf_counter() - started))
    print(f"page: prepared {sizes}", flush=True)
    return [("page data preparation, cold (s)", timings[0][1]),
            ("page data preparation, warm (s)", min(t for label, t in timings if label == "warm"))]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.part == "page-trial":
        write_and_collect(args, args.scratch)
        return 0
    if args.part == "training-run":
        with tempfile.TemporaryDirectory(prefix="bench-debugger-") as tmp:
            for name, rate in training(args, Path(tmp)):
                print(f"RESULT {name}={rate:.2f}")
        return 0
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-debugger-") as tmp:
        scratch = Path(tmp)
        if args.part in ("all", "training"):
            command = [str(JOB_PYTHON), __file__, "--part", "training-run", "--steps", str(args.steps), "--rounds",
                       str(args.rounds), "--warmup", str(args.warmup), "--image-size", str(args.image_size),
                       "--batch-size", str(args.batch_size)]
            if args.data_dir:
                command += ["--data-dir", str(args.data_dir)]
            output = subprocess.run(command, check=True, capture_output=True, text=True, cwd=REPO_ROOT).stdout
            print("\n".join(line for line in output.splitlines() if not line.startswith("RESULT")), flush=True)
            rates = dict(line[7:].split("=") for line in output.splitlines() if line.startswith("RESULT "))
            bare, hooked = float(rates["no hook"]), float(rates["default hook"])
            rows += [("training images/s, no hook", f"{bare:.1f}"), ("training images/s, default hook", f"{hooked:.1f}"),
                     ("hook slowdown (target <= 5%)", f"{(1 - hooked / bare) * 100:.1f}%")]
        if args.part in ("all", "page"):
            rows += [(name, f"{seconds:.3f}") for name, seconds in page(args, scratch)]
    width = max(len(name) for name, _ in rows)
    print(f"\n{'measure':<{width}}  value")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
