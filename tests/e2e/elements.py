"""Where the browser tests find Streamlit's elements on a page: the selectors they share."""

from __future__ import annotations

from playwright.sync_api import Locator, Page

STATUS_WIDGET = '[data-testid="stStatusWidget"]'
"""Streamlit mounts its "running" status widget only while a script run is in flight."""


def metric_value(page: Page, label: str) -> Locator:
    """The value of the st.metric whose label is label (table cells also hold status words)."""
    return page.locator('[data-testid="stMetric"]').filter(has_text=label).locator('[data-testid="stMetricValue"]')


def charts(page: Page) -> Locator:
    """The page's Plotly charts that Plotly has drawn: its SVG layer exists only once it has."""
    return page.locator(".js-plotly-plot").filter(has=page.locator(".main-svg"))


def sidebar(page: Page) -> Locator:
    return page.locator('[data-testid="stSidebar"]')
