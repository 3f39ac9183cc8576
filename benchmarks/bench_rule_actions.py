"""From a Debugger rule firing to the job stopped, locally: through EventBridge and Lambda, and directly.

    .venv/bin/python benchmarks/bench_rule_actions.py [--runs 2]

Each run trains two real local jobs on the digits demo at 32 px with lr=10 and
``LossNotDecreasing:stop`` (the rule the issue names), with the job's own debug sidecar, as
the Training page starts them:

- ``direct`` (the baseline): no rule actions deployed; the evaluator stops the job itself
  (SIGTERM to its supervisor, ``Stopper``);
- ``event → Lambda``: rule actions deployed; the evaluator puts the fired rule on the local
  bus, the action zip runs in its own process and calls StopTrainingJob on the loopback
  SageMaker, which stops the job.

Measured per job: from the rule firing (the evaluator's "found an issue" notification) to the
job Stopped (its ``ended_at``), and the part of it the action function took (from the event
to its outcome line). Target: at most 10 s through the chain.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from core.backend import get_backend  # noqa: E402
from core.config import DEFAULT_JOB_PYTHON, Settings  # noqa: E402
from core.datasets import write_demo_folder  # noqa: E402
from core.debugger import DebugStore  # noqa: E402
from core.rule_actions import ActionsSpec  # noqa: E402
from core.training import TrainingJobSpec  # noqa: E402
from core.types import JobStatus  # noqa: E402

HYPERPARAMETERS = {"epochs": 6, "max-steps-per-epoch": 20, "image-size": 32, "num-workers": 0, "batch-size": 32,
                   "seed": 42, "lr": 10, "debug-rules": "LossNotDecreasing:stop"}
TARGET_S = 10.0


def run_job(workspace: Path, demo: Path, name: str, *, chain: bool) -> tuple[float, float | None]:
    """Seconds from the rule firing to the job Stopped, and the action function's share (chain only)."""
    backend = get_backend(Settings(workspace=workspace, job_python=DEFAULT_JOB_PYTHON))
    if chain:
        backend.rule_actions.deploy(ActionsSpec())
    else:
        backend.rule_actions.remove()
    hps = dict(HYPERPARAMETERS) | ({"debug-event-bus": "default"} if chain else {})
    backend.runner.start(TrainingJobSpec(name=name, inputs={"training": demo.as_uri()},
                                         hyperparameters=hps))  # type: ignore[arg-type]
    deadline = time.time() + 900
    while not (job := backend.runner.describe(name)).status.is_terminal:
        if time.time() > deadline:
            raise SystemExit(f"{name} did not end: {backend.runner.log_tail(name, 20)}")
        time.sleep(0.5)
    if job.status is not JobStatus.STOPPED or job.ended_at is None:
        raise SystemExit(f"{name} ended {job.status.value}, not Stopped: the rule did not fire in time")
    store = DebugStore(backend.store)
    fired = min(n.created_at for n in store.notifications(name) if "found an issue" in n.message)
    function_s = None
    if chain:
        [event] = store.events(name)
        [record] = backend.rule_actions.history(name)
        function_s = record.at - event.sent_at
    return job.ended_at - fired, function_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    rows: dict[str, list[tuple[float, float | None]]] = {"direct": [], "event → Lambda": []}
    with tempfile.TemporaryDirectory(prefix="bench-rule-actions-") as scratch:
        workspace = Path(scratch) / "workspace"
        demo = write_demo_folder(Path(scratch) / "digits", image_size=32)
        for run in range(args.runs):
            rows["direct"].append(run_job(workspace, demo, f"direct-{run}", chain=False))
            rows["event → Lambda"].append(run_job(workspace, demo, f"chain-{run}", chain=True))
    print(f"\nFrom a rule firing to the job Stopped ({args.runs} run(s) each, lr=10, LossNotDecreasing:stop)\n")
    print(f"{'path':<16} {'median s':>9} {'max s':>7} {'function s':>11}   target")
    for path, values in rows.items():
        stops = [v[0] for v in values]
        function = [v[1] for v in values if v[1] is not None]
        share = f"{statistics.median(function):.2f}" if function else "–"
        target = f"≤ {TARGET_S:.0f} s: {'met' if max(stops) <= TARGET_S else 'MISSED'}" if function else "baseline"
        print(f"{path:<16} {statistics.median(stops):>9.2f} {max(stops):>7.2f} {share:>11}   {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
