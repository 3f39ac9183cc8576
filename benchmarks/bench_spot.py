"""Spot interruptions against an uninterrupted run with the same seed, on the demo data.

Three local spot runs of ``entrypoints/ec2_train.py`` through the simulator, one after the
other, with the page's default hyperparameters (EfficientNet-Lite0, 2 epochs, 64 px, seed 42,
num-workers 0):

1. uninterrupted;
2. interrupted twice (mid-epoch 1 and mid-epoch 2), the script checkpointing on the notice;
3. interrupted twice at the same points, the script ignoring the notice (per-epoch
   checkpoints only: the worst case a spot script can be in).

Interruptions are triggered from the log (the "Interrupt now" button's call), when a progress
line of the current instance shows the chosen batch, so every run is cut at the same place
whatever the machine's speed. Prints test accuracy, the difference to run 1 in points, the
steps lost per interruption and the wall time.

    .venv/bin/python benchmarks/bench_spot.py [--notice 10] [--epochs 2]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.backend import get_backend
from core.config import Settings
from core.datasets import write_demo_folder
from core.spot import LocalSpotManager, SpotRunSpec, interruptions
from core.training.launch import DEFAULT_HYPERPARAMETERS

ATTEMPT = re.compile(r"^=== instance \S+ launched \(attempt (\d+)\) ===$")


def run_arm(manager: LocalSpotManager, name: str, data_uri: str, args: argparse.Namespace,
            cut_at: list[str], watch_notice: bool) -> dict[str, object]:
    hps = {**DEFAULT_HYPERPARAMETERS, "epochs": args.epochs, "num-workers": 0}
    spec = SpotRunSpec(name=name, data_uri=data_uri, hyperparameters=hps, notice_s=args.notice,
                       relaunch_delay_s=1.0, watch_notice=watch_notice)
    started = time.time()
    manager.launch(spec)
    pending = list(cut_at)
    while not manager.describe(name).status.is_terminal:
        if pending:
            lines = manager.log_tail(name, 400)
            starts = [i for i, line in enumerate(lines) if ATTEMPT.match(line)]
            current = lines[starts[-1]:] if starts else []
            attempt = int(ATTEMPT.match(current[0])[1]) if current else 0  # type: ignore[index]
            due = attempt == len(cut_at) - len(pending) + 1 and any(line.startswith(pending[0]) for line in current)
            if due and manager.describe(name).status.value == "Running":
                manager.interrupt(name)
                pending.pop(0)
        time.sleep(0.5)
    run = manager.describe(name)
    found = interruptions(manager.events(name))
    return {"run": name, "status": run.status.value, "test_acc": run.final_metrics.get("test:accuracy"),
            "interruptions": len(found), "lost_steps": [i.lost_steps for i in found],
            "lost_epochs": [round(i.lost_epochs, 3) for i in found],
            "ckpt_after_notice_s": [round(i.checkpoint_after_notice_s, 1) if i.checkpoint_after_notice_s else None
                                    for i in found], "wall_s": time.time() - started}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notice", type=float, default=10.0, help="simulated notice (s); EC2: 120")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-spot-") as tmp:
        data = write_demo_folder(Path(tmp) / "digits", image_size=64)
        manager = get_backend(Settings(workspace=Path(tmp) / "ws")).spot
        assert isinstance(manager, LocalSpotManager)
        cuts = ["progress epoch=1 batch=20/", "progress epoch=2 batch=20/"]
        rows = [
            run_arm(manager, "uninterrupted", data.as_uri(), args, [], True),
            run_arm(manager, "interrupted-2x", data.as_uri(), args, cuts, True),
            run_arm(manager, "interrupted-2x-no-notice", data.as_uri(), args, cuts, False),
        ]
    reference = rows[0]["test_acc"]
    print(f"\nnotice {args.notice:g} s (EC2: 120 s), {args.epochs} epochs, interruptions at {cuts}")
    print(f"{'run':<26} {'status':<10} {'test acc':>9} {'Δ points':>9} {'lost steps':>12} {'lost epochs':>16} "
          f"{'ckpt after notice s':>20} {'wall s':>7}")
    for row in rows:
        accuracy = row["test_acc"]
        delta = 100 * (accuracy - reference) if isinstance(accuracy, float) and isinstance(reference, float) else None
        print(f"{row['run']:<26} {row['status']:<10} {accuracy if accuracy is not None else float('nan'):>9.4f} "
              f"{delta if delta is not None else float('nan'):>+9.2f} {row['lost_steps']!s:>12} "
              f"{row['lost_epochs']!s:>16} {row['ckpt_after_notice_s']!s:>20} {row['wall_s']:>7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
