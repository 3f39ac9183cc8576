"""Job-side profiler analysis: reads what ``profiling.py`` writes, runs the ProfilerReport rules,
and stores pre-aggregated results and an HTML report in the job store.

Run beside a training job by the local supervisor (with the job environment's interpreter)::

    python -m analysers.profiler_sidecar --job-dir D --database DB --job-name N --training-pid P

It passes over the profiler output every ``--poll-s`` seconds while the training process
lives, once more after it is gone, and exits. For a SageMaker training job the console starts
it on its own machine (``core.profiler.evaluator``)::

    python -m analysers.profiler_sidecar --job-dir D --database DB --job-name N --profiler-path s3://... --sagemaker-job

and it follows the job through DescribeTrainingJob instead of a process, until the job has
ended and its data are read. An ``s3://`` profiler path (where the training script uploads
as it trains, ``--profile-out-dir``) is mirrored into ``<job-dir>/output/data/profiler-output``
before each pass (``s3_sync.S3Mirror``: one listing, a download per new or grown object), so
every reader works on local files. System metrics are read with smdebug's
``LocalSystemMetricsReader``. Files still being written are read up to their last whole
line; the newest sample is held back until the next pass, since its lines may not all be there yet.
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import analysers

os.environ.setdefault("SMDEBUG_LOG_LEVEL", "warning")  # smdebug logs every file list at info
if __name__ == "__main__":
    analysers.run_without_torch()  # before smdebug

import numpy as np
from smdebug.profiler.system_metrics_reader import LocalSystemMetricsReader
from smdebug.profiler.utils import TimeUnits

from analysers.sagemaker_job import SageMakerJob
from core.jobstore import JobStore
from core.processes import is_process_alive
from core.profiler._store import REPORT, ProfilerStore
from core.profiler.aggregate import build_documents, merge_operator_rows, top_operators
from core.profiler.data import (
    JobInfo,
    ProfileData,
    SeriesKey,
    StepRecords,
    phases_from_events,
    system_metrics_from_series,
)
from core.profiler.report import render_report
from core.profiler.rules import evaluate_rules
from core.profiler.timeline import TraceError, build_index, index_path, save_index
from entrypoints.s3_sync import S3Mirror

LOG = logging.getLogger("profiler_sidecar")
PROFILER_DIR = Path("output") / "data" / "profiler-output"
REPORT_FILE = Path("report") / "profiler-report.html"
POLL_S = 10.0
"""Between passes while the job runs, unless ``--poll-s`` says otherwise."""
FUTURE_S = 24 * 3600  # read events up to a day ahead: clocks of other machines may run ahead


def build_parser() -> argparse.ArgumentParser:
    """The supervisor's sidecar contract plus where the data is and how often to look."""
    parser = argparse.ArgumentParser(description="Profiler analysis beside a training job.")
    parser.add_argument("--job-dir", type=Path, required=True, help="the local job folder")
    parser.add_argument("--database", type=Path, required=True, help="the console's SQLite job store")
    parser.add_argument("--job-name", required=True, help="training job name (key of the results)")
    parser.add_argument("--training-pid", type=int, default=0, help="training process to watch; 0: one final pass")
    parser.add_argument("--sagemaker-job", action="store_true",
                        help="the job is a SageMaker training job: follow it through DescribeTrainingJob")
    parser.add_argument("--profiler-path", default=None,
                        help=f"profiler-output folder or s3:// URI (mirrored into <job-dir>/{PROFILER_DIR}); "
                             f"default <job-dir>/{PROFILER_DIR}")
    parser.add_argument("--poll-s", type=float, default=POLL_S, help="seconds between passes while training runs")
    parser.add_argument("--rule-parameters", type=json.loads, default={},
                        help='JSON overrides per rule, e.g. {"StepOutlier": {"n_outliers": 5}}')
    return parser


# --- reading ----------------------------------------------------------------------------------


class SystemSeries:
    """System-metrics series per node, accumulated pass by pass through an smdebug system-metrics reader."""

    def __init__(self, path: str) -> None:
        self.reader = LocalSystemMetricsReader(path)
        self.series: dict[str, dict[SeriesKey, tuple[list[float], list[float]]]] = {}
        self.accepted_until: dict[str, float] = {}

    def update(self, *, final: bool) -> int:
        """Reads events after each node's last accepted sample; returns how many were accepted.

        Until the final pass, each node's newest timestamp is held back (its sample may be half written).
        """
        start = min(self.accepted_until.values(), default=0.0)
        events = self.reader.get_events(start, time.time() + FUTURE_S, unit=TimeUnits.SECONDS)
        fresh: dict[str, list[Any]] = {}
        for event in events:
            if float(event.timestamp) > self.accepted_until.get(event.node_id, 0.0):
                fresh.setdefault(event.node_id, []).append(event)
        count = 0
        for node, node_events in fresh.items():
            newest = max(float(e.timestamp) for e in node_events)
            accepted = [e for e in node_events if final or float(e.timestamp) < newest]
            series = self.series.setdefault(node, {})
            for event in accepted:
                times, values = series.setdefault((event.type, event.name or "", event.dimension), ([], []))
                times.append(float(event.timestamp))
                values.append(float(event.value))
            if accepted:
                self.accepted_until[node] = max(float(e.timestamp) for e in accepted)
            count += len(accepted)
        return count

    def arrays(self, node: str) -> dict[SeriesKey, tuple[np.ndarray, np.ndarray]]:
        """One node's series as arrays ({} for a node without samples)."""
        return {k: (np.asarray(t), np.asarray(v)) for k, (t, v) in self.series.get(node, {}).items()}


class LineFiles:
    """JSON-lines files read incrementally from the byte offset reached last time: whole lines only,
    each line once. A last line without its newline waits."""

    def __init__(self, root: str, pattern: str) -> None:
        self.root = root
        self.pattern = pattern
        self.offsets: dict[str, int] = {}
        self.errors: list[str] = []

    def read(self) -> list[dict[str, Any]]:
        """The records of the whole lines written since the last call."""
        records = []
        for name, data, base in self._unread():
            end = data.rfind(b"\n") + 1
            for line in data[:end].splitlines():
                if line.strip():
                    try:
                        records.append(json.loads(line))
                    except ValueError:
                        self.errors.append(f"{name}: skipped a line that is not JSON")
            self.offsets[name] = base + end
        return records

    def _unread(self) -> Iterator[tuple[str, bytes, int]]:
        """(name, bytes after the offset, offset) of each file that grew."""
        for path in sorted(glob.glob(os.path.join(self.root, self.pattern))):
            offset = self.offsets.get(path, 0)
            if os.path.getsize(path) > offset:
                with open(path, "rb") as handle:
                    handle.seek(offset)
                    yield path, handle.read(), offset


def read_operator_summaries(root: str, unreadable: dict[Path, str]) -> list[dict[str, Any]]:
    """The operator summaries of the profiler windows (written whole, so never partial), each with
    its trace's timeline index (:func:`index_trace`); ``unreadable`` keeps the traces that could not
    be indexed between passes."""
    paths = sorted(glob.glob(os.path.join(root, "framework", "pytorch", "*_operators.json")))
    summaries = [json.loads(Path(p).read_bytes()) for p in paths]
    for path, summary in zip(paths, summaries, strict=True):
        summary.update(index_trace(Path(path).with_name(str(summary.get("trace", ""))), unreadable))
    return summaries


def index_trace(trace: Path, unreadable: dict[Path, str]) -> dict[str, str]:
    """``{"timeline": index path}`` once the trace is indexed (indexed here the first time, which
    for a large trace takes a while), or ``{"timeline_error": why not}``. A trace is written whole
    (renamed into place), so one that could not be read is not read again: ``unreadable`` says why."""
    index = index_path(trace)
    if trace not in unreadable and not index.is_file():
        try:
            save_index(build_index(trace), index)
        except TraceError as exc:
            unreadable[trace] = str(exc)
    if trace in unreadable:
        return {"timeline_error": unreadable[trace]}
    return {"timeline": str(index)}


def operators_document(summaries: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """Windows and the top operators by self CPU time and by self device (GPU) time."""
    if not summaries:
        return None
    rows = merge_operator_rows(s["operators"] for s in summaries)
    windows = [{k: s.get(k) for k in ("trace", "start", "end", "first_step", "steps", "activities", "timeline",
                                      "timeline_error") if k in s} for s in summaries]
    return {"windows": windows, "cpu": top_operators(rows, "self_cpu_ms"), "gpu": top_operators(rows, "self_device_ms")}


# --- analysis ---------------------------------------------------------------------------------


class Analyser:
    """Everything read so far about one job, and one pass: read more, judge, store.

    Args:
        job_name: the key of the results.
        path: the local profiler-output folder.
        store: where the documents go.
        rule_parameters: overrides per rule.
        source: where the job wrote its output, when not ``path`` (an S3 mirror's URI), for messages.
    """

    def __init__(self, job_name: str, path: str, store: ProfilerStore,
                 rule_parameters: dict[str, dict[str, Any]] | None = None, *, source: str | None = None) -> None:
        self.job_name = job_name
        self.path = path
        self.source = source or path
        self.store = store
        self.report_file = Path(path) / REPORT_FILE
        self.rule_parameters = rule_parameters or {}
        self.system = SystemSeries(path)
        self.events = LineFiles(path, os.path.join("framework", "events", "*", "*.json"))
        self.steps: list[dict[str, Any]] = []
        self.other: list[dict[str, Any]] = []
        self.unreadable_traces: dict[Path, str] = {}

    def run_pass(self, *, final: bool) -> bool:
        """One pass; returns whether anything was stored (nothing before the first data)."""
        self.system.update(final=final)
        for record in self.events.read():
            (self.steps if record.get("Type") == "step" else self.other).append(record)
        if not self.system.series and not self.steps and not self.other:
            if final:
                self.store.put_documents(self.job_name, {"summary": _no_data_summary(self.source)})
                return True
            return False
        info = JobInfo.from_events(self.other)
        nodes = sorted(self.system.series)
        node = info.node_id if info.node_id in nodes or not nodes else nodes[0]
        notes = [f"system metrics of {', '.join(n for n in nodes if n != node)} not analysed: this analysis covers "
                 f"{node} (one node per job)"] if len(nodes) > 1 else []
        data = ProfileData(
            system=system_metrics_from_series(self.system.arrays(node),
                                              info.interval_ms / 1000 if info.interval_ms else None),
            steps=StepRecords.from_events(self.steps), phases=phases_from_events(self.other), info=info,
            now=time.time(),
        )
        findings = evaluate_rules(data, self.rule_parameters)
        operators = operators_document(read_operator_summaries(self.path, self.unreadable_traces))
        documents = build_documents(data, findings, operators, state="complete" if final else "collecting",
                                    errors=[*notes, *self.events.errors[-20:]])
        html = render_report(documents, self.job_name)
        documents[REPORT] = {"html": html}
        self.report_file.parent.mkdir(parents=True, exist_ok=True)
        partial = self.report_file.with_suffix(".partial")
        partial.write_text(html, encoding="utf-8")
        os.replace(partial, self.report_file)
        self.store.put_documents(self.job_name, documents)
        return True


def _no_data_summary(source: str) -> dict[str, Any]:
    if source.startswith("s3://"):
        reason = (f"the job ended without writing profiler output to {source}: it ran with --profile false, its "
                  "uploads failed (see its log), or it stopped before the first sample")
    else:
        reason = (f"no profiler data under {source}: the job ran with --profile false, wrote elsewhere "
                  "(--profiler-dir), or stopped before the first sample")
    return {"state": "complete", "samples": 0, "steps": 0, "no_data": True, "errors": [reason]}


def main(argv: Sequence[str] | None = None) -> int:
    """Follow the job, pass over the data every poll, make a final pass once it ended, exit 0 (1 if that failed)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout, force=True)
    args = build_parser().parse_args(argv)
    source = args.profiler_path or str(args.job_dir / PROFILER_DIR)
    mirror = S3Mirror(source, args.job_dir / PROFILER_DIR) if source.startswith("s3://") else None
    path = str(args.job_dir / PROFILER_DIR) if mirror else source
    analyser = Analyser(args.job_name, path, ProfilerStore(JobStore(args.database)), args.rule_parameters,
                        source=source)
    if args.sagemaker_job:
        running, watch_s = SageMakerJob(args.job_name).running, args.poll_s  # an API call: once per poll
    else:
        running, watch_s = (lambda: is_process_alive(args.training_pid, "")), min(0.5, args.poll_s)

    def run_pass(final: bool) -> None:
        if mirror is not None:
            mirror.sync()
        analyser.run_pass(final=final)

    LOG.info("profiler analysis of %s from %s", args.job_name, source)
    next_pass = time.monotonic() + args.poll_s
    try:
        while running():
            time.sleep(watch_s)
            if time.monotonic() >= next_pass:
                try:
                    run_pass(final=False)
                except Exception:  # a failed pass is retried at the next one
                    traceback.print_exc()
                next_pass = time.monotonic() + args.poll_s
        run_pass(final=True)
    except Exception as exc:
        traceback.print_exc()
        try:  # keep what earlier passes stored, and say why the last one failed
            summary = analyser.store.documents(args.job_name).get("summary") or {"samples": 0, "steps": 0}
            errors = [*summary.get("errors", []), f"the profiler analysis failed: {exc!r}"]
            summary.update(state="failed", errors=errors)
            analyser.store.put_documents(args.job_name, {"summary": summary})
        except Exception:
            traceback.print_exc()
        return 1
    LOG.info("profiler analysis done%s", f" ({mirror.objects} objects read from S3)" if mirror else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
