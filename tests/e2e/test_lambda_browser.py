"""Issue 7 in a real browser: a model trained on the demo digits and served by a local endpoint;
on the Lambda page the function is deployed, a demo test image picked into the test event
returns the right top-1 through the function and the endpoint, and with the permission
switched off the same invocation is denied with 403 by the endpoint server's policy check."""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from core.backend import Backend, get_backend
from core.catalog import register_dataset
from core.config import Settings
from core.datasets import DemoSource, prepare_dataset
from core.endpoints import EndpointStatus
from core.endpoints.invoke import image_file_request
from core.training.launch import start_training
from core.types import JobStatus
from tests.e2e.conftest import screenshot
from tests.e2e.test_data_and_training_browser import drop_files, metric_value

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TRAINING = {"epochs": 2, "image-size": 32, "batch-size": 32}
"""A small budget: 32 px digits train in seconds and still reach ≥ 0.9 test accuracy."""
DIGIT = 3


def serve_demo_model(backend: Backend) -> Path:
    """Ingests the demo digits, trains a small model, serves it as digits-ep; returns the test split."""
    with tempfile.TemporaryDirectory() as staging:
        prepared = prepare_dataset(DemoSource(), Path(staging))
        dataset = register_dataset(backend, prepared.root, name="digits-demo", source="demo",
                                   report=prepared.report.to_dict())
    job = start_training(backend, dataset, TRAINING, name="lambda-digits")
    deadline = time.monotonic() + 900
    while not (job := backend.runner.describe(job.name)).status.is_terminal:
        assert time.monotonic() < deadline, "training did not finish in 15 minutes"
        time.sleep(2)
    assert job.status is JobStatus.COMPLETED, job.failure_reason
    assert job.final_metrics["test:accuracy"] >= 0.9, job.final_metrics
    assert job.model_uri
    backend.endpoints.deploy("digits-ep", job.model_uri)
    assert backend.endpoints.wait("digits-ep", timeout_s=300).status is EndpointStatus.IN_SERVICE
    return backend.settings.workspace / "storage" / "datasets" / "digits-demo" / "test"


def pick_test_image(backend: Backend, test_split: Path) -> Path:
    """A demo test image of DIGIT that the model itself classifies right (asked directly, not
    through Lambda): the browser then checks that the function returns that same, right label."""
    for path in sorted((test_split / str(DIGIT)).glob("*.jpg")):
        body, content_type = image_file_request(path)
        if backend.endpoints.invoke("digits-ep", body, content_type).predictions[0][0][0] == str(DIGIT):
            return path
    raise AssertionError(f"the model gets no test image of {DIGIT} right")


def test_lambda_invoke_then_denied_in_browser(page: Page, app_url: str, tmp_path: Path) -> None:
    backend = get_backend(Settings(workspace=tmp_path / "workspace"))
    image = pick_test_image(backend, serve_demo_model(backend))

    page.goto(app_url)  # the app's own navigation (a first visit straight to a page URL gets Streamlit's legacy one)
    expect(page.get_by_role("heading", name="Data", exact=True)).to_be_visible(timeout=30_000)
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Lambda").click()
    expect(page.get_by_role("heading", name="Lambda", exact=True)).to_be_visible(timeout=30_000)
    page.get_by_role("button", name="Deploy function").click()
    expect(page.get_by_text("Deployed classify-digits-ep (locally)")).to_be_visible(timeout=60_000)
    expect(page.get_by_text("endpoint/digits-ep").first).to_be_visible()

    drop_files(page, image)
    event = page.get_by_label("Event (JSON): image as base64, or s3_uri, or url")
    expect(event).to_have_value(re.compile(r'"image": "/9j/'), timeout=30_000)  # the JPEG's base64
    page.get_by_role("button", name="Invoke", exact=True).click()
    expect(metric_value(page, "Status")).to_have_text("200", timeout=60_000)
    expect(metric_value(page, "Top-1")).to_have_text(str(DIGIT))
    assert metric_value(page, "Latency").inner_text().endswith(" ms")
    screenshot(page, "lambda-allowed")

    page.locator('[data-testid="stCheckbox"]').filter(has_text="InvokeEndpoint on the endpoint").locator(
        "label").click()
    expect(page.get_by_text("denied (implicitDeny)")).to_be_visible(timeout=30_000)
    page.get_by_role("button", name="Invoke", exact=True).click()
    expect(metric_value(page, "Status")).to_have_text("403", timeout=60_000)
    expect(page.get_by_text(re.compile(
        r"403 AccessDenied: User: arn:aws:sts::000000000000:assumed-role/classify-digits-ep-role/classify-digits-ep "
        r"is not authorized to perform: sagemaker:InvokeEndpoint on resource: "
        r"arn:aws:sagemaker:us-east-1:000000000000:endpoint/digits-ep"))).to_be_visible()
    expect(metric_value(page, "Top-1")).to_have_count(0)
    screenshot(page, "lambda-denied")
