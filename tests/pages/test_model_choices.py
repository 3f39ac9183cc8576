"""Every form's model select offers exactly the training script's ``--model`` choices."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pytest

from core.backend import Backend
from core.entities import DatasetRecord
from entrypoints.hyperparameters import add_arguments
from tests.pages.conftest import open_page


def _script_model_choices() -> list[str]:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return list(next(a for a in parser._actions if a.dest == "model").choices or ())


@pytest.mark.parametrize(("page", "key"), [("training", "job_model"), ("tuning", "tune_model"),
                                           ("spot", "spot_model")])
def test_the_model_select_offers_the_scripts_choices(local_backend: Backend, tmp_path: Path, page: str,
                                                      key: str) -> None:
    folder = tmp_path / "ds"
    (folder / "train" / "a").mkdir(parents=True)
    local_backend.store.put_dataset(
        DatasetRecord("digits", folder.as_uri(), "demo", time.time(), {"total_images": 3, "classes": ["a"]}))
    at = open_page(page)
    assert not at.exception
    assert at.selectbox(key=key).options == _script_model_choices()
