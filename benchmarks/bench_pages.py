"""Every page's first render and warm rerun, on the demo workspace and on a large synthetic history.

    .venv/bin/python benchmarks/bench_pages.py [--workspace all|demo|history] [--pages data,debugger,...]
                                               [--reruns 3] [--keep DIR] [--layers 149]

Each page runs through ``streamlit.testing.v1.AppTest`` (the real entrypoint and page code,
the real local backend, in this process): the page's first render in a new session with
Streamlit's caches emptied (``st.cache_data`` and ``st.cache_resource``; the modules are
already imported, as in a running server), then ``--reruns`` reruns of the same session, the
median counting as the warm rerun. Target: at most 1 s warm. The baseline row is an empty
one-line script under the same harness: AppTest's own cost. Not timed: the websocket transfer
and the browser's drawing (the script run, the figures' JSON and the protobuf messages are).

Workspaces (built first, timed for information):

- ``demo``: the bundled demo dataset ingested and one finished demo training job record.
- ``history``: 50 finished training jobs with per-epoch metrics; the newest, ``big-job``,
  also has a 5,000-step Debugger trial (149 layers: EfficientNet-Lite0's weight tensors,
  written with smdebug and copied by the evaluator's collector, job environment), one hour of
  500 ms system metrics with 3 steps/s (analysed by the profiler sidecar, job environment)
  and a 20,000-line log; 3 tuning jobs of 12 trials (each trial a training job with
  metrics), 8 endpoint records, 8 spot runs with their events and 2 Lambda functions. Every
  page that picks a job picks ``big-job`` (Training jobs, Debugger, Profiler); Tuning and EC2
  Spot pick their newest record. Building it takes minutes (the trial's smdebug files above
  all): ``--keep DIR`` keeps both workspaces for later runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the job-environment part imports no more than it needs
    from streamlit.testing.v1 import AppTest

    from core.backend import Backend
    from core.entities import DatasetRecord

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO_ROOT), str(Path(__file__).resolve().parent)]
JOB_PYTHON = REPO_ROOT / ".venv-job" / "bin" / "python"
APP = str(REPO_ROOT / "streamlit_app.py")
BIG_JOB = "big-job"
TARGET_S = 1.0
PAGES = ("data", "training", "tuning", "debugger", "profiler", "deploy", "spot", "lambda_fn")
EPOCH_METRICS = ("train:loss", "train:accuracy", "validation:loss", "validation:accuracy")


@dataclass(frozen=True)
class HistorySize:
    """How large a synthetic history is (the defaults are the benchmark's)."""

    jobs: int = 50
    epochs: int = 10
    trial_steps: int = 5000
    layers: int = 149
    profile_seconds: float = 3600
    log_lines: int = 20_000
    tuning_jobs: int = 3
    trials: int = 12
    endpoints: int = 8
    spot_runs: int = 8
    functions: int = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", choices=("all", "demo", "history"), default="all")
    parser.add_argument("--reruns", type=int, default=3, help="warm reruns per page (the median counts)")
    parser.add_argument("--pages", default=",".join(PAGES), help="comma-separated pages to time (default: all)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="build the workspaces here and keep them; a later run with the same folder reuses them")
    parser.add_argument("--layers", type=int, default=HistorySize.layers, help="weight tensors of the Debugger trial")
    parser.add_argument("--part", choices=("pages", "debug-trial"), default="pages", help=argparse.SUPPRESS)
    parser.add_argument("--database", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--trial-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--trial-steps", type=int, default=HistorySize.trial_steps, help=argparse.SUPPRESS)
    return parser


# --- workspaces ---------------------------------------------------------------------------------


def use_workspace(folder: Path) -> Backend:
    """Points the console's settings at ``folder`` (as the page tests do) and returns its backend."""
    os.environ["SMC_WORKSPACE"] = str(folder)
    os.environ["SMC_SETTINGS"] = str(folder.parent / f"{folder.name}-no-settings.toml")
    from core.backend import get_backend
    from core.config import load_settings

    return get_backend(load_settings())


def build_demo(folder: Path) -> dict[str, int]:
    """The demo dataset ingested as the Data page does it, and one finished demo training job."""
    from core.catalog import register_dataset, source_label
    from core.datasets import DemoSource, prepare_dataset

    backend = use_workspace(folder)
    prepared = prepare_dataset(DemoSource(), backend.settings.workspace / "staging")
    record = register_dataset(backend, prepared.root, name="digits", source=source_label(DemoSource()),
                              report=prepared.report.to_dict())
    prepared.discard()
    _training_job(backend, "demo-job", time.time() - 600, epochs=2, dataset_uri=record.uri)
    return {"datasets": len(backend.store.list_datasets()), "training jobs": len(backend.runner.list_jobs())}


def build_history(folder: Path, size: HistorySize = HistorySize()) -> dict[str, int]:
    """The large synthetic history (see the module docstring); returns what it wrote, counted as written."""
    from core.entities import DatasetRecord

    backend = use_workspace(folder)
    now = time.time()
    dataset = DatasetRecord("digits", (folder / "datasets" / "digits").as_uri(), "demo", now - 86_400,
                            {"total_images": 1797, "classes": [str(d) for d in range(10)]})
    backend.store.put_dataset(dataset)
    counts: dict[str, int] = {"training jobs": 0, "metric points": 0}
    for index in range(size.jobs):
        name = BIG_JOB if index == 0 else f"job-{index:03d}"
        counts["metric points"] += _training_job(backend, name, now - 4000 - 3600 * index, epochs=size.epochs,
                                                 dataset_uri=dataset.uri)
        counts["training jobs"] += 1
    job_dir = folder / "jobs" / BIG_JOB
    counts["log lines"] = _write_log(backend, job_dir, size.log_lines)
    counts.update(_debug_trial(backend, job_dir, size))
    counts["profiler samples"] = _profile(backend, job_dir, now - 3900, size.profile_seconds)
    counts.update(_tuning(backend, dataset, now, size))
    counts.update(_endpoints_and_functions(backend, now, size))
    counts["spot runs"], counts["spot events"] = _spot_runs(backend, dataset, now, size.spot_runs)
    return counts


def _training_job(backend: Backend, name: str, created: float, *, epochs: int, dataset_uri: str,
                  hyperparameters: dict[str, str] | None = None) -> int:
    """A completed job with per-epoch metrics and a (fake) model; returns the metric points written."""
    from core.entities import MetricPoint, TrainingJob
    from core.types import JobStatus

    final = {"test:accuracy": 0.95, "validation:accuracy": 0.96}
    backend.store.insert_job(TrainingJob(
        name=name, status=JobStatus.COMPLETED, backend="local", created_at=created, started_at=created + 5,
        ended_at=created + 3605, hyperparameters={"model": "efficientnet_lite0", "epochs": str(epochs), "lr": "0.002",
                                                  **(hyperparameters or {})},
        inputs={"training": dataset_uri}, model_uri=f"file:///models/{name}/model.tar.gz", final_metrics=final))
    points = [MetricPoint(metric, 1 / (epoch + 1) if "loss" in metric else 1 - 0.5 / (epoch + 1), epoch,
                          created + 60 * epoch) for epoch in range(epochs) for metric in EPOCH_METRICS]
    points += [MetricPoint(metric, value, epochs - 1, created + 3600) for metric, value in final.items()]
    backend.store.add_metrics(name, points)
    return len(points)


def _write_log(backend: Backend, job_dir: Path, lines: int) -> int:
    """The big job's log, one progress line per step as a long run leaves it."""
    from core.training.layout import JobLayout

    path = JobLayout(job_dir).log_path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"epoch {1 + i // 1000} step {i} loss {2.3 / (1 + i / 500):.4f} images/s 98.7\n"
                            for i in range(lines)))
    backend.store.update_job(BIG_JOB, job_dir=str(job_dir))
    return lines


def _debug_trial(backend: Backend, job_dir: Path, size: HistorySize) -> dict[str, int]:
    """The big job's trial: written with smdebug and collected in the job environment, rules set here."""
    from core.debugger import DebugStore, RuleResult, RuleStatus
    from core.debugger.launch import DEFAULT_RULES

    subprocess.run([str(JOB_PYTHON), __file__, "--part", "debug-trial", "--database", str(backend.store.path),
                    "--trial-dir", str(job_dir / "debug-output"), "--trial-steps", str(size.trial_steps),
                    "--layers", str(size.layers)], check=True, cwd=REPO_ROOT)
    store = DebugStore(backend.store)
    now = time.time()
    rules = [RuleResult(BIG_JOB, rule, RuleStatus.NO_ISSUES_FOUND, now, evaluated_step=size.trial_steps - 1,
                        message="no issue found") for rule in DEFAULT_RULES]
    rules[0] = RuleResult(BIG_JOB, DEFAULT_RULES[0], RuleStatus.ISSUES_FOUND, now, step=1200,
                          tensor="gradient/Net_layer3.weight", message="a gradient fell below 1e-07",
                          meaning="Gradients vanish.", advice="Check the initialisation.")
    store.init_rules(BIG_JOB, rules)
    store.notify(BIG_JOB, "warning", f"{DEFAULT_RULES[0]} found an issue at step 1200", rule=DEFAULT_RULES[0])
    trial = store.trial(BIG_JOB)
    with backend.store.transaction() as conn:
        rows = conn.execute("SELECT COUNT(*) FROM debug_series WHERE job_name = ?", (BIG_JOB,)).fetchone()[0]
    return {"debug steps": trial.steps if trial else 0, "debug series rows": rows, "debug rules": len(rules)}


def write_debug_trial(database: Path, trial_dir: Path, train_steps: int, layers: int) -> None:
    """Job environment: a trial as bench_debugger.py writes it, copied into ``database`` for the big job."""
    import numpy as np

    sys.path[:0] = [str(REPO_ROOT / "entrypoints"), str(REPO_ROOT / "tests" / "entrypoints")]
    import synthetic_trials
    from smdebug.analysis.utils import no_refresh
    from smdebug.trials import create_trial

    import debug_hook
    from analysers.debug_sidecar import Collector
    from core.debugger import DebugStore, TrialState
    from core.jobstore import JobStore

    debug_hook.patch_tensor_writer()
    rng = np.random.default_rng(0)
    every = min(250, max(train_steps // 4, 1))
    losses = 2.3 * np.exp(-np.arange(train_steps) / 1500) + rng.normal(0, 0.05, train_steps)
    evals = [list(0.9 * 2.3 * np.exp(-(k + 1) * every / 1500) + rng.normal(0, 0.02, 8))
             for k in range(train_steps // every)]
    steps, collections = synthetic_trials.training_run(list(losses), eval_losses=evals, steps_per_epoch=every,
                                                       layers=layers, save_interval=10, seed=1)
    synthetic_trials.write_trial(trial_dir, steps, collections)
    store = DebugStore(JobStore(database))
    trial = create_trial(str(trial_dir))
    trial.maybe_refresh()
    collector = Collector(store, BIG_JOB, trial, [])
    with no_refresh(trial):
        collector.ingest(trial.steps())
    store.set_trial(BIG_JOB, path=str(trial_dir), state=TrialState.COMPLETE, steps=len(steps), last_step=len(steps) - 1)


def _profile(backend: Backend, job_dir: Path, start: float, seconds: float) -> int:
    """``seconds`` of system metrics and steps (bench_profiler.py's writer), analysed by the sidecar."""
    from bench_profiler import INTERVAL_S, write_synthetic_hour

    start = float(int(start))
    write_synthetic_hour(job_dir / "output" / "data" / "profiler-output", start, seconds)
    result = subprocess.run(
        [str(JOB_PYTHON), "-m", "analysers.profiler_sidecar", "--job-dir", str(job_dir),
         "--database", str(backend.store.path), "--job-name", BIG_JOB, "--training-pid", "0"],
        capture_output=True, text=True, timeout=900, cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    if result.returncode != 0:
        raise RuntimeError(f"the profiler sidecar failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return int(seconds / INTERVAL_S)


def _tuning(backend: Backend, dataset: DatasetRecord, now: float, size: HistorySize) -> dict[str, int]:
    """Finished tuning jobs written into the store (as the Tuning page test seeds them), each trial a job."""
    from core.tuning import CategoricalRange, ContinuousRange, IntegerRange, Scaling, Trial, TrialStatus, TuningJobSpec
    from core.tuning._store import TuningStore
    from core.types import JobStatus

    tuning = TuningStore(backend.store)
    trials = 0
    for index in range(size.tuning_jobs):
        spec = TuningJobSpec(
            name=f"tune-{index:02d}", ranges=(ContinuousRange("lr", 1e-4, 1e-2, Scaling.LOGARITHMIC),
                                              CategoricalRange("batch-size", ("16", "32", "64")),
                                              IntegerRange("epochs", 1, 3, Scaling.LINEAR)),
            inputs={"training": dataset.uri}, static_hyperparameters={"model": "efficientnet_lite0", "image-size": 64},
            max_jobs=size.trials, max_parallel_jobs=2)
        created = now - 200_000 - 10_000 * index
        tuning.insert_tuning_job(spec, backend="local", created_at=created)
        for number in range(size.trials):
            hyperparameters = {"lr": f"{1e-4 * 1.4 ** number:.6f}", "batch-size": ("16", "32", "64")[number % 3],
                               "epochs": str(1 + number % 3)}
            job_name = spec.trial_name(number)
            epochs = int(hyperparameters["epochs"])
            _training_job(backend, job_name, created + 100 * number, epochs=epochs, dataset_uri=dataset.uri,
                          hyperparameters=hyperparameters)
            status = TrialStatus.PRUNED if number % 5 == 4 else TrialStatus.COMPLETED
            tuning.insert_trial(spec.name, Trial(
                number=number, job_name=job_name, status=status, hyperparameters=hyperparameters,
                objective=0.5 + (0.04 * number) % 0.45, epochs_run=epochs, started_at=created + 100 * number,
                ended_at=created + 100 * number + 90))
            trials += 1
        tuning.update_tuning_job(spec.name, status=JobStatus.COMPLETED, ended_at=created + 100 * size.trials + 90)
    return {"tuning jobs": size.tuning_jobs, "tuning trials": trials}


def _endpoints_and_functions(backend: Backend, now: float, size: HistorySize) -> dict[str, int]:
    """Endpoint records whose servers are gone (Failed, as after a restart) and Lambda functions on them."""
    from core.endpoints import Endpoint, EndpointStatus
    from core.endpoints._store import EndpointStore
    from core.lambdas import FunctionSpec

    store = EndpointStore(backend.store)
    for index in range(size.endpoints):
        store.insert(Endpoint(name=f"endpoint-{index:02d}", status=EndpointStatus.FAILED, backend="local",
                              model_uri=f"file:///models/job-{index + 1:03d}/model.tar.gz",
                              created_at=now - 600 * index,
                              failure_reason="the server process stopped (killed, or the machine restarted)"))
    functions = backend.functions
    for index in range(size.functions):
        functions.deploy(FunctionSpec(function_name=f"classify-{index:02d}", endpoint_name="endpoint-00"))
    return {"endpoints": len(store.list()), "lambda functions": len(functions.list_functions())}


def _spot_runs(backend: Backend, dataset: DatasetRecord, now: float, runs: int) -> tuple[int, int]:
    """Completed spot runs with their events (one interruption each), as the Spot page test seeds them."""
    from core.spot.entities import SpotEvent, SpotRun, SpotRunSpec, SpotRunStatus
    from core.spot.store import SpotStore

    store = SpotStore(backend.store)
    events = 0
    for index in range(runs):
        name, t = f"spot-{index:02d}", now - 5000 * (index + 1)
        spec = SpotRunSpec(name=name, data_uri=dataset.uri, hyperparameters={"model": "efficientnet_lite0",
                                                                             "epochs": "2", "seed": "42"},
                           spot_price_per_h=0.3, on_demand_price_per_h=1.0)
        store.insert_run(SpotRun(name=name, backend="local", status=SpotRunStatus.PENDING, spec=spec, created_at=t))
        timeline = [("launch", "i-a", {}), ("start", "i-a", {"step": 0}), ("notice", "i-a", {"action": "stop"}),
                    ("checkpoint", "i-a", {"step": 17, "reason": "notice"}),
                    ("interrupted", "i-a", {"notice_at": t + 20, "progress_step": 17, "checkpoint_step": 17,
                                            "lost_steps": 0, "steps_per_epoch": 40, "alive_at_kill": False,
                                            "checkpoint_after_notice_s": 1.5}),
                    ("relaunch", "", {}), ("launch", "i-a", {}), ("resume", "i-a", {"step": 17})]
        timeline += [("checkpoint", "i-a", {"step": 40 * e, "reason": "epoch"}) for e in (1, 2)]
        timeline += [("completed", "i-a", {})]
        for offset, (kind, instance, detail) in enumerate(timeline):
            store.add_event(SpotEvent(name, t + 10 * offset, kind, instance, detail))
        events += len(timeline)
        store.update_run(name, status=SpotRunStatus.COMPLETED, ended_at=t + 10 * len(timeline), detail="Completed",
                         model_uri=f"file:///models/{name}/model.tar.gz", final_metrics={"test:accuracy": 0.96})
    return runs, events


# --- timing -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    page: str
    workspace: str
    first_s: float
    warm_s: float
    shown: str = ""
    error: str = ""


def _chosen(page: str) -> dict[str, str]:
    """Session state that makes a page show the big records (pages fall back to the newest otherwise)."""
    return {"training": {"selected_job": BIG_JOB}, "debugger": {"selected_job": BIG_JOB},
            "profiler": {"selected_job": BIG_JOB}, "tuning": {"selected_tuning_job": "tune-00"},
            "spot": {"spot_selected": "spot-00"}}.get(page, {})


def time_page(page: str, workspace: str, reruns: int) -> Timing:
    """The page's first render in a new session with empty caches, then the median of ``reruns`` reruns."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    st.cache_data.clear()
    st.cache_resource.clear()
    app = AppTest.from_file(APP, default_timeout=300)
    for key, value in _chosen(page).items():
        app.session_state[key] = value
    app.switch_page(f"app_pages/{page}.py")
    first, warm = _first_and_warm(app, reruns)
    error = "; ".join(str(e.value)[:120] for e in app.exception)
    shown = f"{len(app.get('plotly_chart'))} charts, {len(app.dataframe)} tables"
    return Timing(page, workspace, first, warm, shown, error)


def time_baseline(reruns: int) -> Timing:
    """AppTest's own cost: a one-line script."""
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_string("import streamlit as st\nst.write('baseline')", default_timeout=60)
    first, warm = _first_and_warm(app, reruns)
    return Timing("(empty script)", "baseline", first, warm)


def _first_and_warm(app: AppTest, reruns: int) -> tuple[float, float]:
    """Seconds of the first run, and the median of ``reruns`` reruns in the same session."""
    started = time.perf_counter()
    app.run()
    first = time.perf_counter() - started
    warm = []
    for _ in range(reruns):
        started = time.perf_counter()
        app.run()
        warm.append(time.perf_counter() - started)
    return first, statistics.median(warm)


def warm_up(folder: Path) -> None:
    """Imports every page's modules once (an empty workspace), as a running server has them."""
    use_workspace(folder)
    for page in PAGES:
        time_page(page, "warm-up", 1)


def print_table(rows: Sequence[Timing]) -> None:
    target = f"target <= {TARGET_S:g} s warm"
    print(f"\n{'page':<16}{'workspace':<11}{'first render s':>16}{'warm rerun s':>14}  {target:<20}shown")
    for row in rows:
        verdict = "met" if row.warm_s <= TARGET_S else "NOT met"
        print(f"{row.page:<16}{row.workspace:<11}{row.first_s:>16.3f}{row.warm_s:>14.3f}  {verdict:<20}{row.shown}"
              + (f"  (exception: {row.error})" if row.error else ""))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.part == "debug-trial":
        write_debug_trial(args.database, args.trial_dir, args.trial_steps, args.layers)
        return 0
    import logging

    logging.getLogger("streamlit").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="bench-pages-") as tmp:
        root = args.keep or Path(tmp)
        workspaces = ("demo", "history") if args.workspace == "all" else (args.workspace,)
        for name in workspaces:
            built = root / f"{name}.built"
            if not built.exists():
                started = time.perf_counter()
                counts = build_demo(root / name) if name == "demo" else build_history(root / name,
                                                                                     HistorySize(layers=args.layers))
                built.write_text(f"built in {time.perf_counter() - started:.1f} s: "
                                 + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
            print(f"{name}: {built.read_text()}", flush=True)
        warm_up(root / "empty")
        rows = [time_baseline(args.reruns)]
        for name in workspaces:
            use_workspace(root / name)
            for page in args.pages.split(","):
                rows.append(time_page(page, name, args.reruns))
                print(f"timed {page} ({name})", file=sys.stderr, flush=True)
        print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
