"""Issue 18 in a real browser: a GPU trace window (a Kineto-shaped fixture: no GPU machine records
here) drawn as a timeline zoomed to one step, and read by the kernel view, which names the bottleneck."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page

from core.backend import get_backend
from core.config import Settings
from core.profiler.timeline import build_index, index_path, save_index
from tests.core.profiler.traces import trace_events, write_trace
from tests.e2e import waits
from tests.e2e.conftest import screenshot
from tests.e2e.elements import charts
from tests.e2e.test_journey_browser import open_the_timeline_at_a_step
from tests.pages.test_profiler_page import _profile_with_window, add_job

pytestmark = [pytest.mark.browser]


def test_a_gpu_trace_fixtures_timeline_and_kernel_view(page: Page, app_url: str, tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "1_algo-1.pt.trace.json.gz", trace_events(3))
    save_index(build_index(trace), index_path(trace))
    backend = get_backend(Settings(workspace=tmp_path / "workspace"))
    add_job(backend, "gpu-fixture")
    _profile_with_window(backend, "gpu-fixture", {"timeline": str(index_path(trace))})
    page.goto(f"{app_url}/profiler?job=gpu-fixture")
    waits.heading(page, "Profiler")
    waits.chart(page)
    open_the_timeline_at_a_step(page)
    waits.contains(charts(page).filter(has_text="phases").first, "GPU 0 stream 7")
    screenshot(page, "profiler-timeline-gpu-fixture")
    page.get_by_role("tab", name="Kernels").click()
    waits.visible(page.get_by_text("GPU idle 94% of the step waiting for data").first)
    waits.visible(page.get_by_text("Change: num-workers: raise it").first)
    waits.visible(charts(page).filter(has_text="Launch-to-run latency").first)
    screenshot(page, "profiler-kernels-gpu-fixture")
