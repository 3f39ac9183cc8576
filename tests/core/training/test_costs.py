"""What training costs: bills of finished jobs (spot savings as SageMaker states them), estimates
timed by a similar job, and prices from the AWS Price List API (requests checked by botocore's model)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from botocore.stub import Stubber

from core.aws import AwsSession
from core.config import Settings
from core.entities import TrainingJob
from core.errors import ConsoleError
from core.storage._s3 import S3Storage
from core.training._sagemaker import SageMakerJobRunner, training_job_from_description
from core.training.compute import Compute
from core.training.costs import (
    Bill,
    TuningEstimate,
    bill,
    cost_per_point,
    describe_bill,
    describe_estimate,
    describe_tuning_estimate,
    estimate,
    similar_job,
)
from core.types import JobStatus
from tests.core.aws_fixtures import (  # noqa: F401  (fixtures register on import)
    BUCKET,
    PREFIX,
    REGION,
    aws_credentials_fixture,
    aws_fixture,
    aws_settings_fixture,
    no_network_fixture,
)

DATA = "s3://bucket/datasets/digits"
HPS = {"model": "resnet18", "image-size": "224", "batch-size": "32", "epochs": "2"}


def _job(name: str, *, training_s: float | None = 600.0, status: JobStatus = JobStatus.COMPLETED,
         instance_type: str = "ml.g5.xlarge", count: int = 1, **hps: str) -> TrainingJob:
    return TrainingJob(name=name, status=status, backend="aws", created_at=time.time(),
                       hyperparameters={**HPS, **hps}, inputs={"training": DATA}, instance_type=instance_type,
                       instance_count=count, training_s=training_s, billable_s=training_s)


def test_a_spot_jobs_bill_and_savings_are_sagemakers() -> None:
    """AWS's example: 100 billable seconds of 500 trained is a saving of 80%."""
    spot = Bill(training_s=500, billable_s=100, instance_count=2, price_per_hour=3.6)
    assert spot.spot_savings == pytest.approx(0.8)
    assert spot.cost == pytest.approx(100 / 3600 * 2 * 3.6)
    assert cost_per_point(spot.cost, 0.9) == pytest.approx(spot.cost / 90)
    line = describe_bill(spot, "ml.g5.xlarge", 0.9)
    assert line == ("Billed 1 min 40 s × 2 × ml.g5.xlarge at $3.6/h = $0.2000; managed spot saved 80% "
                    "(1 min 40 s of 8 min 20 s billed); $0.0022 per point of test accuracy.")
    assert describe_bill(Bill(600, 600, 1, 0.0), "local", 0.9) == "Trained 10 min 0 s on this machine at no charge."
    assert describe_bill(Bill(None, None, 1, 1.0), "ml.m5.xlarge", None).startswith("Not billed yet")


def test_sagemakers_description_carries_the_billed_and_trained_seconds() -> None:
    job = training_job_from_description({
        "TrainingJobName": "spot-1", "TrainingJobStatus": "Completed", "CreationTime": time.time(),
        "ResourceConfig": {"InstanceType": "ml.g5.xlarge", "InstanceCount": 2, "VolumeSizeInGB": 30},
        "TrainingTimeInSeconds": 500, "BillableTimeInSeconds": 100,
    })
    assert (job.instance_count, job.training_s, job.billable_s) == (2, 500, 100)
    assert bill(job, 1.0).spot_savings == pytest.approx(0.8)


def test_the_estimate_is_timed_by_the_newest_similar_finished_job() -> None:
    jobs = [
        _job("running", training_s=None, status=JobStatus.IN_PROGRESS),
        _job("other-model", model="resnet50"),
        _job("other-type", instance_type="ml.m5.xlarge"),
        _job("newest-like", training_s=600.0),
        _job("older-like", training_s=900.0),
    ]
    assert similar_job(jobs, DATA, HPS, "ml.g5.xlarge").name == "newest-like"  # type: ignore[union-attr]
    doubled = estimate(Compute("ml.g5.xlarge", instance_count=2), {**HPS, "epochs": 4}, DATA, jobs, 1.2)
    assert doubled.seconds == pytest.approx(600)  # twice the epochs on twice the instances
    assert doubled.cost == pytest.approx(600 / 3600 * 2 * 1.2)
    assert describe_estimate(doubled, "ml.g5.xlarge") == (
        "Estimate: about 10 min 0 s of training, 2 × ml.g5.xlarge at $1.2/h = $0.40 "
        "(timed by newest-like: 600 s for 2 epochs on 1 × ml.g5.xlarge).")
    unknown = estimate(Compute("ml.p4d.24xlarge"), HPS, DATA, jobs, 37.7)
    assert unknown.seconds is None and unknown.cost is None
    assert describe_estimate(unknown, "ml.p4d.24xlarge") == (
        "Estimate: time unknown, 1 × ml.p4d.24xlarge at $37.7/h: $37.70 per hour (no finished job of this "
        "dataset, model, image-size, batch-size and instance type to time it by).")
    local = estimate(Compute("ml.g5.xlarge"), HPS, DATA, jobs, 0.0)
    assert describe_estimate(local, "local").startswith("Estimate: about 10 min 0 s of training, on this machine at "
                                                        "no charge")


def test_a_tuning_estimate_runs_the_longest_trial_in_waves() -> None:
    jobs = [_job("like", training_s=600.0, **{"batch-size": "64"})]
    searched = {key: value for key, value in HPS.items() if key != "batch-size"}  # a tuned one matches any
    trial = estimate(Compute("ml.g5.xlarge"), {**searched, "epochs": 3}, DATA, jobs, 1.2)
    tuning = TuningEstimate(trial, max_jobs=5, max_parallel=2)
    assert (trial.seconds, tuning.seconds) == (pytest.approx(900), pytest.approx(2700))  # 3 waves: 2, 2, 1
    assert tuning.cost == pytest.approx(5 * 900 / 3600 * 1.2)
    assert describe_tuning_estimate(tuning, "ml.g5.xlarge") == (
        "Estimate, at most: 5 trials of about 15 min 0 s each, 2 at a time: about 45 min 0 s in all; 5 × 1 × "
        "ml.g5.xlarge at $1.2/h × 15 min 0 s = $1.50 (the longest trial timed by like: 600 s for 2 epochs on 1 × "
        "ml.g5.xlarge; early stopping ends some trials sooner).")
    untimed = TuningEstimate(estimate(Compute("ml.g5.xlarge"), {**HPS, "model": "resnet50"}, DATA, jobs, None), 4, 9)
    assert (untimed.seconds, untimed.cost) == (None, None)
    assert describe_tuning_estimate(untimed, "ml.g5.xlarge").startswith(
        "Estimate: time unknown; 4 trials of 1 × ml.g5.xlarge at price unknown (no finished job")


def _price_list(region: str, instance_type: str, usd: str) -> str:
    sku = "SKU1"
    return json.dumps({
        "product": {"productFamily": "ML Instance", "sku": sku,
                    "attributes": {"regionCode": region, "instanceName": instance_type,
                                   "platoinstancetype": "Training", "servicecode": "AmazonSageMaker"}},
        "serviceCode": "AmazonSageMaker",
        "terms": {"OnDemand": {f"{sku}.T": {"priceDimensions": {f"{sku}.T.D": {
            "unit": "Hrs", "pricePerUnit": {"USD": usd}, "description": f"${usd} per hour"}}}}},
    })


def _price_request(instance_type: str) -> dict[str, Any]:
    return {"ServiceCode": "AmazonSageMaker", "FormatVersion": "aws_v1", "MaxResults": 10, "Filters": [
        {"Type": "TERM_MATCH", "Field": "productFamily", "Value": "ML Instance"},
        {"Type": "TERM_MATCH", "Field": "regionCode", "Value": REGION},
        {"Type": "TERM_MATCH", "Field": "instanceName", "Value": instance_type},
        {"Type": "TERM_MATCH", "Field": "platoinstancetype", "Value": "Training"},
    ]}


@pytest.fixture
def runner(aws_settings: Settings, aws: AwsSession) -> SageMakerJobRunner:
    return SageMakerJobRunner(aws_settings, aws, S3Storage(aws.client("s3"), BUCKET, PREFIX))


def test_the_price_comes_from_the_price_list_once_per_type(runner: SageMakerJobRunner, aws: AwsSession) -> None:
    pricing = aws.client("pricing")
    assert pricing.meta.region_name == "us-east-1"  # the Price List API's region, for every region's prices
    with Stubber(pricing) as stub:
        stub.add_response("get_products", {"FormatVersion": "aws_v1",
                                           "PriceList": [_price_list(REGION, "ml.g5.xlarge", "1.4080000000")]},
                          _price_request("ml.g5.xlarge"))
        stub.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": []},
                          _price_request("ml.trn1.32xlarge"))
        assert runner.price_per_hour("ml.g5.xlarge") == pytest.approx(1.408)
        assert runner.price_per_hour("ml.g5.xlarge") == pytest.approx(1.408)  # asked once
        assert runner.price_per_hour("ml.trn1.32xlarge") is None  # not in this region's price list
        stub.assert_no_pending_responses()


def test_a_price_list_that_refuses_is_said_in_words(runner: SageMakerJobRunner, aws: AwsSession) -> None:
    with Stubber(aws.client("pricing")) as stub:
        stub.add_client_error("get_products", "AccessDeniedException", "User is not authorized to perform: "
                              "pricing:GetProducts", 400, expected_params=_price_request("ml.g5.xlarge"))
        with pytest.raises(ConsoleError) as raised:
            runner.price_per_hour("ml.g5.xlarge")
    assert "reading the price of ml.g5.xlarge from the AWS Price List API" in str(raised.value)
    assert "pricing:GetProducts" in str(raised.value)
