"""The Profiler timeline's data for a large trace, against loading the raw JSON with ``json.load`` alone.

Run with the app environment's interpreter::

    .venv/bin/python benchmarks/bench_timeline.py [--mb 200] [--trace FILE]

Without ``--trace`` it writes a synthetic trace of about ``--mb`` MB shaped as torch.profiler's
(Kineto) GPU traces: per step, the ``phase:*`` ranges, CPU operators, a CUDA launch and a kernel per
operator, host-to-device copies. The table:

- ``json.load (baseline)``: parsing the file, nothing else;
- ``build index (once, beside the job)``: streaming the trace into the columns the timeline reads
  (``core.profiler.timeline.build_index`` + ``save_index``), done by the analysis, not the page;
- ``first render``: what the page does on opening: load the index, view the whole window, build
  the figure (target ≤ 2 s);
- ``zoom to a step (warm)``: the index in memory, view one step, build the figure (target ≤ 0.5 s).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from core.profiler.timeline import build_index, load_index, save_index, step_range, whole, window  # noqa: E402
from core.profiler.timeline_chart import timeline_figure  # noqa: E402

OPS_PER_STEP = 400
STEP_US = 50_000.0
PHASES = (("dataloader", 0.0, 0.1), ("forward", 0.1, 0.45), ("backward", 0.45, 0.9), ("optimizer", 0.9, 1.0))


def _step_events(step: int) -> list[dict[str, Any]]:
    t0 = 1_000.0 + step * STEP_US
    events: list[dict[str, Any]] = [
        {"ph": "X", "cat": "user_annotation", "name": f"phase:{name}", "pid": 1, "tid": 1, "ts": t0 + a * STEP_US,
         "dur": (b - a) * STEP_US, "args": {}} for name, a, b in PHASES]
    events.append({"ph": "X", "cat": "gpu_memcpy", "name": "Memcpy HtoD (Pinned -> Device)", "pid": 0, "tid": 7,
                   "ts": t0 + 1_000.0, "dur": 900.0, "args": {"bytes": 19267584, "correlation": step}})
    gap = 0.9 * STEP_US / OPS_PER_STEP
    for op in range(OPS_PER_STEP):
        ts = t0 + 0.1 * STEP_US + op * gap
        correlation = step * OPS_PER_STEP + op
        events += [
            {"ph": "X", "cat": "cpu_op", "name": f"aten::op_{op % 40}", "pid": 1, "tid": 1, "ts": ts, "dur": gap * 0.8,
             "args": {"External id": correlation, "Sequence number": correlation}},
            {"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "pid": 1, "tid": 1, "ts": ts + 5.0,
             "dur": 6.0, "args": {"correlation": correlation, "External id": correlation}},
            {"ph": "X", "cat": "kernel", "name": f"void kernel_{op % 60}<float>(float const*, float*)", "pid": 0,
             "tid": 7, "ts": ts + 20.0, "dur": gap * 0.6,
             "args": {"correlation": correlation, "grid": [128, 1, 1], "block": [256, 1, 1], "stream": 7}},
        ]
    return events


def write_trace(path: Path, megabytes: float) -> int:
    """A Kineto-shaped trace of about ``megabytes`` MB; returns its steps."""
    with path.open("w") as out:
        out.write('{"schemaVersion": 1, "baseTimeNanoseconds": 1790000000000000000, "traceEvents": [\n')
        step, first = 0, True
        while out.tell() < megabytes * 1e6:
            for event in _step_events(step):
                out.write(("" if first else ",\n") + json.dumps(event))
                first = False
            step += 1
        out.write('\n], "traceName": "synthetic"}\n')
    return step


def timed(call: Callable[[], Any], repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=200, help="size of the synthetic trace")
    parser.add_argument("--trace", type=Path, default=None, help="a trace of your own instead")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-timeline-") as tmp:
        trace = args.trace or Path(tmp) / "synthetic.pt.trace.json"
        if args.trace is None:
            print(f"wrote {write_trace(trace, args.mb)} steps", flush=True)
        size_mb = trace.stat().st_size / 1e6
        rows: list[tuple[str, float, str]] = []
        rows.append(("json.load (baseline)", timed(lambda: json.loads(trace.read_bytes())), ""))
        index_file = Path(tmp) / "synthetic.timeline.npz"
        rows.append(("build index (once, beside the job)",
                     timed(lambda: save_index(build_index(trace), index_file)), ""))
        index = load_index(index_file)

        def first_render() -> None:
            loaded = load_index(index_file)
            timeline_figure(window(loaded, *whole(loaded)), {}, loaded.origin_s)

        rows.append(("first render", timed(first_render), "≤ 2 s"))
        middle = len(index.steps) // 2
        rows.append(("zoom to a step (warm)",
                     timed(lambda: timeline_figure(window(index, *step_range(index, middle)), {}, index.origin_s),
                           repeat=3), "≤ 0.5 s"))
        view = window(index, *whole(index))
        print(f"\ntrace {size_mb:.0f} MB, {len(index.start):,} events, index {index_file.stat().st_size / 1e6:.0f} MB; "
              f"whole window drawn as {len(view.events.start)} events + {len(view.folded.start)} folded boxes")
    baseline = rows[0][1]
    print(f"\n{'what':<38}{'seconds':>9}{'vs json.load':>14}  target")
    for name, seconds, target in rows:
        print(f"{name:<38}{seconds:>9.2f}{seconds / baseline:>14.2f}  {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
