"""The foundation flow in a real browser: drop the demo zip, read the report with rendered
images, upload it, train a real model on it and read its test accuracy and Debugger view."""

from __future__ import annotations

import base64
import os
import re
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import psutil
import pytest
import requests
from playwright.sync_api import Page

from core.datasets import build_demo_zip, write_demo_folder
from tests.e2e import waits
from tests.e2e.conftest import click_when_idle, screenshot
from tests.e2e.elements import metric_value

pytestmark = pytest.mark.browser

DROP_FILES_JS = """
(files) => {
  const transfer = new DataTransfer();
  for (const [b64, name, type] of files) {
    const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
    transfer.items.add(new File([bytes], name, {type}));
  }
  return transfer;
}
"""
CONTENT_TYPES = {".zip": "application/zip", ".jpg": "image/jpeg", ".png": "image/png"}
PADDING_MB = 210


def streamlit_server(app_url: str) -> psutil.Process:
    """The process serving app_url (started by the app_url fixture with its port on the command line)."""
    port = str(urlparse(app_url).port)
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if "streamlit" in cmdline and port in cmdline:
            return process
    raise AssertionError(f"no streamlit process serves {app_url}")


def drop_files(page: Page, *paths: Path, index: int = 0) -> None:
    """Drops files on the page's index-th file uploader as a user's drag and drop does."""
    files = [[base64.b64encode(p.read_bytes()).decode(), p.name, CONTENT_TYPES[p.suffix]] for p in paths]
    transfer = page.evaluate_handle(DROP_FILES_JS, files)
    page.locator('[data-testid="stFileUploaderDropzone"]').nth(index).dispatch_event("drop", {"dataTransfer": transfer})


def drop_zip(page: Page, path: Path, *, timeout: float = waits.TIMEOUT_MS) -> None:
    """Gives a zip to the Data page's drop zone and waits until all its bytes have reached the server."""
    page.locator(".smc-drop input[type=file]").set_input_files(path)
    waits.visible(page.get_by_text(re.compile(rf"^{re.escape(path.name)}: \S+ [MG]B received$")), timeout=timeout)
    waits.enabled(page.get_by_role("button", name="Check dataset"))


def ingest_demo_by_drop(page: Page, app_url: str, tmp_path: Path) -> None:
    demo_zip = build_demo_zip(tmp_path / "digits-demo.zip")
    page.goto(app_url)
    waits.heading(page, "Data")
    drop_zip(page, demo_zip)
    page.get_by_role("button", name="Check dataset").click()
    waits.visible(page.get_by_text("Validation report"))


def upload_checked_dataset(page: Page, *, timeout: float = waits.TIMEOUT_MS) -> None:
    """Clicks the Upload button under a checked dataset and waits until the dataset is ready."""
    ready = page.get_by_text(re.compile(r"Dataset \S+ is ready at "))
    uploading = page.get_by_text(re.compile(r"^Uploading…"))
    click_when_idle(page, page.get_by_role("button", name=re.compile(r"^Upload to ")), ready.or_(uploading))
    waits.visible(ready, timeout=timeout)


def test_drop_demo_zip_shows_report_with_rendered_images(page: Page, app_url: str, tmp_path: Path) -> None:
    ingest_demo_by_drop(page, app_url, tmp_path)
    waits.visible(page.get_by_text("1797", exact=True))  # images
    waits.chart(page)
    images = page.locator('[data-testid="stImage"] img')
    waits.visible(images.nth(9))  # at least 10
    waits.images_loaded(page, '[data-testid="stImage"] img')
    # An old Streamlit under a new Starlette answers HTTP 500 for media: check the bytes too.
    src = images.first.get_attribute("src")
    response = requests.get(src if src.startswith("http") else app_url + src, timeout=10)
    assert response.status_code == 200 and response.headers["content-type"].startswith("image/")
    screenshot(page, "data-report")

    upload_checked_dataset(page)
    waits.visible(page.get_by_text(re.compile(r"Dataset digits-demo is ready at file://")))
    waits.visible(page.locator('[data-testid="stDataFrame"]'))


def test_not_a_zip_gets_a_clear_error(page: Page, app_url: str, tmp_path: Path) -> None:
    fake = tmp_path / "photo.zip"
    fake.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    page.goto(app_url)
    waits.heading(page, "Data")
    drop_zip(page, fake)
    page.get_by_role("button", name="Check dataset").click()
    waits.visible(page.get_by_text(re.compile("not a zip", re.I)))


@pytest.mark.slow
def test_train_and_read_its_debugger_view_in_browser(page: Page, app_url: str, tmp_path: Path) -> None:
    """Issues 2 and 4: train on the demo (≥ 90% test accuracy) and read its Debugger view. Deploying
    and dropping test images (issue 6) is part of test_journey_browser.py."""
    ingest_demo_by_drop(page, app_url, tmp_path)
    upload_checked_dataset(page)

    page.get_by_role("link", name=re.compile("Train a model")).click()
    waits.heading(page, "Training jobs")
    page.get_by_role("button", name="Start training").click()
    waits.visible(page.get_by_text(re.compile(r"Started train-")))
    # The fragment polls the job; training 2 epochs on 2 cores takes about a minute.
    waits.metric(page, "Status", "Completed", timeout=600_000)
    assert float(metric_value(page, "Test accuracy").inner_text()) >= 0.90
    waits.chart(page)
    screenshot(page, "training-job")

    # Issue 4: the healthy default run ends with NoIssuesFound on every default rule.
    page.get_by_role("link", name=re.compile("^Debugger view of")).click()
    waits.heading(page, "Debugger")
    waits.visible(page.get_by_text(re.compile(r"^8 rules: 8 NoIssuesFound\.")).first)
    waits.chart(page)
    screenshot(page, "debugger-healthy")


def test_a_page_url_opened_first_gets_the_apps_navigation(page: Page, app_url: str) -> None:
    """A bookmarked page on a fresh server runs streamlit_app.py's navigation, not Streamlit's
    legacy pages-folder mode (which a folder named pages/ beside the app would trigger)."""
    page.goto(f"{app_url}/debugger")
    waits.heading(page, "Debugger")
    nav = page.locator('[data-testid="stSidebarNav"]')
    waits.visible(nav.get_by_text("Training jobs", exact=True))
    waits.visible(page.get_by_text(re.compile(r"^Backend:")))


def test_a_zip_above_200_mb_is_dropped_and_ingested_without_the_server_holding_it(
        page: Page, app_url: str, tmp_path: Path) -> None:
    """Streamlit's own uploader stops at 200 MB and keeps uploads in memory; the drop zone does neither."""
    big = tmp_path / "dogs-big.zip"
    write_demo_folder(tmp_path / "demo", image_size=16)
    with zipfile.ZipFile(big, "w", zipfile.ZIP_STORED) as archive:
        for path in sorted(p for p in (tmp_path / "demo").rglob("*") if p.is_file()):
            archive.write(path, f"dogs-big/{path.relative_to(tmp_path / 'demo').as_posix()}")
        with archive.open("dogs-big/raw/scans.bin", "w", force_zip64=True) as padding:
            for _ in range(PADDING_MB):
                padding.write(os.urandom(1024 * 1024))
    assert big.stat().st_size > 200 * 1024 * 1024
    page.goto(app_url)
    waits.heading(page, "Data")
    waits.idle(page)  # the first run imports the pages' libraries: the server's idle size, not the upload
    server = streamlit_server(app_url)
    rss_before = server.memory_info().rss
    drop_zip(page, big, timeout=300_000)
    grew_mb = (server.memory_info().rss - rss_before) / 1e6
    assert grew_mb < PADDING_MB / 2, f"the server grew by {grew_mb:.0f} MB while receiving a {PADDING_MB} MB zip"
    page.get_by_role("button", name="Check dataset").click()
    waits.visible(page.get_by_text("Validation report"), timeout=300_000)
    waits.metric(page, "Images", "1797")
    waits.metric(page, "Left out", "1")  # raw/scans.bin: outside the splits
    upload_checked_dataset(page, timeout=300_000)
    workspace = tmp_path / "workspace"
    assert not any((workspace / "uploads").iterdir())  # the received zip is gone once extracted
    stored = workspace / "storage" / "datasets" / "dogs-big"
    assert (stored / "excluded.json").exists() and not (stored / "raw").exists()


def test_a_zip_upload_cancelled_half_way_leaves_nothing(page: Page, app_url: str, tmp_path: Path) -> None:
    big = tmp_path / "cancel-me.zip"
    with open(big, "wb") as out:
        for _ in range(PADDING_MB):
            out.write(os.urandom(1024 * 1024))
    page.goto(app_url)
    waits.heading(page, "Data")
    page.locator(".smc-drop input[type=file]").set_input_files(big)
    waits.visible(page.get_by_text(re.compile(r"^cancel-me\.zip: \S+ MB of 220\.2 MB")))
    page.get_by_role("button", name="Cancel upload").click()
    waits.visible(page.get_by_text("Cancelled: nothing was kept."))
    waits.disabled(page.get_by_role("button", name="Check dataset"))
    uploads = tmp_path / "workspace" / "uploads"
    # a piece in flight when the user cancelled ends on the server first
    waits.until(lambda: not any(uploads.iterdir()), f"{uploads} emptied")
