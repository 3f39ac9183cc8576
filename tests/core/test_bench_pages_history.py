"""benchmarks/bench_pages.py's synthetic history holds what it claims (small sizes; no timing here)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from core.backend import Backend
from core.config import REPO_ROOT
from core.debugger import DebugStore
from core.profiler import ProfilerStore

SPEC = importlib.util.spec_from_file_location("bench_pages", REPO_ROOT / "benchmarks" / "bench_pages.py")
assert SPEC is not None and SPEC.loader is not None
bench_pages = importlib.util.module_from_spec(SPEC)
sys.modules["bench_pages"] = bench_pages  # dataclasses look their module up
SPEC.loader.exec_module(bench_pages)


def test_history_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMC_WORKSPACE", "unset")  # restored afterwards: the builder points the settings at its folder
    monkeypatch.setenv("SMC_SETTINGS", "unset")
    size = bench_pages.HistorySize(jobs=3, epochs=2, trial_steps=40, layers=2, profile_seconds=120, log_lines=10,
                                   tuning_jobs=2, trials=3, endpoints=2, spot_runs=2, functions=1)
    counts = bench_pages.build_history(tmp_path / "history", size)
    backend: Backend = bench_pages.use_workspace(tmp_path / "history")

    jobs = backend.runner.list_jobs(limit=1000)
    assert counts["training jobs"] == 3 and len(jobs) == 3 + 2 * 3  # the trials are training jobs too
    assert jobs[0].name == bench_pages.BIG_JOB  # the newest: what a page shows first
    assert counts["metric points"] == sum(len(backend.runner.metrics(j.name)) for j in jobs[:3]) == 3 * (2 * 4 + 2)
    assert len(backend.runner.log_tail(bench_pages.BIG_JOB, 100)) == counts["log lines"] == 10

    debug = DebugStore(backend.store)
    trial = debug.trial(bench_pages.BIG_JOB)
    assert trial is not None and trial.steps == counts["debug steps"] == 40 + 4 * 8  # train steps, 4 eval passes
    assert len(debug.tensors(bench_pages.BIG_JOB)) == 2 * 2 + 1  # weights, gradients, the loss
    assert len(debug.rules(bench_pages.BIG_JOB)) == counts["debug rules"] > 0
    assert counts["debug series rows"] > 40

    summary = ProfilerStore(backend.store).documents(bench_pages.BIG_JOB)["summary"]
    assert summary["samples"] == counts["profiler samples"] == 240
    assert summary["steps"] > 0

    assert len(backend.tuner.list_tuning_jobs()) == counts["tuning jobs"] == 2
    assert sum(len(backend.tuner.trials(j.name)) for j in backend.tuner.list_tuning_jobs()) == counts["tuning trials"]
    assert len(backend.endpoints.list_endpoints()) == counts["endpoints"] == 2
    assert counts["lambda functions"] == 1
    assert counts["spot runs"] == 2 and counts["spot events"] == 2 * 11
