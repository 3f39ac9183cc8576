"""Page tests run each page with AppTest against the real local backend in a temp workspace."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.analysis import AnalysisNotes, BesideJobAnalysis
from core.backend import Backend, get_backend
from core.config import REPO_ROOT, load_settings

APP = str(REPO_ROOT / "streamlit_app.py")


def open_page(name: str, timeout: float = 120) -> AppTest:
    """Runs the app's entrypoint (navigation, sidebar), then switches to app_pages/<name>.py."""
    at = AppTest.from_file(APP, default_timeout=timeout).run()
    assert not at.exception, at.exception
    return at.switch_page(f"app_pages/{name}.py").run()


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "workspace"
    monkeypatch.setenv("SMC_WORKSPACE", str(folder))
    return folder


@pytest.fixture
def local_backend(workspace: Path) -> Backend:
    return get_backend(load_settings())


@pytest.fixture
def analysis_says(monkeypatch: pytest.MonkeyPatch) -> Callable[[AnalysisNotes], None]:
    """Makes the local backend's job analysis answer these notes, as a SageMaker job's would."""

    def say(notes: AnalysisNotes) -> None:
        monkeypatch.setattr(BesideJobAnalysis, "ensure_analysed", lambda self, job: notes)

    return say
