"""Issue 8 in a real browser: on the demo data, an uninterrupted spot run and one interrupted
twice (once by the schedule, once by the button) with the same seed; the interrupted one
completes, its test accuracy is within one point of the other's, each interruption lost at
most one epoch, and its model deploys from the Deploy page."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import pytest
from playwright.sync_api import Page, expect

from core.backend import get_backend
from core.config import Settings
from tests.e2e.conftest import screenshot
from tests.e2e.test_data_and_training_browser import ingest_demo_by_drop, metric_value, upload_checked_dataset, wait_for_metric

pytestmark = [pytest.mark.browser, pytest.mark.slow]
RUN_TIMEOUT_MS = 900_000


@pytest.fixture
def stop_spot_runs(tmp_path: Path) -> Iterator[None]:
    """Spot simulators outlive the app by design: stop whatever this test started."""
    yield
    workspace = tmp_path / "workspace"
    if (workspace / "console.db").exists():
        manager = get_backend(Settings(workspace=workspace)).spot
        for run in manager.list_runs():
            manager.terminate(run.name)


def _launch(page: Page, name: str, schedule: str, *, open_form: bool) -> None:
    """Fills and submits the launch form (open_form: expand it first; it is open while there is no run)."""
    launch = page.get_by_role("button", name="Launch", exact=True)
    if open_form:
        page.get_by_text("Launch a spot training run").click()
    expect(launch).to_be_visible(timeout=30_000)
    page.get_by_label("Interrupt after (s, one value per instance)").fill(schedule)
    page.get_by_label("Run name (empty: generated)").fill(name)
    page.get_by_label("Run name (empty: generated)").press("Enter")
    launch.click()
    expect(page.get_by_text(f"Launched {name}")).to_be_visible(timeout=60_000)


def test_spot_run_interrupted_twice_matches_the_uninterrupted_run(
    page: Page, app_url: str, tmp_path: Path, stop_spot_runs: None
) -> None:
    ingest_demo_by_drop(page, app_url, tmp_path)
    upload_checked_dataset(page)

    page.goto(f"{app_url}/spot")
    expect(page.get_by_role("heading", name="EC2 Spot", exact=True)).to_be_visible(timeout=30_000)
    expect(page.get_by_text(re.compile("no price feed")).first).to_be_visible()
    _launch(page, "spot-reference", "", open_form=False)
    wait_for_metric(page, "Status", "Completed", timeout=RUN_TIMEOUT_MS)
    reference_accuracy = float(metric_value(page, "Test accuracy").inner_text())

    _launch(page, "spot-twice", "20", open_form=True)
    log = page.locator('[data-testid="stCode"]')
    wait_for_metric(page, "Interruptions", "1", timeout=RUN_TIMEOUT_MS)  # the schedule's
    expect(log).to_contain_text("launched (attempt 2)", timeout=RUN_TIMEOUT_MS)
    expect(log).to_contain_text(re.compile(r"spot: (resumed|checkpoint epoch=1)"), timeout=RUN_TIMEOUT_MS)
    wait_for_metric(page, "Status", "Running", timeout=60_000)
    page.get_by_role("button", name="Interrupt now").click()  # the button's
    wait_for_metric(page, "Interruptions", "2", timeout=RUN_TIMEOUT_MS)
    wait_for_metric(page, "Status", "Completed", timeout=RUN_TIMEOUT_MS)

    accuracy = float(metric_value(page, "Test accuracy").inner_text())
    assert abs(accuracy - reference_accuracy) <= 0.01, (accuracy, reference_accuracy)
    assert float(metric_value(page, "Max lost work (epochs)").inner_text()) <= 1.0
    # .first: while the page refreshes, Streamlit can show the old copy of an element beside the new one
    expect(page.get_by_text(re.compile(r"for the uninterrupted run spot-reference with the same seed and settings: "
                                       r"[+-]\d+\.\d\d points")).first).to_be_visible()
    expect(page.get_by_text("Work lost per interruption").first).to_be_visible()
    expect(log).to_contain_text("launched (attempt 3)")
    screenshot(page, "spot-interrupted-twice")

    page.get_by_role("link", name="Deploy this model").click()
    expect(page.get_by_role("heading", name="Deploy", exact=True)).to_be_visible(timeout=30_000)
    expect(page.get_by_text(re.compile(r"spot-twice/output/model\.tar\.gz"))).to_be_visible(timeout=30_000)
    page.get_by_role("button", name="Deploy", exact=True).click()
    expect(page.get_by_text("Drop one or more images")).to_be_visible(timeout=300_000)  # InService
