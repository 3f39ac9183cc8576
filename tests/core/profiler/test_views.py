"""What the page reads: the view of stored documents and the message when there is nothing."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from core.entities import TrainingJob
from core.jobstore import JobStore
from core.profiler import ProfilerStore, RuleStatus
from core.profiler.aggregate import build_documents
from core.profiler.data import JobInfo
from core.profiler.rules import evaluate_rules
from core.profiler.views import load_profile, no_data_message
from core.types import JobStatus
from tests.core.profiler.conftest import T0, data, steps, system


def job(status: JobStatus = JobStatus.COMPLETED, **hyperparameters: str) -> TrainingJob:
    return TrainingJob(name="job", status=status, backend="local", created_at=time.time(),
                       hyperparameters=hyperparameters)


def test_view_of_stored_documents(tmp_path: Path) -> None:
    store = ProfilerStore(JobStore(tmp_path / "db"))
    assert load_profile(store, "job") is None
    profile = data(system(100), steps(np.full(30, 0.1)), info=JobInfo(process_start=T0, cpus=2, num_workers=0))
    store.put_documents("job", build_documents(profile, evaluate_rules(profile),
                                               {"windows": [{}], "cpu": [{"name": "aten::mm", "calls": 2,
                                                                          "self_cpu_ms": 1.5}], "gpu": []},
                                               state="collecting"))
    view = load_profile(store, "job")
    assert view is not None and view.is_collecting and view.has_data and view.has_gpu
    assert [f.rule for f in view.fired] == ["Dataloader"]
    rows = view.findings_rows()
    assert rows[0]["rule"] == "Dataloader" and rows[0]["status"] == RuleStatus.ISSUES_FOUND.value
    assert len(rows) == 10
    assert view.operator_rows("cpu") == [{"operator": "aten::mm", "kind": "operator", "calls": 2, "self_cpu_ms": 1.5,
                                          "cpu_total_ms": 0.0, "self_cpu_memory_mb": 0.0, "cpu_memory_mb": 0.0}]
    assert view.epoch_rows()[0]["steps"] == 30
    assert {r["metric"] for r in view.usage_rows()} >= {"CPU", "GPU", "Memory"}
    assert no_data_message(job(), view) is None


def test_no_data_messages_say_why() -> None:
    assert "profile=false" in no_data_message(job(profile="false"), None)
    assert "yet" in no_data_message(job(JobStatus.IN_PROGRESS), None)
    assert "not profiled" in no_data_message(job(), None)
    assert "reading the job's output" in no_data_message(job(), None, reading=True)
    from core.profiler.views import ProfileView

    empty = ProfileView("job", {"state": "complete", "samples": 0, "steps": 0, "errors": ["no profiler data under /x"]})
    assert no_data_message(job(), empty) == "No profiler data: no profiler data under /x"
