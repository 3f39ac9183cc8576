"""Issues 4 and 18 in a real browser: jobs started from the Training page with Debugger choices
are judged by their rules while they run; with the rule actions deployed from the Debugger page,
lr=10 with StopTraining is stopped by the rule that fired through the event → Lambda →
StopTrainingJob chain (and its topic notified), a tiny learning rate fires LossNotDecreasing (the
healthy default run is checked in test_train_and_read_its_debugger_view_in_browser)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.e2e import waits
from tests.e2e.conftest import choose_image_size, choose_option, screenshot
from tests.e2e.test_data_and_training_browser import ingest_demo_by_drop, upload_checked_dataset

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def start_job(page: Page, app_url: str, name: str, *, lr: str, epochs: int, stop_on: Sequence[str] = ()) -> None:
    """Starts a 32 px training job from the Training page's form."""
    page.goto(f"{app_url}/training")
    waits.heading(page, "Training jobs")
    # The page ends with the jobs table, or a note when there is none: once either shows, the
    # form's expander above it has its final state (open only while there is no job).
    end = page.get_by_text("No training job yet.").or_(page.locator('[data-testid="stDataFrame"]'))
    waits.visible(end.first)
    form = page.locator('[data-testid="stForm"]')
    if not form.is_visible():
        page.get_by_text("Start a training job").click()
    waits.visible(form)
    form.get_by_label("Job name (empty: generated)").fill(name)
    form.get_by_label("Learning rate").fill(lr)
    form.get_by_label("Epochs").fill(str(epochs))
    choose_image_size(page, form, 32)
    if stop_on:
        form.get_by_text("Debugger: tensor capture and rules").click()
        stop = form.locator('[data-testid="stMultiSelect"]').filter(has_text="StopTraining")
        for rule in stop_on:
            choose_option(page, stop, rule)
    form.get_by_role("button", name="Start training").click()
    waits.visible(page.get_by_text(f"Started {name}").first)


def deploy_rule_actions(page: Page, app_url: str, *, topic: str) -> None:
    """Deploys the rule actions from the Debugger page: stop jobs, notify a topic."""
    page.goto(f"{app_url}/debugger")
    waits.heading(page, "Debugger")
    form = page.locator('[data-testid="stForm"]').filter(has_text="Deploy rule actions")
    waits.visible(form)
    form.get_by_label("Notify SNS topic").fill(topic)
    form.get_by_role("button", name="Deploy rule actions").click()
    waits.visible(page.get_by_text("Rule actions deployed").first)
    waits.visible(page.get_by_text("StopMatchingTrainingJobs").first)  # the policy, statement by statement
    screenshot(page, "debugger-rule-actions")


def open_debugger(page: Page, app_url: str, name: str) -> None:
    page.goto(f"{app_url}/debugger")
    waits.heading(page, "Debugger")
    choose_option(page, page.locator('[data-testid="stSelectbox"]').filter(has_text="Training job"), name)


def test_diverging_job_is_stopped_and_a_stalled_one_flagged(page: Page, app_url: str, tmp_path: Path) -> None:
    ingest_demo_by_drop(page, app_url, tmp_path)
    upload_checked_dataset(page)
    deploy_rule_actions(page, app_url, topic="rule-alerts")
    start_job(page, app_url, "lr-ten", lr="10", epochs=4, stop_on=["ExplodingTensor", "LossNotDecreasing"])
    start_job(page, app_url, "lr-tiny", lr="1e-7", epochs=1)

    open_debugger(page, app_url, "lr-ten")
    waits.metric(page, "Job status", "Stopped", timeout=600_000)
    waits.visible(page.get_by_text(re.compile(r"^(ExplodingTensor|LossNotDecreasing): IssuesFound$")).first)
    # stopped through the chain: the event on the local bus, the action function, StopTrainingJob
    waits.visible(page.get_by_text(re.compile(r"event \S+ put on the default bus; the rule actions stop the job")).first)
    waits.visible(page.get_by_text(re.compile(r"StopTrainingJob → stopped")).first)
    waits.visible(page.get_by_text(re.compile(r"Publish → notified")).first)
    waits.chart(page)  # the loss curves
    screenshot(page, "debugger-stopped")

    open_debugger(page, app_url, "lr-tiny")
    waits.metric(page, "Job status", "Completed", timeout=600_000)
    finding = page.get_by_text("LossNotDecreasing: IssuesFound", exact=True).first  # .first: see test_spot_browser
    waits.visible(finding)
    finding.click()
    waits.visible(page.get_by_text("What to try:").first)
    screenshot(page, "debugger-loss-not-decreasing")
