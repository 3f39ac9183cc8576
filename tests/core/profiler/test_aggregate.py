"""Pre-aggregation: bounded series, step statistics, phases, and JSON-safe documents."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.profiler import aggregate
from core.profiler.data import JobInfo, Phase
from core.profiler.rules import evaluate_rules
from tests.core.profiler.conftest import T0, data, steps, system


@pytest.mark.parametrize(("span", "interval", "expected"), [(60, 0.5, 0.5), (3600, 0.5, 5), (36000, 0.5, 60),
                                                            (100, 1.0, 1), (3600, 60.0, 60)])
def test_bucket_seconds_keep_series_short(span: float, interval: float, expected: float) -> None:
    assert aggregate.bucket_seconds(span, interval) == expected


def test_bucket_means_ignore_nan_and_leave_empty_buckets_empty() -> None:
    times = np.array([0.0, 0.4, 1.1, 3.2])
    columns = np.array([[1.0, 10.0], [3.0, np.nan], [5.0, 7.0], [9.0, 9.0]])
    means = aggregate.bucket_means(times, columns, 0.0, 1.0, 4)
    np.testing.assert_allclose(means[:, 0], [2.0, 5.0, np.nan, 9.0])
    np.testing.assert_allclose(means[:, 1], [10.0, 7.0, np.nan, 9.0])


def test_an_hour_of_16_cores_and_a_gpu_fits_in_720_buckets(rng: np.random.Generator) -> None:
    n = 7200
    doc = aggregate.timeline_document(data(system(n, cores=16, cpu=rng.uniform(0, 100, (n, 16)))))
    assert doc["bucket_s"] == 5 and len(doc["times"]) == 720
    assert len(doc["cores"]) == 16 and all(len(c) == 720 for c in doc["cores"])
    assert set(doc["gpu"]) == {"gpu0"} and len(doc["cpu"]) == 720
    assert 45 < float(np.mean(doc["cpu"])) < 55


def test_steps_document_histogram_outliers_and_epochs(rng: np.random.Generator) -> None:
    durations = rng.normal(0.2, 0.01, 300)
    durations[::30] = 2.0
    profiled = np.zeros(300, dtype=bool)
    profiled[5:8] = True
    doc = aggregate.steps_document(steps(durations, profiled=profiled, epoch_every=100, dataloader_share=0.25))
    assert doc["count"] == 300 and doc["profiled_steps"] == 3 and doc["outliers"] == 10
    hist = doc["histogram"]
    assert sum(hist["normal"]) + sum(hist["outlier"]) == 297 and sum(hist["outlier"]) == 10
    assert len(hist["edges"]) == aggregate.HISTOGRAM_BINS + 1
    assert [e["epoch"] for e in doc["per_epoch"]] == [1, 2, 3]
    assert doc["per_epoch"][1]["steps"] == 100
    total = sum(doc["phases_total"].values())
    assert doc["phases_total"]["dataloader"] / total == pytest.approx(0.25)
    assert len(doc["recent"]) == aggregate.RECENT_STEPS and len(doc["outlier_steps"]) == 10
    assert doc["images_per_s"] == pytest.approx(32 * 297 / durations[~profiled].sum())


def test_job_phases_add_initialization_and_finalization() -> None:
    info = JobInfo(process_start=T0, ended_at=T0 + 200)
    trained = data(step_records=steps(np.full(10, 1.0), start=T0 + 20), info=info,
                   phases=(Phase("training", T0 + 20, T0 + 30, 1), Phase("evaluation", T0 + 30, T0 + 40),
                           Phase("profiler window", T0 + 22, T0 + 25)))
    phases = aggregate.job_phases(trained)
    assert [p.name for p in phases] == ["initialization", "training", "profiler window", "evaluation", "finalization"]
    assert aggregate.time_split(phases) == {"initialization": 20.0, "training": 10.0, "evaluation": 10.0,
                                            "finalization": 160.0}


def test_documents_are_strict_json_even_with_gaps() -> None:
    gappy = system(50, cpu=np.where(np.arange(50) % 7 == 0, np.nan, 50.0))
    profile = data(gappy)
    documents = aggregate.build_documents(profile, evaluate_rules(profile), None, state="collecting")
    text = json.dumps(documents, allow_nan=False)
    assert set(documents) == {"summary", "timeline", "steps", "phases", "findings", "operators"}
    assert json.loads(text)["summary"]["state"] == "collecting"
    assert documents["summary"]["fired"] == [f["rule"] for f in documents["findings"]["findings"]
                                             if f["status"] == "IssuesFound"]


def test_operator_rows_merge_across_windows_and_rank() -> None:
    windows = [[{"name": "aten::conv", "calls": 2, "self_cpu_ms": 5.0, "self_device_ms": 0.0},
                {"name": "aten::add", "calls": 1, "self_cpu_ms": 9.0, "self_device_ms": 1.0}],
               [{"name": "aten::conv", "calls": 3, "self_cpu_ms": 6.0, "self_device_ms": 0.0}]]
    rows = aggregate.merge_operator_rows(windows)
    cpu = aggregate.top_operators(rows, "self_cpu_ms")
    assert [(r["name"], r["calls"], r["self_cpu_ms"]) for r in cpu] == [("aten::conv", 5, 11.0), ("aten::add", 1, 9.0)]
    assert [r["name"] for r in aggregate.top_operators(rows, "self_device_ms")] == ["aten::add"]
