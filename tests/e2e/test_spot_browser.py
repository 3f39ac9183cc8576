"""Issue 8 in a real browser: on the demo data, an uninterrupted spot run and one interrupted
twice (once by the schedule, once by the button) with the same seed; the interrupted one
completes, its test accuracy is within one point of the other's, each interruption lost at
most one epoch, and its model deploys from the Deploy page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page

from core.backend import get_backend
from core.config import Settings
from tests.e2e import waits
from tests.e2e.conftest import choose_option, screenshot
from tests.e2e.elements import metric_value
from tests.e2e.test_data_and_training_browser import ingest_demo_by_drop, upload_checked_dataset

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
    waits.visible(launch)
    # 32 px, 3 epochs: about 50 s a run on one quiet core; attempt 2 still trains for more than an
    # epoch after it resumed, time enough to press "Interrupt now" while it runs
    choose_option(page, page.locator('[data-testid="stSelectbox"]').filter(has_text="Image size (px)"), "32")
    page.get_by_label("Epochs", exact=True).fill("3")
    page.get_by_label("Interrupt after (s, one value per instance)").fill(schedule)
    page.get_by_label("Run name (empty: generated)").fill(name)
    page.get_by_label("Run name (empty: generated)").press("Enter")
    launch.click()
    waits.visible(page.get_by_text(f"Launched {name}"))


def test_spot_run_interrupted_twice_matches_the_uninterrupted_run(
    page: Page, app_url: str, tmp_path: Path, stop_spot_runs: None
) -> None:
    ingest_demo_by_drop(page, app_url, tmp_path)
    upload_checked_dataset(page)

    page.goto(f"{app_url}/spot")
    waits.heading(page, "EC2 Spot")
    waits.visible(page.get_by_text(re.compile("no price feed")).first)
    _launch(page, "spot-reference", "", open_form=False)
    waits.metric(page, "Status", "Completed", timeout=RUN_TIMEOUT_MS)
    reference_accuracy = float(metric_value(page, "Test accuracy").inner_text())

    _launch(page, "spot-twice", "20", open_form=True)
    log = page.locator('[data-testid="stCode"]')
    waits.metric(page, "Interruptions", "1", timeout=RUN_TIMEOUT_MS)  # the schedule's
    waits.contains(log, "launched (attempt 2)", timeout=RUN_TIMEOUT_MS)
    waits.contains(log, re.compile(r"spot: (resumed|checkpoint epoch=1)"), timeout=RUN_TIMEOUT_MS)
    waits.metric(page, "Status", "Running")
    page.get_by_role("button", name="Interrupt now").click()  # the button's
    waits.metric(page, "Interruptions", "2", timeout=RUN_TIMEOUT_MS)
    waits.metric(page, "Status", "Completed", timeout=RUN_TIMEOUT_MS)

    accuracy = float(metric_value(page, "Test accuracy").inner_text())
    assert abs(accuracy - reference_accuracy) <= 0.01, (accuracy, reference_accuracy)
    assert float(metric_value(page, "Max lost work (epochs)").inner_text()) <= 1.0
    # .first: while the page refreshes, Streamlit can show the old copy of an element beside the new one
    waits.visible(page.get_by_text(re.compile(
        r"for the uninterrupted run spot-reference with the same seed and settings: [+-]\d+\.\d\d points")).first)
    waits.visible(page.get_by_text("Work lost per interruption").first)
    waits.contains(log, "launched (attempt 3)")
    screenshot(page, "spot-interrupted-twice")

    page.get_by_role("link", name="Deploy this model").click()
    waits.heading(page, "Deploy")
    waits.visible(page.get_by_text(re.compile(r"spot-twice/output/model\.tar\.gz")))
    page.get_by_role("button", name="Deploy", exact=True).click()
    waits.visible(page.get_by_text("Drop one or more images"), timeout=300_000)  # InService
