"""SageMaker tuning jobs: the CreateHyperParameterTuningJob request checked against botocore's
service model and moto, and botocore's Stubber for what moto lacks (listing a tuning job's
training jobs, StopHyperParameterTuningJob) and for states moto never reaches."""

from __future__ import annotations

import io
import tarfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber
from botocore.validate import validate_parameters

from core.aws import AwsSession
from core.config import Settings
from core.errors import AlreadyExistsError, BackendError, ConfigError, InvalidInputError, NotFoundError
from core.storage._s3 import S3Storage
from core.training._sagemaker import SageMakerJobRunner
from core.training.spec import DEFAULT_METRIC_DEFINITIONS
from core.tuning._sagemaker import SageMakerTuner
from core.tuning.entities import TrialStatus
from core.tuning.spec import (
    CategoricalRange,
    ContinuousRange,
    EarlyStopping,
    IntegerRange,
    Scaling,
    Strategy,
    TuningJobSpec,
    spec_to_dict,
)
from core.types import JobStatus
from tests.core.aws_fixtures import (  # noqa: F401  (fixtures register on import)
    BUCKET,
    PREFIX,
    REGION,
    ROLE_ARN,
    aws_credentials_fixture,
    aws_fixture,
    aws_settings_fixture,
    no_network_fixture,
)

CPU_IMAGE = f"763104351884.dkr.ecr.{REGION}.amazonaws.com/pytorch-training:2.9-cpu-py312"
DATA_URI = f"s3://{BUCKET}/{PREFIX}/datasets/digits"
CREATED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
NAME = {"HyperParameterTuningJobName": "hpo-1"}
RANGES = (
    ContinuousRange("lr", 1e-4, 0.1, Scaling.LOGARITHMIC),
    ContinuousRange("weight-decay", 0.0, 0.01, Scaling.LINEAR),
    IntegerRange("epochs", 1, 4, Scaling.AUTO),
    CategoricalRange("batch-size", ("16", "32", "64")),
)


@pytest.fixture
def source_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "train.py").write_text("print('train')\n")
    (folder / "requirements.txt").write_text("psutil\n")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"\0")
    return folder


@pytest.fixture
def storage(aws: AwsSession) -> S3Storage:
    return S3Storage(aws.client("s3"), BUCKET, PREFIX)


@pytest.fixture
def tuner(aws_settings: Settings, aws: AwsSession, storage: S3Storage, source_dir: Path) -> SageMakerTuner:
    runner = SageMakerJobRunner(aws_settings, aws, storage)
    return SageMakerTuner(aws_settings, aws, storage, runner, source_dir=source_dir)


def _spec(name: str = "hpo-1", **changes: Any) -> TuningJobSpec:
    values: dict[str, Any] = {
        "name": name,
        "ranges": RANGES,
        "inputs": {"training": DATA_URI},
        "static_hyperparameters": {"model": "efficientnet_lite0", "image-size": 64},
        "objective_metric": "validation:accuracy",
        "strategy": Strategy.BAYESIAN,
        "early_stopping": EarlyStopping.AUTO,
        "max_jobs": 6,
        "max_parallel_jobs": 2,
        "seed": 7,
    }
    values.update(changes)
    return TuningJobSpec(**values)


def _capture_requests(session: AwsSession) -> list[dict[str, Any]]:
    requests: list[dict[str, Any]] = []
    session.client("sagemaker").meta.events.register(
        "provide-client-params.sagemaker.CreateHyperParameterTuningJob",
        lambda params, **_: requests.append(dict(params)),
    )
    return requests


def _validate(session: AwsSession, request: dict[str, Any]) -> None:
    model = session.client("sagemaker").meta.service_model
    validate_parameters(request, model.operation_model("CreateHyperParameterTuningJob").input_shape)


# --- start: the request --------------------------------------------------------------------


def test_start_sends_the_tuning_request_with_the_code_as_static_hyperparameters(
    tuner: SageMakerTuner, aws: AwsSession, storage: S3Storage
) -> None:
    requests = _capture_requests(aws)
    job = tuner.start(_spec())

    assert job.name == "hpo-1" and job.backend == "aws"
    assert job.strategy == "Bayesian" and job.objective_metric == "validation:accuracy"
    assert (job.max_jobs, job.max_parallel_jobs) == (6, 2)
    (request,) = requests
    _validate(aws, request)
    config = request["HyperParameterTuningJobConfig"]
    assert config == {
        "Strategy": "Bayesian",
        "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "validation:accuracy"},
        "ResourceLimits": {"MaxNumberOfTrainingJobs": 6, "MaxParallelTrainingJobs": 2},
        "ParameterRanges": {
            "ContinuousParameterRanges": [
                {"Name": "lr", "MinValue": "0.0001", "MaxValue": "0.1", "ScalingType": "Logarithmic"},
                {"Name": "weight-decay", "MinValue": "0.0", "MaxValue": "0.01", "ScalingType": "Linear"},
            ],
            "IntegerParameterRanges": [{"Name": "epochs", "MinValue": "1", "MaxValue": "4", "ScalingType": "Auto"}],
            "CategoricalParameterRanges": [{"Name": "batch-size", "Values": ["16", "32", "64"]}],
        },
        "TrainingJobEarlyStoppingType": "Auto",
        "RandomSeed": 7,
    }
    assert "WarmStartConfig" not in request
    definition = request["TrainingJobDefinition"]
    code_uri = f"s3://{BUCKET}/{PREFIX}/tuning/hpo-1/code/sourcedir.tar.gz"
    assert definition["StaticHyperParameters"] == {
        "debug-out-dir": f"s3://{BUCKET}/{PREFIX}/jobs/{{job_name}}/debug-output",  # each trial fills in its name
        "profile-out-dir": f"s3://{BUCKET}/{PREFIX}/jobs/{{job_name}}/profiler-output",
        "model": "efficientnet_lite0",
        "image-size": "64",
        "sagemaker_program": "train.py",
        "sagemaker_submit_directory": code_uri,
        "sagemaker_region": REGION,
        "sagemaker_container_log_level": "20",
    }
    assert definition["AlgorithmSpecification"] == {
        "TrainingImage": CPU_IMAGE,
        "TrainingInputMode": "File",
        "MetricDefinitions": [{"Name": m.name, "Regex": m.regex} for m in DEFAULT_METRIC_DEFINITIONS],
    }
    assert {"Name": "validation:accuracy", "Regex": r"valid_acc=([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"} in (
        definition["AlgorithmSpecification"]["MetricDefinitions"]
    )
    assert definition["RoleArn"] == ROLE_ARN
    assert definition["InputDataConfig"] == [
        {
            "ChannelName": "training",
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": DATA_URI,
                    "S3DataDistributionType": "FullyReplicated",
                }
            },
            "InputMode": "File",
        }
    ]
    assert definition["OutputDataConfig"] == {"S3OutputPath": f"s3://{BUCKET}/{PREFIX}/jobs"}
    assert definition["ResourceConfig"] == {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30}
    assert definition["StoppingCondition"] == {"MaxRuntimeInSeconds": 24 * 3600}
    assert "HyperParameters" not in definition and "TrainingJobName" not in definition

    # moto keeps what it was sent
    d = aws.client("sagemaker").describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="hpo-1")
    assert d["HyperParameterTuningJobConfig"] == config
    assert d["TrainingJobDefinition"]["StaticHyperParameters"]["sagemaker_submit_directory"] == code_uri

    # the code was uploaded once, as sourcedir.tar.gz with the files at its root
    assert [o.key for o in storage.list()] == ["tuning/hpo-1/code/sourcedir.tar.gz"]
    body = aws.client("s3").get_object(Bucket=BUCKET, Key=f"{PREFIX}/tuning/hpo-1/code/sourcedir.tar.gz")["Body"]
    with tarfile.open(fileobj=io.BytesIO(body.read()), mode="r:gz") as tar:
        assert sorted(tar.getnames()) == ["requirements.txt", "train.py"]


def test_hyperband_gets_its_resource_bounds_from_the_epochs(tuner: SageMakerTuner, aws: AwsSession) -> None:
    requests = _capture_requests(aws)
    tuner.start(_spec(strategy=Strategy.HYPERBAND, early_stopping=EarlyStopping.OFF))
    static_epochs = _spec(
        name="hpo-2",
        ranges=RANGES[:2],
        static_hyperparameters={"epochs": 9},
        strategy=Strategy.HYPERBAND,
        early_stopping=EarlyStopping.OFF,
    )
    tuner.start(static_epochs)
    for request, max_resource in zip(requests, (4, 9), strict=True):
        _validate(aws, request)
        config = request["HyperParameterTuningJobConfig"]
        assert config["Strategy"] == "Hyperband"
        assert config["TrainingJobEarlyStoppingType"] == "Off"
        assert config["StrategyConfig"] == {"HyperbandStrategyConfig": {"MinResource": 1, "MaxResource": max_resource}}


def test_grid_runs_every_combination(tuner: SageMakerTuner, aws: AwsSession, storage: S3Storage) -> None:
    grid = (CategoricalRange("batch-size", ("16", "32")), CategoricalRange("optimizer", ("adam", "sgd", "adamw")))
    with pytest.raises(InvalidInputError, match=r"every combination \(6\)"):
        tuner.start(_spec(ranges=grid, strategy=Strategy.GRID, early_stopping=EarlyStopping.OFF, max_jobs=4))
    assert storage.list() == []

    requests = _capture_requests(aws)
    job = tuner.start(_spec(ranges=grid, strategy=Strategy.GRID, early_stopping=EarlyStopping.OFF, max_jobs=8))
    (request,) = requests
    _validate(aws, request)
    config = request["HyperParameterTuningJobConfig"]
    assert config["Strategy"] == "Grid"
    assert config["ResourceLimits"] == {"MaxParallelTrainingJobs": 2}  # SageMaker counts the grid itself
    assert "StrategyConfig" not in config
    assert config["ParameterRanges"]["CategoricalParameterRanges"] == [
        {"Name": "batch-size", "Values": ["16", "32"]},
        {"Name": "optimizer", "Values": ["adam", "sgd", "adamw"]},
    ]
    assert job.max_jobs == 6
    assert tuner.spec("hpo-1").max_jobs == 6


def test_warm_start_names_its_parents(tuner: SageMakerTuner, aws: AwsSession, storage: S3Storage) -> None:
    tuner.start(_spec(name="parent"))
    with pytest.raises(InvalidInputError, match="warm start: no tuning job named 'missing'"):
        tuner.start(_spec(name="child", warm_start_from=("parent", "missing")))
    assert [o.key for o in storage.list()] == ["tuning/parent/code/sourcedir.tar.gz"]

    requests = _capture_requests(aws)
    tuner.start(_spec(name="child", warm_start_from=("parent",)))
    (request,) = requests
    _validate(aws, request)
    assert request["WarmStartConfig"] == {
        "ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": "parent"}],
        "WarmStartType": "IdenticalDataAndAlgorithm",
    }
    assert tuner.spec("child").warm_start_from == ("parent",)


def test_unusable_inputs_are_refused_before_anything_is_uploaded(
    tuner: SageMakerTuner, aws: AwsSession, storage: S3Storage, tmp_path: Path
) -> None:
    with pytest.raises(InvalidInputError, match="upload the dataset to S3 first"):
        tuner.start(_spec(inputs={"training": (tmp_path / "data").as_uri()}))
    with pytest.raises(InvalidInputError, match="SageMaker type"):
        tuner.start(_spec(instance_type="m5.xlarge"))
    with pytest.raises(InvalidInputError, match="reserved"):
        tuner.start(_spec(static_hyperparameters={"sagemaker_program": "evil.py"}))
    assert storage.list() == []
    assert aws.client("sagemaker").list_hyper_parameter_tuning_jobs()["HyperParameterTuningJobSummaries"] == []


def test_a_missing_role_is_a_config_error(
    aws_settings: Settings, aws: AwsSession, storage: S3Storage, source_dir: Path
) -> None:
    settings = replace(aws_settings, role_arn=None)
    runner = SageMakerJobRunner(settings, aws, storage)
    with pytest.raises(ConfigError, match="SMC_ROLE_ARN"):
        SageMakerTuner(settings, aws, storage, runner, source_dir=source_dir).start(_spec())


def test_a_second_tuning_job_of_the_same_name_is_refused(tuner: SageMakerTuner, storage: S3Storage) -> None:
    tuner.start(_spec())
    with pytest.raises(AlreadyExistsError, match="hpo-1"):
        tuner.start(_spec(max_jobs=3))
    assert len(storage.list()) == 1


def test_a_refused_create_removes_the_uploaded_code(
    tuner: SageMakerTuner, aws: AwsSession, storage: S3Storage
) -> None:
    with Stubber(aws.client("sagemaker")) as stub:
        stub.add_client_error(
            "describe_hyper_parameter_tuning_job",
            "ResourceNotFound",
            "Amazon SageMaker can't find a tuning job with name hpo-1",
            400,
            expected_params={"HyperParameterTuningJobName": "hpo-1"},
        )
        stub.add_client_error("create_hyper_parameter_tuning_job", "ResourceLimitExceeded", "too many tuning jobs", 400)
        with pytest.raises(BackendError, match="ResourceLimitExceeded"):
            tuner.start(_spec())
        stub.assert_no_pending_responses()
    assert storage.list() == []


# --- describe, list, spec ------------------------------------------------------------------


def _description(status: str = "InProgress", **extra: Any) -> dict[str, Any]:
    spec = _spec()
    return {
        "HyperParameterTuningJobName": "hpo-1",
        "HyperParameterTuningJobArn": "arn:aws:sagemaker:us-east-1:123456789012:hyper-parameter-tuning-job/hpo-1",
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "validation:accuracy"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 6, "MaxParallelTrainingJobs": 2},
            "ParameterRanges": {
                "ContinuousParameterRanges": [
                    {"Name": "lr", "MinValue": "0.0001", "MaxValue": "0.1", "ScalingType": "Logarithmic"}
                ],
                "CategoricalParameterRanges": [{"Name": "batch-size", "Values": ["16", "32"]}],
            },
            "TrainingJobEarlyStoppingType": "Auto",
        },
        "TrainingJobDefinition": {
            "StaticHyperParameters": {"epochs": "3", "sagemaker_program": "train.py", "_tuning_objective_metric": "x"},
            "AlgorithmSpecification": {"TrainingImage": CPU_IMAGE, "TrainingInputMode": "File"},
            "RoleArn": ROLE_ARN,
            "InputDataConfig": [
                {"ChannelName": c, "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": u}}}
                for c, u in spec.inputs.items()
            ],
            "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/{PREFIX}/jobs"},
            "ResourceConfig": {"InstanceType": "ml.g5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        },
        "HyperParameterTuningJobStatus": status,
        "CreationTime": CREATED,
        "TrainingJobStatusCounters": {
            "Completed": 3, "InProgress": 2, "RetryableError": 1, "NonRetryableError": 1, "Stopped": 1,
        },
        "ObjectiveStatusCounters": {"Succeeded": 3, "Pending": 2, "Failed": 3},
        **extra,
    }


def test_describe_maps_status_counters_and_the_best_job(tuner: SageMakerTuner, aws: AwsSession) -> None:
    best = {
        "TrainingJobName": "hpo-1-002-1a2b3c4d",
        "TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/hpo-1-002-1a2b3c4d",
        "CreationTime": CREATED,
        "TrainingJobStatus": "Completed",
        "TunedHyperParameters": {"lr": "0.01"},
        "FinalHyperParameterTuningJobObjectiveMetric": {"MetricName": "validation:accuracy", "Value": 0.93},
    }
    ended = _description(
        "Failed",
        BestTrainingJob=best,
        HyperParameterTuningEndTime=CREATED + timedelta(hours=1),
        FailureReason="too many failed training jobs",
    )
    with Stubber(aws.client("sagemaker")) as stub:
        stub.add_response("describe_hyper_parameter_tuning_job", _description(), NAME)
        stub.add_response("describe_hyper_parameter_tuning_job", ended, NAME)
        running, failed = tuner.describe("hpo-1"), tuner.describe("hpo-1")
        stub.assert_no_pending_responses()

    assert running.status is JobStatus.IN_PROGRESS
    assert running.created_at == CREATED.timestamp() and running.ended_at is None
    assert (running.strategy, running.objective_metric, running.objective_type) == (
        "Bayesian", "validation:accuracy", "Maximize",
    )
    assert dict(running.counts) == {
        "Completed": 3, "InProgress": 2, "Failed": 2, "Stopped": 1,
        "ObjectiveSucceeded": 3, "ObjectivePending": 2, "ObjectiveFailed": 3,
    }
    assert running.best_job_name is None and running.best_objective is None and running.failure_reason is None

    assert failed.status is JobStatus.FAILED
    assert failed.failure_reason == "too many failed training jobs"
    assert failed.ended_at == (CREATED + timedelta(hours=1)).timestamp()
    assert (failed.best_job_name, failed.best_objective) == ("hpo-1-002-1a2b3c4d", 0.93)


@pytest.mark.parametrize(
    ("sagemaker_status", "status"),
    [("Completed", JobStatus.COMPLETED), ("Stopping", JobStatus.STOPPING), ("Stopped", JobStatus.STOPPED),
     ("Deleting", JobStatus.STOPPED)],
)
def test_describe_maps_each_status(
    tuner: SageMakerTuner, aws: AwsSession, sagemaker_status: str, status: JobStatus
) -> None:
    with Stubber(aws.client("sagemaker")) as stub:
        stub.add_response("describe_hyper_parameter_tuning_job", _description(sagemaker_status))
        assert tuner.describe("hpo-1").status is status
        stub.assert_no_pending_responses()


def test_spec_is_rebuilt_from_the_description(tuner: SageMakerTuner) -> None:
    original = _spec(instance_type="ml.g5.xlarge", instance_count=2, volume_size_gb=50, max_runtime_s=3600,
                     use_spot=True, max_wait_s=7200)
    tuner.start(original)
    assert spec_to_dict(tuner.spec("hpo-1")) == spec_to_dict(original)
    assert tuner.spec("hpo-1").ranges == RANGES


def test_every_trial_runs_on_the_chosen_compute(tuner: SageMakerTuner, aws: AwsSession) -> None:
    requests = _capture_requests(aws)
    tuner.start(_spec(instance_type="ml.g5.xlarge", instance_count=2, volume_size_gb=50, max_runtime_s=3600,
                      use_spot=True, max_wait_s=7200))
    (request,) = requests
    _validate(aws, request)
    definition = request["TrainingJobDefinition"]
    assert definition["ResourceConfig"] == {"InstanceType": "ml.g5.xlarge", "InstanceCount": 2, "VolumeSizeInGB": 50}
    assert definition["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
    assert definition["EnableManagedSpotTraining"] is True
    # one prefix for every trial, as SageMaker has it: train.py names each trial's checkpoint for its job
    assert definition["CheckpointConfig"] == {"S3Uri": f"s3://{BUCKET}/{PREFIX}/jobs/hpo-1/checkpoints",
                                              "LocalPath": "/opt/ml/checkpoints"}
    assert definition["StaticHyperParameters"]["sagemaker_torch_distributed_enabled"] == "true"


def test_a_type_the_region_does_not_offer_is_refused_before_anything_is_sent(tuner: SageMakerTuner,
                                                                              aws: AwsSession) -> None:
    requests = _capture_requests(aws)
    with pytest.raises(InvalidInputError, match=r"ml\.nonexistent\.xlarge: SageMaker has no training instance"):
        tuner.start(_spec(instance_type="ml.nonexistent.xlarge"))
    assert requests == []


def test_spec_of_a_foreign_job_keeps_only_what_the_script_takes(tuner: SageMakerTuner, aws: AwsSession) -> None:
    with Stubber(aws.client("sagemaker")) as stub:
        stub.add_response("describe_hyper_parameter_tuning_job", _description())
        spec = tuner.spec("hpo-1")
        foreign = _description()
        foreign["HyperParameterTuningJobConfig"]["ParameterRanges"]["ContinuousParameterRanges"][0][
            "ScalingType"
        ] = "ReverseLogarithmic"
        stub.add_response("describe_hyper_parameter_tuning_job", foreign)
        with pytest.raises(InvalidInputError, match="ReverseLogarithmic"):
            tuner.spec("hpo-1")
        stub.assert_no_pending_responses()
    assert dict(spec.static_hyperparameters) == {"epochs": "3"}
    assert spec.early_stopping is EarlyStopping.AUTO and spec.seed == 0
    assert spec.instance_type == "ml.g5.xlarge"


def test_list_returns_the_newest_tuning_jobs_first(tuner: SageMakerTuner) -> None:
    for i in range(3):
        tuner.start(_spec(name=f"hpo-{i}"))
    listed = tuner.list_tuning_jobs()
    assert [j.name for j in listed] == ["hpo-2", "hpo-1", "hpo-0"]
    assert all(j.backend == "aws" and j.status is JobStatus.COMPLETED for j in listed)  # moto finishes at once
    assert (listed[0].strategy, listed[0].max_jobs, listed[0].max_parallel_jobs) == ("Bayesian", 6, 2)
    assert [j.name for j in tuner.list_tuning_jobs(limit=2)] == ["hpo-2", "hpo-1"]
    assert tuner.list_tuning_jobs(limit=0) == []


def test_unknown_tuning_jobs_are_not_found(tuner: SageMakerTuner) -> None:
    for call in (tuner.describe, tuner.stop, tuner.trials, tuner.spec, tuner.best_trial):
        with pytest.raises(NotFoundError, match="tuning job nope"):
            call("nope")


# --- trials (moto has no ListTrainingJobsForHyperParameterTuningJob) ----------------------


def _summary(number: int, status: str, objective: float | None = None, **extra: Any) -> dict[str, Any]:
    name = f"hpo-1-{number:03d}-{number:08x}"
    summary: dict[str, Any] = {
        "TrainingJobName": name,
        "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{name}",
        "CreationTime": CREATED + timedelta(minutes=number),
        "TrainingStartTime": CREATED + timedelta(minutes=number, seconds=30),
        "TrainingJobStatus": status,
        "TunedHyperParameters": {"lr": f"0.0{number}", "batch-size": "32"},
        **extra,
    }
    if status != "InProgress":
        summary["TrainingEndTime"] = CREATED + timedelta(minutes=number + 5)
    if objective is not None:
        metric = {"MetricName": "validation:accuracy", "Value": objective}
        summary["FinalHyperParameterTuningJobObjectiveMetric"] = metric
    return summary


def _list_params(**extra: Any) -> dict[str, Any]:
    return {"HyperParameterTuningJobName": "hpo-1", "MaxResults": 100, **extra}


def test_trials_are_read_from_the_tuning_jobs_training_jobs(tuner: SageMakerTuner, aws: AwsSession) -> None:
    first_page = [
        _summary(3, "Stopped", 0.41, ObjectiveStatus="Succeeded"),
        _summary(1, "Completed", 0.92, ObjectiveStatus="Succeeded"),
        _summary(4, "Completed", None, ObjectiveStatus="Failed"),
    ]
    second_page = [
        _summary(2, "Failed", None, ObjectiveStatus="Failed", FailureReason="AlgorithmError: out of memory"),
        _summary(5, "InProgress", None, ObjectiveStatus="Pending"),
        _summary(6, "Stopping", None, ObjectiveStatus="Pending"),
        _summary(7, "Stopped", None, ObjectiveStatus="Failed"),  # stopped before it reported anything
    ]
    with Stubber(aws.client("sagemaker")) as stub:
        stub.add_response("describe_hyper_parameter_tuning_job", _description(), NAME)
        stub.add_response(
            "list_training_jobs_for_hyper_parameter_tuning_job",
            {"TrainingJobSummaries": first_page, "NextToken": "t"},
            _list_params(),
        )
        stub.add_response(
            "list_training_jobs_for_hyper_parameter_tuning_job",
            {"TrainingJobSummaries": second_page},
            _list_params(NextToken="t"),
        )
        trials = tuner.trials("hpo-1")
        stub.assert_no_pending_responses()

    assert [(t.number, t.job_name, t.status) for t in trials] == [
        (0, "hpo-1-001-00000001", TrialStatus.COMPLETED),
        (1, "hpo-1-002-00000002", TrialStatus.FAILED),
        (2, "hpo-1-003-00000003", TrialStatus.PRUNED),  # stopped by early stopping Auto
        (3, "hpo-1-004-00000004", TrialStatus.FAILED),
        (4, "hpo-1-005-00000005", TrialStatus.IN_PROGRESS),
        (5, "hpo-1-006-00000006", TrialStatus.IN_PROGRESS),
        (6, "hpo-1-007-00000007", TrialStatus.STOPPED),
    ]
    best, crashed, pruned, silent = trials[:4]
    assert dict(best.hyperparameters) == {"lr": "0.01", "batch-size": "32"}
    assert best.objective == 0.92 and pruned.objective == 0.41
    assert best.started_at == (CREATED + timedelta(minutes=1, seconds=30)).timestamp()
    assert best.duration_s == 270
    assert crashed.failure_reason == "AlgorithmError: out of memory"
    assert silent.failure_reason == "the objective metric validation:accuracy never appeared in the log"
    assert silent.objective is None and trials[4].ended_at is None


def test_stopped_trials_without_early_stopping_are_stopped_and_odd_names_get_free_numbers(
    tuner: SageMakerTuner, aws: AwsSession
) -> None:
    off = _description()
    off["HyperParameterTuningJobConfig"]["TrainingJobEarlyStoppingType"] = "Off"
    renamed = _summary(9, "Completed", 0.5, ObjectiveStatus="Succeeded")
    renamed["TrainingJobName"] = "renamed-job"
    twin = _summary(3, "Completed", 0.6, ObjectiveStatus="Succeeded")
    twin["TrainingJobName"] = "hpo-1-003-ffffffff"
    twin["CreationTime"] = CREATED + timedelta(minutes=8)
    summaries = [renamed, twin, _summary(3, "Completed", 0.7), _summary(1, "Stopped", 0.4, ObjectiveStatus="Succeeded")]
    with Stubber(aws.client("sagemaker")) as stub:
        stub.add_response("describe_hyper_parameter_tuning_job", off)
        stub.add_response(
            "list_training_jobs_for_hyper_parameter_tuning_job", {"TrainingJobSummaries": summaries}, _list_params()
        )
        trials = tuner.trials("hpo-1")
        stub.assert_no_pending_responses()
    assert [(t.number, t.job_name, t.status) for t in trials] == [
        (0, "hpo-1-001-00000001", TrialStatus.STOPPED),
        (1, "hpo-1-003-ffffffff", TrialStatus.COMPLETED),  # the newer of two 003s: the first free number
        (2, "hpo-1-003-00000003", TrialStatus.COMPLETED),
        (3, "renamed-job", TrialStatus.COMPLETED),
    ]


def test_a_tuning_job_without_trials_has_none(tuner: SageMakerTuner, aws: AwsSession) -> None:
    with Stubber(aws.client("sagemaker")) as stub:
        stub.add_response("describe_hyper_parameter_tuning_job", _description())
        stub.add_response("list_training_jobs_for_hyper_parameter_tuning_job", {"TrainingJobSummaries": []})
        assert tuner.trials("hpo-1") == []
        stub.assert_no_pending_responses()


# --- best trial (through the base class) ---------------------------------------------------


def _training_job(name: str) -> dict[str, Any]:
    return {
        "TrainingJobName": name,
        "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{name}",
        "ModelArtifacts": {"S3ModelArtifacts": f"s3://{BUCKET}/{PREFIX}/jobs/{name}/output/model.tar.gz"},
        "TrainingJobStatus": "Completed",
        "SecondaryStatus": "Completed",
        "AlgorithmSpecification": {"TrainingImage": CPU_IMAGE, "TrainingInputMode": "File"},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "CreationTime": CREATED,
        "HyperParameters": {"lr": "0.03", "batch-size": "32", "epochs": "3", "sagemaker_program": "train.py"},
    }


@pytest.mark.parametrize(("objective_type", "best"), [("Maximize", 3), ("Minimize", 1)])
def test_best_trial_comes_with_its_training_job(
    tuner: SageMakerTuner, aws: AwsSession, objective_type: str, best: int
) -> None:
    description = _description("Completed")
    description["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]["Type"] = objective_type
    summaries = [
        _summary(1, "Completed", 0.80, ObjectiveStatus="Succeeded"),
        _summary(2, "Stopped", 0.20, ObjectiveStatus="Succeeded"),  # pruned: never the best
        _summary(3, "Completed", 0.95, ObjectiveStatus="Succeeded"),
    ]
    best_name = f"hpo-1-{best:03d}-{best:08x}"
    with Stubber(aws.client("sagemaker")) as stub:
        stub.add_response("describe_hyper_parameter_tuning_job", description)  # spec()
        stub.add_response("describe_hyper_parameter_tuning_job", description)  # trials()
        stub.add_response("list_training_jobs_for_hyper_parameter_tuning_job", {"TrainingJobSummaries": summaries})
        stub.add_response("describe_training_job", _training_job(best_name), {"TrainingJobName": best_name})
        result = tuner.best_trial("hpo-1")
        stub.assert_no_pending_responses()
    assert result is not None
    assert result.trial.job_name == best_name and result.trial.number == best - 1
    assert result.training_job.name == best_name and result.training_job.status is JobStatus.COMPLETED
    assert dict(result.hyperparameters) == {"lr": "0.03", "batch-size": "32", "epochs": "3"}
    assert result.training_job.model_uri == f"s3://{BUCKET}/{PREFIX}/jobs/{best_name}/output/model.tar.gz"


def test_the_best_trial_is_the_training_job_the_runner_lists(tuner: SageMakerTuner, aws: AwsSession) -> None:
    """Trials need no DescribeTrainingJob (their summaries hold all a Trial does); the best one's
    training job is described once, and the runner's job list then reuses that description."""
    summaries = [_summary(1, "Completed", 0.80, ObjectiveStatus="Succeeded"), _summary(2, "InProgress")]
    best_name = "hpo-1-001-00000001"
    listed = {
        "TrainingJobName": best_name,
        "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{best_name}",
        "CreationTime": CREATED,
        "TrainingJobStatus": "Completed",
    }
    with Stubber(aws.client("sagemaker")) as stub:  # an unexpected DescribeTrainingJob fails the test
        stub.add_response("describe_hyper_parameter_tuning_job", _description("Completed"))
        stub.add_response("describe_hyper_parameter_tuning_job", _description("Completed"))
        stub.add_response("list_training_jobs_for_hyper_parameter_tuning_job", {"TrainingJobSummaries": summaries})
        stub.add_response("describe_training_job", _training_job(best_name), {"TrainingJobName": best_name})
        best = tuner.best_trial("hpo-1")
        stub.add_response("list_training_jobs", {"TrainingJobSummaries": [listed]})
        jobs = tuner.runner.list_jobs()
        stub.assert_no_pending_responses()
    assert best is not None and jobs == [best.training_job]
    assert best.training_job.model_uri == f"s3://{BUCKET}/{PREFIX}/jobs/{best_name}/output/model.tar.gz"


def test_no_best_trial_before_one_completes(tuner: SageMakerTuner, aws: AwsSession) -> None:
    with Stubber(aws.client("sagemaker")) as stub:
        stub.add_response("describe_hyper_parameter_tuning_job", _description())
        stub.add_response("describe_hyper_parameter_tuning_job", _description())
        stub.add_response(
            "list_training_jobs_for_hyper_parameter_tuning_job",
            {"TrainingJobSummaries": [_summary(1, "InProgress", ObjectiveStatus="Pending")]},
        )
        assert tuner.best_trial("hpo-1") is None
        stub.assert_no_pending_responses()


# --- stop (moto has no StopHyperParameterTuningJob) ----------------------------------------


def test_stop_asks_sagemaker_and_returns_the_stopping_job(tuner: SageMakerTuner, aws: AwsSession) -> None:
    with Stubber(aws.client("sagemaker")) as stub:
        stub.add_response("describe_hyper_parameter_tuning_job", _description("InProgress"), NAME)
        stub.add_response("stop_hyper_parameter_tuning_job", {}, NAME)
        stub.add_response("describe_hyper_parameter_tuning_job", _description("Stopping"), NAME)
        job = tuner.stop("hpo-1")
        stub.assert_no_pending_responses()
    assert job.status is JobStatus.STOPPING


def test_stop_of_a_tuning_job_that_just_finished_returns_it(tuner: SageMakerTuner, aws: AwsSession) -> None:
    with Stubber(aws.client("sagemaker")) as stub:
        stub.add_response("describe_hyper_parameter_tuning_job", _description("InProgress"))
        stub.add_client_error(
            "stop_hyper_parameter_tuning_job", "ValidationException", "The job is Completed and cannot be stopped.", 400
        )
        stub.add_response("describe_hyper_parameter_tuning_job", _description("Completed"))
        job = tuner.stop("hpo-1")
        stub.assert_no_pending_responses()
    assert job.status is JobStatus.COMPLETED


def test_stop_of_a_finished_tuning_job_sends_no_stop(tuner: SageMakerTuner) -> None:
    tuner.start(_spec())  # completed at once under moto, which has no StopHyperParameterTuningJob
    assert tuner.stop("hpo-1").status is JobStatus.COMPLETED
