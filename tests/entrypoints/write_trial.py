"""Writes (part of) a synthetic trial, as a job would over time (job environment).

    .venv-job/bin/python tests/entrypoints/write_trial.py OUT SCENARIO [--start K] [--stop M] [--end]

Scenarios: ``healthy`` (falling loss, a validation pass every 20 train steps) and
``diverging`` (the loss jumps from 2.3 to 1e4 after the first step). ``--start``/``--stop``
write global steps [K, M) only, with the mode counters the earlier steps left, so calling it
twice ([0, 30) then [30, end)) is a job that keeps writing; ``--end`` adds the end marker.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import synthetic_trials as st
from smdebug.core.access_layer.utils import training_has_ended


def scenario(name: str) -> tuple[list[st.Step], dict[str, list[str]]]:
    rng = np.random.default_rng(3)
    if name == "healthy":
        losses = list(2.3 * np.exp(-np.arange(60) / 25) + rng.normal(0, 0.02, 60))
        evals = [list(2.0 * np.exp(-(k + 1) * 20 / 25) + rng.normal(0, 0.01, 4)) for k in range(3)]
        labels = [rng.integers(0, 4, 16) for _ in range(72)]
        logits = [np.eye(4, dtype=np.float32)[y] * 5 + rng.normal(0, 1, (16, 4)).astype(np.float32) for y in labels]
        return st.training_run(losses, eval_losses=evals, steps_per_epoch=20, save_interval=5, labels=labels,
                               predictions=logits)
    if name == "diverging":
        return st.training_run([2.3] + [1e4] * 39, save_interval=5)
    raise SystemExit(f"unknown scenario {name}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("scenario")
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--stop", type=int, default=None)
    parser.add_argument("--end", action="store_true")
    args = parser.parse_args()
    steps, collections = scenario(args.scenario)
    stop = len(steps) if args.stop is None else args.stop
    if args.start == 0:
        st.write_trial(args.out, steps[:stop], collections, ended=False)
    else:
        counters = {mode: sum(1 for m, _ in steps[: args.start] if m == mode) for mode in st.MODES}
        st.append_steps(args.out, steps[args.start : stop], args.start, counters)
    if args.end:
        training_has_ended(str(args.out))
    print(len(steps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
