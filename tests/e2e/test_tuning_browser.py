"""Issue 3 in a real browser: 6 trials, 2 in parallel, on the demo data, with early stopping
Auto; the leaderboard and charts fill in live and the best hyperparameters are shown."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page

from tests.e2e import waits
from tests.e2e.conftest import choose_image_size, screenshot
from tests.e2e.elements import metric_value
from tests.e2e.test_data_and_training_browser import ingest_demo_by_drop, upload_checked_dataset

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_tuning_six_trials_two_parallel_with_pruning(page: Page, app_url: str, tmp_path: Path) -> None:
    ingest_demo_by_drop(page, app_url, tmp_path)
    upload_checked_dataset(page)

    page.goto(f"{app_url}/tuning")
    waits.heading(page, "Tuning")
    form = page.locator('[data-testid="stForm"]')
    form.get_by_label("Max steps per epoch (0: all)").fill("6")
    form.get_by_label("Tuning job name (empty: generated)").fill("demo-tune")
    form.locator('[data-testid="stRadio"]').filter(has_text="Early stopping").get_by_text("Auto").click()
    choose_image_size(page, form, 32)
    form.get_by_role("button", name="Launch tuning job").click()
    waits.visible(page.get_by_text("Started demo-tune: 6 trials, 2 at a time"))

    def metric(label: str) -> Locator:
        return metric_value(page, label)

    # Live: trials run two at a time and the counters move while they do.
    waits.text(metric("Running"), "2", timeout=180_000)
    waits.chart(page)
    screenshot(page, "tuning-live")
    waits.metric(page, "Status", "Completed", timeout=900_000)
    waits.text(metric("Trials done"), "6 / 6")
    assert int(metric("Pruned").inner_text()) >= 1, "no trial was pruned"
    waits.visible(page.get_by_role("heading", name="Best hyperparameters").first)
    waits.contains(page.locator('[data-testid="stJson"]').first, "lr")
    waits.chart(page)
    screenshot(page, "tuning-done")
