"""The kernel view of GPU trace windows (Kineto-shaped fixtures): time by kernel and operator,
launch latency, copies, synchronisations, idle time per step, and the finding each bottleneck gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.profiler.kernels import kernel_view, latency_histogram
from core.profiler.timeline import build_index
from tests.core.profiler.traces import STEP_US, trace_events, write_trace

BUSY_PHASES = (("dataloader", 0.0, 100.0), ("forward", 100.0, 5_000.0), ("backward", 5_000.0, 9_000.0),
               ("optimizer", 9_000.0, 10_000.0))


def _view(tmp_path: Path, **options: object):  # type: ignore[no-untyped-def]
    index = build_index(write_trace(tmp_path / "t.pt.trace.json.gz", trace_events(2, **options)))  # type: ignore[arg-type]
    return kernel_view(index, first_step=5)


def test_a_gpu_waiting_for_data_is_found_with_the_hyperparameter_to_change(tmp_path: Path) -> None:
    view = _view(tmp_path)
    assert view is not None
    assert [(k["kernel"], k["calls"]) for k in view.kernels] == [(f"sm80_xmma_fprop_{i}", 2) for i in range(3)]
    assert view.kernels[0]["mean µs"] == pytest.approx(60.0)
    assert [(o["operator"], o["calls"]) for o in view.operators] == [("aten::conv2d", 6)]
    assert np.allclose(view.latency_us, 30.0)
    (copies,) = view.copies
    assert (copies["direction"], copies["copies"], copies["MB"]) == ("HtoD", 2, pytest.approx(2 * 19.267584))
    assert [s["step"] for s in view.steps] == [5, 6]
    assert view.steps[0]["GPU idle"] == pytest.approx(1 - (400 + 3 * 60) / STEP_US)
    (finding,) = view.findings
    assert finding.title == "GPU waits for data" and finding.message.startswith("GPU idle 94% of the step waiting")
    assert finding.change.startswith("num-workers: raise it")


def test_idle_time_with_the_batch_ready_points_at_launching(tmp_path: Path) -> None:
    view = _view(tmp_path, phases=BUSY_PHASES)
    assert view is not None
    assert [f.title for f in view.findings] == ["GPU idle between kernels"]
    assert "batch-size: raise it" in view.findings[0].change


def test_pageable_copies_synchronisations_and_short_kernels_are_each_found(tmp_path: Path) -> None:
    view = _view(tmp_path, phases=BUSY_PHASES, kernels_per_step=40, kernel_us=5.0, latency_us=80.0, copy_us=2_000.0,
                 copy_name="Memcpy HtoD (Pageable -> Device)", sync_us=1_000.0)
    assert view is not None
    titles = [f.title for f in view.findings]
    assert titles == ["GPU idle between kernels", "Host-to-device copies", "Synchronisations", "Launch-bound"]
    found = {f.title: f for f in view.findings}
    assert "pageable memory: pin it" in found["Host-to-device copies"].message
    assert found["Synchronisations"].message.startswith("2 synchronisations take 10% of the step")
    assert found["Synchronisations"].change.startswith("debug-save-interval")
    assert "median 80 µs after their launch" in found["Launch-bound"].message
    centres, counts = latency_histogram(view.latency_us)
    assert sum(counts) == 80 and len(centres) == len(counts)


def test_a_busy_gpu_has_no_finding(tmp_path: Path) -> None:
    view = _view(tmp_path, phases=BUSY_PHASES, kernels_per_step=75, kernel_us=100.0)  # back to back, 2.2 to 9.7 ms
    assert view is not None and view.findings == []
    assert view.steps[0]["GPU idle"] == pytest.approx(1 - (400 + 75 * 100) / STEP_US)


def test_a_cpu_trace_has_no_kernel_view(tmp_path: Path) -> None:
    assert _view(tmp_path, gpu=False) is None


def test_a_kernel_without_its_launch_in_the_window_still_counts(tmp_path: Path) -> None:
    events = [e for e in trace_events(1) if e.get("name") != "cudaLaunchKernel"]
    view = kernel_view(build_index(write_trace(tmp_path / "t.pt.trace.json", events)))
    assert view is not None and len(view.latency_us) == 0
    assert [(o["operator"], o["calls"]) for o in view.operators] == [("(no operator)", 3)]
