"""The SageMaker stand-in (tests/standins/sagemaker.py) keeps AWS's contract where moto has none:
stopping jobs, a tuning job's trials, sorted listings. Driven with boto3 directly, whose parser
reads every answer; the stand-in checks each answer against botocore's model before sending it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.core.aws_fixtures import FAKE_ACCESS_KEY, FAKE_SECRET, REGION, ROLE_ARN, clear_aws_environment
from tests.standins.sagemaker import SageMakerStandIn, answer_json

IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.9-cpu-py312"
COMMON: dict[str, Any] = {
    "RoleArn": ROLE_ARN,
    "OutputDataConfig": {"S3OutputPath": "s3://smc-test-bucket/sm-console/jobs"},
    "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
    "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
}
METRICS = [{"Name": "validation:accuracy", "Regex": r"valid_acc=([0-9.]+)"}]


@pytest.fixture
def stand_in(sagemaker_stand_in: SageMakerStandIn, monkeypatch: pytest.MonkeyPatch,
             tmp_path: Path) -> Iterator[SageMakerStandIn]:
    sagemaker_stand_in.reset()
    clear_aws_environment(monkeypatch, tmp_path)
    yield sagemaker_stand_in
    assert not sagemaker_stand_in.errors


def _client(stand_in: SageMakerStandIn, **config: Any) -> Any:
    return boto3.client("sagemaker", region_name=REGION, endpoint_url=stand_in.url, aws_access_key_id=FAKE_ACCESS_KEY,
                        aws_secret_access_key=FAKE_SECRET, config=Config(retries={"max_attempts": 1}, **config))


@pytest.fixture
def sagemaker(stand_in: SageMakerStandIn) -> Any:
    return _client(stand_in)


def _create_training_job(sagemaker: Any, name: str) -> None:
    sagemaker.create_training_job(
        TrainingJobName=name, HyperParameters={"epochs": "2"},
        AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File", "MetricDefinitions": METRICS},
        **COMMON,
    )


def _create_tuning_job(sagemaker: Any, name: str, strategy: str = "Random", max_jobs: int = 3) -> None:
    limits = {"MaxParallelTrainingJobs": 2} | ({} if strategy == "Grid" else {"MaxNumberOfTrainingJobs": max_jobs})
    sagemaker.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name,
        HyperParameterTuningJobConfig={
            "Strategy": strategy,
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "validation:accuracy"},
            "ResourceLimits": limits,
            "ParameterRanges": {
                "ContinuousParameterRanges": [] if strategy == "Grid" else [
                    {"Name": "lr", "MinValue": "0.001", "MaxValue": "0.1", "ScalingType": "Logarithmic"}],
                "IntegerParameterRanges": [] if strategy == "Grid" else [
                    {"Name": "batch-size", "MinValue": "16", "MaxValue": "64", "ScalingType": "Linear"}],
                "CategoricalParameterRanges": [{"Name": "optimizer", "Values": ["adam", "sgd"]},
                                               {"Name": "model", "Values": ["a", "b", "c"]}],
            },
            "TrainingJobEarlyStoppingType": "Off",
        },
        TrainingJobDefinition={
            "StaticHyperParameters": {"epochs": "2", "sagemaker_program": "train.py"},
            "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File",
                                       "MetricDefinitions": METRICS},
            **COMMON,
        },
    )


def _trials(sagemaker: Any, name: str, **params: Any) -> list[dict[str, Any]]:
    pages = sagemaker.get_paginator("list_training_jobs_for_hyper_parameter_tuning_job").paginate(
        HyperParameterTuningJobName=name, **params)
    return [s for page in pages for s in page["TrainingJobSummaries"]]


def _error_code(error: pytest.ExceptionInfo[ClientError]) -> str:
    return str(error.value.response["Error"]["Code"])


def test_a_training_job_runs_for_some_describes_then_completes(sagemaker: Any, stand_in: SageMakerStandIn) -> None:
    _create_training_job(sagemaker, "job-1")

    runs = stand_in.describes_per_run
    described = [sagemaker.describe_training_job(TrainingJobName="job-1") for _ in range(runs + 1)]

    assert [d["TrainingJobStatus"] for d in described] == ["InProgress"] * runs + ["Completed"]
    assert "TrainingEndTime" not in described[0] and "FinalMetricDataList" not in described[0]
    assert described[-1]["TrainingEndTime"] >= described[-1]["CreationTime"]
    assert described[0]["AlgorithmSpecification"]["MetricDefinitions"] == METRICS
    assert [s["TrainingJobStatus"] for s in sagemaker.list_training_jobs()["TrainingJobSummaries"]] == ["Completed"]


def test_stop_training_job_follows_the_aws_contract(sagemaker: Any) -> None:
    with pytest.raises(ClientError) as unknown:
        sagemaker.stop_training_job(TrainingJobName="nobody")
    assert _error_code(unknown) == "ResourceNotFound"

    _create_training_job(sagemaker, "job-1")
    sagemaker.stop_training_job(TrainingJobName="job-1")
    statuses = [sagemaker.describe_training_job(TrainingJobName="job-1")["TrainingJobStatus"] for _ in range(3)]

    assert statuses == ["Stopping", "Stopped", "Stopped"]
    with pytest.raises(ClientError) as finished:
        sagemaker.stop_training_job(TrainingJobName="job-1")
    assert _error_code(finished) == "ValidationException"
    assert "Stopped" in finished.value.response["Error"]["Message"]


def test_an_invalid_request_is_refused_as_aws_would(stand_in: SageMakerStandIn) -> None:
    unchecked = _client(stand_in, parameter_validation=False)
    with pytest.raises(ClientError) as refused:
        unchecked.stop_training_job(TrainingJobName="")
    assert _error_code(refused) == "ValidationException"


def test_list_training_jobs_sorts_filters_and_pages(sagemaker: Any) -> None:
    for name in ("job-b", "job-a", "job-c"):
        _create_training_job(sagemaker, name)
    sagemaker.stop_training_job(TrainingJobName="job-a")

    newest_first = sagemaker.get_paginator("list_training_jobs").paginate(
        SortBy="CreationTime", SortOrder="Descending", PaginationConfig={"PageSize": 2})
    pages = [[s["TrainingJobName"] for s in page["TrainingJobSummaries"]] for page in newest_first]
    stopping = sagemaker.list_training_jobs(StatusEquals="Stopping")["TrainingJobSummaries"]
    by_name = sagemaker.list_training_jobs(SortBy="Name")["TrainingJobSummaries"]

    assert pages == [["job-c", "job-a"], ["job-b"]]
    assert [s["TrainingJobName"] for s in stopping] == ["job-a"]
    assert [s["TrainingJobName"] for s in by_name] == ["job-a", "job-b", "job-c"]


def test_a_tuning_job_runs_its_trials_and_names_the_best(sagemaker: Any, stand_in: SageMakerStandIn) -> None:
    _create_tuning_job(sagemaker, "tune-1")

    first = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="tune-1")
    trials = _trials(sagemaker, "tune-1")

    assert first["HyperParameterTuningJobStatus"] == "InProgress" and "BestTrainingJob" not in first
    assert first["TrainingJobStatusCounters"]["InProgress"] == 3
    assert all(re.fullmatch(r"tune-1-00[123]-[0-9a-f]{8}", t["TrainingJobName"]) for t in trials)
    assert [t["TunedHyperParameters"]["optimizer"] for t in trials] == ["adam", "sgd", "adam"]
    assert [t["TunedHyperParameters"]["batch-size"] for t in trials] == ["28", "40", "52"]
    trial = sagemaker.describe_training_job(TrainingJobName=trials[0]["TrainingJobName"])
    assert trial["TuningJobArn"] == first["HyperParameterTuningJobArn"]
    assert trial["HyperParameters"]["epochs"] == "2" and trial["HyperParameters"]["optimizer"] == "adam"

    for _ in range(stand_in.describes_per_run):
        done = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="tune-1")
    trials = _trials(sagemaker, "tune-1", SortBy="FinalObjectiveMetricValue", SortOrder="Descending")

    assert done["HyperParameterTuningJobStatus"] == "Completed"
    assert done["TrainingJobStatusCounters"]["Completed"] == 3 and done["ObjectiveStatusCounters"]["Succeeded"] == 3
    assert done["BestTrainingJob"]["TrainingJobName"] == trials[0]["TrainingJobName"]
    assert [t["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for t in trials] == [0.52, 0.51, 0.5]
    listed = sagemaker.list_hyper_parameter_tuning_jobs()["HyperParameterTuningJobSummaries"]
    assert [s["HyperParameterTuningJobStatus"] for s in listed] == ["Completed"]
    with pytest.raises(ClientError) as finished:
        sagemaker.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName="tune-1")
    assert _error_code(finished) == "ValidationException"


def test_stopping_a_tuning_job_stops_its_trials(sagemaker: Any) -> None:
    with pytest.raises(ClientError) as unknown:
        sagemaker.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName="nobody")
    assert _error_code(unknown) == "ResourceNotFound"
    with pytest.raises(ClientError) as no_trials:
        sagemaker.list_training_jobs_for_hyper_parameter_tuning_job(HyperParameterTuningJobName="nobody")
    assert _error_code(no_trials) == "ResourceNotFound"

    _create_tuning_job(sagemaker, "tune-2")
    sagemaker.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName="tune-2")
    statuses = [sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="tune-2")
                ["HyperParameterTuningJobStatus"] for _ in range(2)]

    assert statuses == ["Stopping", "Stopped"]
    assert {t["TrainingJobStatus"] for t in _trials(sagemaker, "tune-2")} == {"Stopped"}
    assert {t["ObjectiveStatus"] for t in _trials(sagemaker, "tune-2")} == {"Pending"}


def test_a_grid_search_runs_every_combination_in_pages(sagemaker: Any) -> None:
    _create_tuning_job(sagemaker, "grid-1", strategy="Grid")

    page = sagemaker.list_training_jobs_for_hyper_parameter_tuning_job(HyperParameterTuningJobName="grid-1",
                                                                       MaxResults=4)
    trials = _trials(sagemaker, "grid-1", PaginationConfig={"PageSize": 4})

    assert len(page["TrainingJobSummaries"]) == 4 and page["NextToken"]
    assert sorted((t["TunedHyperParameters"]["optimizer"], t["TunedHyperParameters"]["model"]) for t in trials) == [
        (o, m) for o in ("adam", "sgd") for m in ("a", "b", "c")]


def test_an_answer_that_breaks_the_model_is_never_sent() -> None:
    model = botocore.session.get_session().get_service_model("sagemaker")

    with pytest.raises(AssertionError, match="TrainingJobStatus"):
        answer_json(model, "DescribeTrainingJob", {"TrainingJobName": "job-1"})
    with pytest.raises(AssertionError, match="Unknown parameter"):
        answer_json(model, "ListTrainingJobsForHyperParameterTuningJob", {"TrainingJobSummaries": [], "Extra": 1})
