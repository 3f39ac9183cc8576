"""Bad names and bad requests refused before anything starts: training and tuning job names,
hyperparameter names, tuning specs that cannot be searched, and dataset names (invalid or
taken) when a dataset is recorded in the catalog."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from core.backend import get_backend
from core.catalog import register_dataset
from core.config import Settings
from core.entities import DatasetRecord
from core.errors import AlreadyExistsError, InvalidInputError
from core.training import TrainingJobSpec
from core.tuning import CategoricalRange, ContinuousRange, IntegerRange, Strategy, TuningJobSpec

INPUTS = {"training": "file:///data"}
LR = ContinuousRange("lr", 1e-4, 1e-2)


@pytest.mark.parametrize("name", ["bad_name!", "-leading", "trailing-", "with space", "é-accent", "x" * 64, ""])
def test_training_job_names_sagemaker_would_refuse(name: str) -> None:
    with pytest.raises(InvalidInputError, match="use 1-63 letters, digits and hyphens"):
        TrainingJobSpec(name=name, inputs=INPUTS)


@pytest.mark.parametrize("key", ["learning rate", "lr=1", "", "lr.1"])
def test_hyperparameter_names_that_cannot_be_passed_to_the_script(key: str) -> None:
    with pytest.raises(InvalidInputError, match=f"hyperparameters: invalid name {key!r}"):
        TrainingJobSpec(name="job-1", inputs=INPUTS, hyperparameters={key: 1})


@pytest.mark.parametrize(("changes", "message"), [
    ({"name": "x" * 33}, "use 1-32 letters, digits and hyphens"),
    ({"name": "tune_1"}, "use 1-32 letters, digits and hyphens"),
    ({"ranges": []}, "give at least one hyperparameter range"),
    ({"ranges": [LR, ContinuousRange("lr", 0.1, 0.2)]}, "each hyperparameter may have only one range"),
    ({"ranges": [ContinuousRange("lr", -math.inf, 1.0)]}, "parameter lr: min and max must be finite numbers"),
    ({"ranges": [IntegerRange("epochs", 5, 1)]}, "parameter epochs: min 5 is greater than max 1"),
    ({"ranges": [CategoricalRange("optimizer", ("adam", "adam"))]}, "categorical values must be distinct"),
    ({"ranges": [ContinuousRange("momentum", 0.1, 0.9)]}, "parameter 'momentum': unknown hyperparameter"),
    ({"static_hyperparameters": {"lr": 0.1}}, r"\['lr'\] are both tuned and fixed"),
    ({"objective_metric": "validation:f1"}, "objective_metric 'validation:f1': the training script reports"),
    ({"strategy": "Genetic"}, "strategy: 'Genetic' is not one of Bayesian, Random, Grid, Hyperband"),
    ({"max_jobs": 0}, "max_jobs: between 1 and 500"),
    ({"max_jobs": 501}, "max_jobs: between 1 and 500"),
    ({"max_jobs": 2, "max_parallel_jobs": 3}, "max_parallel_jobs: at least 1 and at most max_jobs"),
    ({"strategy": Strategy.GRID}, "Grid search takes categorical ranges only"),
    ({"inputs": {}}, "the trials need a data channel"),
    ({"warm_start_from": ("bad name",)}, "warm_start_from: invalid tuning job name 'bad name'"),
])
def test_tuning_requests_that_cannot_run(changes: dict[str, object], message: str) -> None:
    values: dict[str, object] = {"name": "tune-1", "ranges": [LR], "inputs": INPUTS, **changes}
    with pytest.raises(InvalidInputError, match=message):
        TuningJobSpec(**values)  # type: ignore[arg-type]


def _folder(root: Path) -> Path:
    (root / "train" / "a").mkdir(parents=True)
    (root / "train" / "a" / "1.png").write_bytes(b"png")
    return root


@pytest.mark.parametrize("name", ["Dogs", "dog images", "dogs--1", "-dogs", "x" * 41, ""])
def test_invalid_dataset_names_upload_nothing(tmp_path: Path, name: str) -> None:
    backend = get_backend(Settings(workspace=tmp_path / "ws"))
    with pytest.raises(InvalidInputError, match="use 1-40 lower-case letters, digits and single hyphens"):
        register_dataset(backend, _folder(tmp_path / "ds"), name=name, source="folder", report={})
    assert backend.storage.list() == [] and backend.store.list_datasets() == []


def test_a_taken_dataset_name_or_a_dataset_with_errors_uploads_nothing(tmp_path: Path) -> None:
    backend = get_backend(Settings(workspace=tmp_path / "ws"))
    backend.store.put_dataset(DatasetRecord("dogs", "file:///elsewhere", "demo", time.time()))
    folder = _folder(tmp_path / "ds")
    with pytest.raises(AlreadyExistsError, match="a dataset named 'dogs' already exists: choose another name"):
        register_dataset(backend, folder, name="dogs", source="folder", report={})
    with pytest.raises(InvalidInputError, match="this dataset has errors"):
        register_dataset(backend, folder, name="cats", source="folder", report={"errors": ["missing valid/"]})
    assert backend.storage.list() == []
    assert [d.name for d in backend.store.list_datasets()] == ["dogs"]
