"""Every wait of the browser tests: each on a settled state of the app, each with a generous timeout.

On two cores shared with trainings and other tests, a Streamlit rerun or Plotly drawing a chart
can take many seconds, so Playwright's 5 s default fails tests that are right. Waits here default
to ``TIMEOUT_MS`` (``E2E_WAIT_S`` seconds, 120 unless set); a wait on a job (training, tuning,
deploying) passes its own, longer timeout. None of them waits a fixed time: each returns as soon
as the state it waits for shows.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from re import Pattern

from playwright.sync_api import Locator, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.e2e.elements import STATUS_WIDGET, charts, metric_value

TIMEOUT_MS = float(os.environ.get("E2E_WAIT_S", "120")) * 1000
"""The default timeout of every wait, and of Playwright's actions and assertions (see conftest)."""


def visible(locator: Locator, *, timeout: float = TIMEOUT_MS) -> None:
    expect(locator).to_be_visible(timeout=timeout)


def shows_within(locator: Locator, timeout: float) -> bool:
    """Whether locator becomes visible within timeout: for a retry that expects some attempts to miss."""
    try:
        locator.wait_for(state="visible", timeout=timeout)
    except PlaywrightTimeoutError:
        return False
    return True


def text(locator: Locator, expected: str | Pattern[str], *, timeout: float = TIMEOUT_MS) -> None:
    """Until locator's text is expected (whole text; a list of texts for several elements)."""
    expect(locator).to_have_text(expected, timeout=timeout)


def contains(locator: Locator, expected: str | Pattern[str], *, timeout: float = TIMEOUT_MS) -> None:
    expect(locator).to_contain_text(expected, timeout=timeout)


def value(locator: Locator, expected: str | Pattern[str], *, timeout: float = TIMEOUT_MS) -> None:
    """Until an input's value is expected."""
    expect(locator).to_have_value(expected, timeout=timeout)


def count(locator: Locator, expected: int, *, timeout: float = TIMEOUT_MS) -> None:
    expect(locator).to_have_count(expected, timeout=timeout)


def enabled(locator: Locator, *, timeout: float = TIMEOUT_MS) -> None:
    expect(locator).to_be_enabled(timeout=timeout)


def disabled(locator: Locator, *, timeout: float = TIMEOUT_MS) -> None:
    expect(locator).to_be_disabled(timeout=timeout)


def heading(page: Page, title: str, *, timeout: float = TIMEOUT_MS) -> None:
    """Until the page titled title shows (its st.title)."""
    visible(page.get_by_role("heading", name=title, exact=True), timeout=timeout)


def chart(page: Page, *, timeout: float = TIMEOUT_MS) -> None:
    """Until Plotly has drawn a chart on the page (a chart's container shows before its drawing)."""
    visible(charts(page).first, timeout=timeout)


def idle(page: Page, *, timeout: float = TIMEOUT_MS) -> None:
    """Until no script run is in flight: Streamlit mounts its status widget only while one is."""
    page.locator(STATUS_WIDGET).wait_for(state="detached", timeout=timeout)


def painted(page: Page) -> None:
    """Until the browser has laid out and painted what the page holds now (two animation frames)."""
    page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")


def images_loaded(page: Page, selector: str, *, timeout: float = TIMEOUT_MS) -> None:
    """Until every image under selector has its bytes decoded (an <img> shows before they arrive)."""
    page.wait_for_function(
        "(selector) => [...document.querySelectorAll(selector)].every(i => i.complete && i.naturalWidth > 0)",
        arg=selector, timeout=timeout,
    )


def metric(page: Page, label: str, expected: str, *, timeout: float = TIMEOUT_MS) -> None:
    """Until the metric labelled label shows expected, and then shows it only once: a full rerun from a
    fragment may keep the fragment's old output on screen for a moment beside the new one."""
    values = metric_value(page, label)
    visible(values.filter(has_text=re.compile(f"^{re.escape(expected)}$")).first, timeout=timeout)
    count(values, 1)
    text(values, expected)


def until(condition: Callable[[], bool], what: str, *, timeout: float = TIMEOUT_MS, poll_s: float = 0.2) -> None:
    """Until condition() holds, for state off the page (files, processes).

    Raises:
        AssertionError: naming what, when it does not hold within timeout.
    """
    deadline = time.monotonic() + timeout / 1000
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout / 1000:.0f} s: {what}")
        time.sleep(poll_s)
