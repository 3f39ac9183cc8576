"""Bayesian search with early stopping against Random search without, on the demo data.

Both arms run the real training script as real local training jobs, with the same budget
(max jobs, parallelism, epochs per trial, steps per epoch, seed), one after the other in
one run. Prints the best objective each reached and the epochs each trained.

    .venv/bin/python benchmarks/bench_tuning.py [--max-jobs 8] [--epochs 6] [--steps 5]

Each trial's budget is cut into epochs (6 of 5 steps by default) because early stopping
decides at epoch boundaries: with fewer, longer epochs a weak trial runs as long as it
takes to report its first objective value.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.backend import get_backend
from core.config import Settings
from core.datasets import write_demo_folder
from core.tuning import (
    CategoricalRange,
    ContinuousRange,
    EarlyStopping,
    Scaling,
    Strategy,
    TrialStatus,
    TuningJobSpec,
)


def run_arm(backend, name: str, data_uri: str, args: argparse.Namespace, strategy: Strategy,
            early: EarlyStopping) -> dict[str, object]:
    spec = TuningJobSpec(
        name=name, inputs={"training": data_uri}, strategy=strategy, early_stopping=early,
        max_jobs=args.max_jobs, max_parallel_jobs=args.parallel, seed=args.seed,
        ranges=[ContinuousRange("lr", 1e-5, 0.3, Scaling.LOGARITHMIC), CategoricalRange("batch-size", ("16", "32", "64"))],
        static_hyperparameters={"epochs": args.epochs, "max-steps-per-epoch": args.steps, "image-size": 32,
                                "num-workers": 0, "seed": args.seed},
    )
    started = time.time()
    backend.tuner.start(spec)
    while not backend.tuner.describe(name).status.is_terminal:
        time.sleep(2)
    trials = backend.tuner.trials(name)
    best = backend.tuner.best_trial(name)
    return {
        "arm": f"{strategy.value} + early stopping {early.value}",
        "best objective": best.trial.objective if best else float("nan"),
        "epochs trained": sum(t.epochs_run for t in trials),
        "pruned": sum(t.status is TrialStatus.PRUNED for t in trials),
        "failed": sum(t.status is TrialStatus.FAILED for t in trials),
        "wall s": time.time() - started,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-jobs", type=int, default=8)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--steps", type=int, default=5, help="training steps per epoch")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-tuning-") as tmp:
        workspace = Path(tmp)
        backend = get_backend(Settings(workspace=workspace))
        data = write_demo_folder(workspace / "demo", image_size=32)
        rows = [
            run_arm(backend, "bayes-es", data.as_uri(), args, Strategy.BAYESIAN, EarlyStopping.AUTO),
            run_arm(backend, "random", data.as_uri(), args, Strategy.RANDOM, EarlyStopping.OFF),
        ]
    print(f"\nmax jobs {args.max_jobs}, parallel {args.parallel}, {args.epochs} epochs x {args.steps} steps, "
          f"objective validation:accuracy (maximize)")
    print(f"{'arm':<36} {'best objective':>15} {'epochs trained':>15} {'pruned':>7} {'failed':>7} {'wall s':>8}")
    for row in rows:
        print(f"{row['arm']:<36} {row['best objective']:>15.4f} {row['epochs trained']:>15} {row['pruned']:>7} "
              f"{row['failed']:>7} {row['wall s']:>8.0f}")
    ratio = rows[0]["epochs trained"] / max(1, rows[1]["epochs trained"])  # type: ignore[operator]
    print(f"epochs ratio (Bayesian+ES / Random): {ratio:.0%}  (target <= 60% with an objective at least as good)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
