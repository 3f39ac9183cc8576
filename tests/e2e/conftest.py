"""Fixtures that serve the real app on 127.0.0.1 and drive it in Debian's headless Chromium."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests
from playwright.sync_api import Browser, Locator, Page, Route, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from core.backend import get_backend
from core.config import Settings
from tests.e2e import waits

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]
ARTIFACTS = REPO_ROOT / "test-artifacts"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
CLICK_EFFECT_MS = 15_000
"""How long a click is given to show its effect before it is taken as lost and given again."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_app(tmp_path: Path, **environment: str) -> Iterator[str]:
    """The app on a free loopback port with the given SMC_* and AWS_* variables; stopped on exit."""
    port = _free_port()
    env = dict(os.environ, SMC_WORKSPACE=str(tmp_path / "workspace"), **environment)
    with open(tmp_path / "streamlit.log", "w") as log:  # the server keeps its own copy of the handle
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "server.py", "--server.address", "127.0.0.1",
             "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if server.poll() is not None:
            raise RuntimeError(f"the app exited: {(tmp_path / 'streamlit.log').read_text()[-2000:]}")
        try:
            return requests.get(f"{url}/_stcore/health", timeout=1).ok
        except (requests.ConnectionError, requests.Timeout):  # not listening yet, or too busy to answer
            return False

    try:
        waits.until(healthy, f"the app answering at {url}")
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()


@contextmanager
def local_app(tmp_path: Path, **environment: str) -> Iterator[str]:
    """The app on the local backend with a fresh workspace; what it started is stopped on exit."""
    try:
        with serve_app(tmp_path, SMC_BACKEND="local", **environment) as url:
            yield url
    finally:
        _stop_detached_work(tmp_path / "workspace")


@pytest.fixture
def app_url(tmp_path: Path) -> Iterator[str]:
    """The app on the local backend with a fresh workspace; what it started is stopped after the test."""
    with local_app(tmp_path) as url:
        yield url


def _stop_detached_work(workspace: Path) -> None:
    """Endpoint servers and jobs outlive the app by design: the test that started them stops them."""
    if not (workspace / "console.db").exists():
        return
    backend = get_backend(Settings(workspace=workspace))
    for endpoint in backend.endpoints.list_endpoints():
        backend.endpoints.delete(endpoint.name)
    for job in backend.tuner.list_tuning_jobs():
        backend.tuner.stop(job.name)
    for job in backend.runner.list_jobs():
        backend.runner.stop(job.name)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: run scripts/test (it installs it) or apt-get install chromium")
    expect.set_options(timeout=waits.TIMEOUT_MS)  # an assertion written without a timeout gets the generous one too
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser: Browser, tmp_path: Path) -> Iterator[Page]:
    """A page in a fresh context that refuses, and fails the test for, any request off this machine.

    An offline, private console sends nothing away: fonts, icons and telemetry included.
    """
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(waits.TIMEOUT_MS)  # actions, navigations and page.wait_for_*
    context.set_default_navigation_timeout(waits.TIMEOUT_MS)
    off_machine: list[str] = []

    def keep_on_machine(route: Route) -> None:
        if urlparse(route.request.url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            off_machine.append(route.request.url)
            route.abort("blockedbyclient")

    context.route("**/*", keep_on_machine)
    page = context.new_page()
    yield page
    context.close()
    assert not off_machine, f"the app asked hosts other than this machine for: {sorted(set(off_machine))}"


def screenshot(page: Page, name: str) -> Path:
    """Saves a screenshot of the whole page as a test artefact (test-artifacts/<name>.png).

    Streamlit scrolls inside its own container, so the viewport is grown to the content's
    height for the shot and restored afterwards.
    """
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    viewport = page.viewport_size or {"width": 1400, "height": 1000}
    height = page.evaluate(
        "() => Math.max(...[...document.querySelectorAll('[data-testid=\"stMain\"], section, main')]"
        ".map(e => e.scrollHeight), document.body.scrollHeight)"
    )
    page.set_viewport_size({"width": viewport["width"], "height": min(max(height, viewport["height"]), 8000)})
    waits.idle(page)
    waits.painted(page)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(viewport)
    return path


def choose_option(page: Page, selectbox: Locator, option: str, *, search: str | None = None,
                  attempts: int = 4) -> None:
    """Picks ``option`` in a Streamlit selectbox (or adds it to a multiselect) and checks that it took.

    Once an option was picked in one select, the first click on another only moves the focus
    there, so the drop-down is clicked again while it is not expanded. It also closes when a rerun
    re-renders the widget under it, so it is opened again until its option is clicked. search is
    typed into the open list first, for a long list that draws only the options in view.
    """
    combobox = selectbox.get_by_role("combobox")
    item = page.get_by_role("option", name=option, exact=True)
    for _ in range(attempts):
        waits.idle(page)
        combobox.click()
        if combobox.get_attribute("aria-expanded") != "true":
            combobox.click()
        if search:
            page.keyboard.type(search)
        try:
            item.click(timeout=CLICK_EFFECT_MS)
        except PlaywrightTimeoutError:
            page.keyboard.press("Escape")
            continue
        if selectbox.get_attribute("data-testid") == "stMultiSelect":
            waits.contains(selectbox, option)  # a chosen option shows as a tag
            page.keyboard.press("Escape")  # a multiselect's list stays open over what lies below
        else:
            waits.value(combobox, option)
        return
    raise AssertionError(f"option {option!r} never showed in the selectbox after {attempts} tries")


def choose_image_size(page: Page, scope: Locator, pixels: int) -> None:
    """Picks the image side in the "Image size (px)" select under scope (a form, or the page):
    browser tests train at 32 px, where the demo's digits still reach their accuracy bars."""
    choose_option(page, scope.locator('[data-testid="stSelectbox"]').filter(has_text="Image size (px)"), str(pixels))


def click_when_idle(page: Page, button: Locator, effect: Locator, *, attempts: int = 3) -> None:
    """Clicks ``button`` once the app is idle and waits for ``effect`` (what the click starts).

    A click that lands while a rerun replaces the button is lost with the element it hit, so it
    is given again, but only when the app has gone idle without showing the effect.
    """
    for _ in range(attempts):
        waits.idle(page)
        button.click()
        if waits.shows_within(effect.first, CLICK_EFFECT_MS):
            return
        waits.idle(page)
        if effect.first.is_visible():
            return
    raise AssertionError(f"{button} was clicked {attempts} times and nothing it starts showed")
