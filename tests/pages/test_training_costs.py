"""The Training page's costs on both backends: an estimate before a job starts (timed by a similar
finished job, priced by the backend), and each finished job's bill and cost per accuracy point."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber
from streamlit.testing.v1 import AppTest

from core.backend import Backend
from core.entities import TrainingJob
from core.training._prices import training_price_per_hour
from core.training.launch import DEFAULT_HYPERPARAMETERS
from core.types import JobStatus
from tests.core.aws_fixtures import (  # noqa: F401  (fixtures register on import)
    aws_credentials_fixture,
    aws_fixture,
    aws_settings_fixture,
    no_network_fixture,
)
from tests.core.training.test_costs import _price_list, _price_request
from tests.pages.conftest import open_page
from tests.pages.test_aws_faults_pages import aws_backend  # noqa: F401  (a fixture)
from tests.pages.test_training_compute import dataset_in_s3  # noqa: F401  (a fixture)
from tests.pages.test_training_page import add_dataset


def _estimate(at: AppTest) -> AppTest:
    (button,) = [b for b in at.button if b.label == "Estimate cost"]
    return button.click().run()


def test_a_local_job_is_free_and_times_the_next_estimate(local_backend: Backend, tmp_path: Path) -> None:
    dataset = add_dataset(local_backend, tmp_path)
    hyperparameters = {k: str(v) for k, v in {**DEFAULT_HYPERPARAMETERS, "batch-size": 32, "image-size": 64}.items()}
    local_backend.store.insert_job(TrainingJob(
        name="done-1", status=JobStatus.COMPLETED, backend="local", created_at=time.time() - 100,
        started_at=time.time() - 95, ended_at=time.time() - 5, hyperparameters=hyperparameters,
        inputs={"training": dataset.uri}, final_metrics={"test:accuracy": 0.9}))
    at = open_page("training")
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert table.loc[0, "cost ($)"] == 0 and table.loc[0, "instances"] == "1 × local"
    assert any(c.value == "Trained 1 min 30 s on this machine at no charge." for c in at.caption)
    at.number_input(key="job_epochs").set_value(4)
    at = _estimate(at)
    assert not at.exception and not at.error
    assert [i.value for i in at.info if i.value.startswith("Estimate")] == [
        "Estimate: about 3 min 0 s of training, on this machine at no charge (timed by done-1: 90 s for 2 epochs on "
        "1 × local)."]
    assert local_backend.runner.list_jobs() == [local_backend.runner.describe("done-1")]  # nothing started


def test_the_tuning_form_estimates_every_trial_by_the_longest(local_backend: Backend, tmp_path: Path) -> None:
    dataset = add_dataset(local_backend, tmp_path)
    hyperparameters = {k: str(v) for k, v in {**DEFAULT_HYPERPARAMETERS, "batch-size": 16}.items()}
    local_backend.store.insert_job(TrainingJob(
        name="done-1", status=JobStatus.COMPLETED, backend="local", created_at=time.time() - 100,
        started_at=time.time() - 95, ended_at=time.time() - 5, hyperparameters=hyperparameters,
        inputs={"training": dataset.uri}))
    at = open_page("tuning")
    at.number_input(key="tune_max_jobs").set_value(5)
    at = _estimate(at)  # batch size is searched (any matches); epochs up to 3
    assert not at.exception and not at.error
    assert [i.value for i in at.info if i.value.startswith("Estimate")] == [
        "Estimate, at most: 5 trials of about 2 min 15 s each, 2 at a time: about 6 min 45 s in all; on this machine "
        "at no charge (the longest trial timed by done-1: 90 s for 2 epochs on 1 × local; early stopping ends some "
        "trials sooner)."]
    assert local_backend.tuner.list_tuning_jobs() == []


def test_a_sagemaker_estimate_is_priced_by_the_price_list(aws_backend: Backend, dataset_in_s3: None,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def price_list_answers(pricing: Any, region: str, instance_type: str) -> float | None:
        with Stubber(pricing) as stub:  # the request and the answer checked against botocore's model
            stub.add_response("get_products", {"FormatVersion": "aws_v1",
                                               "PriceList": [_price_list(region, instance_type, "1.408")]},
                              _price_request(instance_type))
            return training_price_per_hour(pricing, region, instance_type)

    monkeypatch.setattr("core.training._sagemaker.training_price_per_hour", price_list_answers)
    at = open_page("training")
    at.selectbox(key="job_instance_type").select("ml.g5.xlarge")
    at = _estimate(at)
    assert not at.exception and not at.error
    assert [i.value for i in at.info if i.value.startswith("Estimate")] == [
        "Estimate: time unknown, 1 × ml.g5.xlarge at $1.408/h: $1.41 per hour (no finished job of this dataset, "
        "model, image-size, batch-size and instance type to time it by)."]
    assert aws_backend.runner.list_jobs() == []


def test_a_price_list_that_cannot_be_read_leaves_the_estimate_without_a_price(aws_backend: Backend,
                                                                            dataset_in_s3: None) -> None:
    at = _estimate(open_page("training"))  # moto has no Price List API
    assert not at.exception and not at.error
    estimate = next(i.value for i in at.info if i.value.startswith("Estimate"))
    assert estimate.startswith("Estimate: time unknown, 1 × ml.m5.xlarge at price unknown")
    assert any(c.value.startswith("No price: reading the price of ml.m5.xlarge from the AWS Price List API")
               for c in at.caption), [c.value for c in at.caption]
