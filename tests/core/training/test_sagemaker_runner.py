"""SageMaker training jobs against moto (create, describe, list, metrics, logs) and botocore's
Stubber for what moto lacks (StopTrainingJob), for states moto never reaches and for error paths."""

from __future__ import annotations

import io
import tarfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from core.aws import AwsSession
from core.config import Settings
from core.entities import TrainingJob
from core.errors import AlreadyExistsError, BackendError, ConfigError, InvalidInputError, NotFoundError
from core.storage._s3 import S3Storage
from core.training._instance_catalog import is_offered, training_instance_types, training_type_names
from core.training._sagemaker import LOG_GROUP, METRIC_NAMESPACE, FinishedJobs, SageMakerJobRunner
from core.training.spec import DEFAULT_METRIC_DEFINITIONS, TrainingJobSpec
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
GPU_IMAGE = f"763104351884.dkr.ecr.{REGION}.amazonaws.com/pytorch-training:2.9-gpu-py312"
DATA_URI = f"s3://{BUCKET}/{PREFIX}/datasets/digits"


@pytest.fixture
def source_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    (folder / "lib").mkdir(parents=True)
    (folder / "train.py").write_text("print('train')\n")
    (folder / "lib" / "helpers.py").write_text("X = 1\n")
    (folder / "requirements.txt").write_text("psutil\n")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"\0")
    (folder / ".env").write_text("SECRET=1\n")
    (folder / "link.py").symlink_to(folder / "lib" / "helpers.py")
    return folder


@pytest.fixture
def storage(aws: AwsSession) -> S3Storage:
    return S3Storage(aws.client("s3"), BUCKET, PREFIX)


@pytest.fixture
def runner(aws_settings: Settings, aws: AwsSession, storage: S3Storage) -> SageMakerJobRunner:
    return SageMakerJobRunner(aws_settings, aws, storage)


def _spec(source_dir: Path, name: str = "digits-1", **changes: Any) -> TrainingJobSpec:
    values: dict[str, Any] = {
        "name": name,
        "inputs": {"training": DATA_URI},
        "hyperparameters": {"epochs": 2, "lr": 0.01},
        "source_dir": source_dir,
        "instance_type": "ml.m5.xlarge",
    }
    values.update(changes)
    return TrainingJobSpec(**values)


def _capture_create_requests(session: AwsSession) -> list[dict[str, Any]]:
    requests: list[dict[str, Any]] = []
    session.client("sagemaker").meta.events.register(
        "provide-client-params.sagemaker.CreateTrainingJob", lambda params, **_: requests.append(dict(params))
    )
    return requests


# --- start ---------------------------------------------------------------------------------


def test_start_creates_the_training_job_sagemaker_would_run(
    runner: SageMakerJobRunner, aws: AwsSession, storage: S3Storage, source_dir: Path
) -> None:
    requests = _capture_create_requests(aws)
    spec = _spec(source_dir, use_spot=True, max_runtime_s=3600, max_wait_s=7200, volume_size_gb=50)
    job = runner.start(spec)

    assert job.name == "digits-1" and job.backend == "aws"
    debug_out_dir = f"s3://{BUCKET}/{PREFIX}/jobs/{{job_name}}/debug-output"  # the script fills in its name
    profile_out_dir = f"s3://{BUCKET}/{PREFIX}/jobs/{{job_name}}/profiler-output"
    assert dict(job.hyperparameters) == {"epochs": "2", "lr": "0.01", "debug-out-dir": debug_out_dir,
                                         "profile-out-dir": profile_out_dir}
    assert dict(job.inputs) == {"training": DATA_URI}
    assert job.instance_type == "ml.m5.xlarge"

    d = aws.client("sagemaker").describe_training_job(TrainingJobName="digits-1")
    assert d["AlgorithmSpecification"]["TrainingImage"] == CPU_IMAGE
    assert d["AlgorithmSpecification"]["TrainingInputMode"] == "File"
    assert d["RoleArn"] == ROLE_ARN
    code_uri = f"s3://{BUCKET}/{PREFIX}/jobs/digits-1/code/sourcedir.tar.gz"
    assert d["HyperParameters"] == {
        "debug-out-dir": debug_out_dir,
        "profile-out-dir": profile_out_dir,
        "epochs": "2",
        "lr": "0.01",
        "sagemaker_program": "train.py",
        "sagemaker_submit_directory": code_uri,
        "sagemaker_region": REGION,
        "sagemaker_container_log_level": "20",
    }
    assert d["InputDataConfig"] == [
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
    assert d["OutputDataConfig"]["S3OutputPath"] == f"s3://{BUCKET}/{PREFIX}/jobs"
    assert d["ResourceConfig"] == {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 50}
    assert d["EnableManagedSpotTraining"] is True
    assert d["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
    assert d["CheckpointConfig"] == {
        "S3Uri": f"s3://{BUCKET}/{PREFIX}/jobs/digits-1/checkpoints",
        "LocalPath": "/opt/ml/checkpoints",
    }
    # moto answers DescribeTrainingJob with canned metric definitions, so check the request itself
    (request,) = requests
    assert request["AlgorithmSpecification"]["MetricDefinitions"] == [
        {"Name": m.name, "Regex": m.regex} for m in DEFAULT_METRIC_DEFINITIONS
    ]

    # the code ships as sourcedir.tar.gz with the files at its root, without caches or dotfiles
    body = aws.client("s3").get_object(Bucket=BUCKET, Key=f"{PREFIX}/jobs/digits-1/code/sourcedir.tar.gz")["Body"]
    with tarfile.open(fileobj=io.BytesIO(body.read()), mode="r:gz") as tar:
        assert sorted(tar.getnames()) == ["lib/helpers.py", "link.py", "requirements.txt", "train.py"]
        assert tar.getmember("link.py").isfile()  # the linked file itself, not a dangling link
        member = tar.extractfile("train.py")
        assert member is not None and member.read() == b"print('train')\n"


def test_gpu_instances_get_the_gpu_image_and_local_means_the_default(
    runner: SageMakerJobRunner, aws: AwsSession, source_dir: Path
) -> None:
    runner.start(_spec(source_dir, name="gpu-job", instance_type="ml.g5.xlarge", instance_count=2))
    runner.start(_spec(source_dir, name="unchosen", instance_type="local"))
    client = aws.client("sagemaker")
    gpu = client.describe_training_job(TrainingJobName="gpu-job")
    assert gpu["AlgorithmSpecification"]["TrainingImage"] == GPU_IMAGE
    assert gpu["ResourceConfig"]["InstanceCount"] == 2
    assert gpu["EnableManagedSpotTraining"] is False
    assert "CheckpointConfig" not in gpu
    # torchrun on every instance, one process per GPU, as the SDK's torch_distributed asks the image
    assert gpu["HyperParameters"]["sagemaker_torch_distributed_enabled"] == "true"
    assert gpu["HyperParameters"]["sagemaker_instance_type"] == "ml.g5.xlarge"
    unchosen = client.describe_training_job(TrainingJobName="unchosen")
    assert unchosen["ResourceConfig"]["InstanceType"] == "ml.m5.xlarge"
    assert unchosen["AlgorithmSpecification"]["TrainingImage"] == CPU_IMAGE
    assert "sagemaker_torch_distributed_enabled" not in unchosen["HyperParameters"]  # once per CPU instance


def test_the_instance_list_is_the_regions_training_types_with_their_hardware(runner: SageMakerJobRunner) -> None:
    types = runner.instance_types()
    by_name = {t.name: t for t in types}
    assert set(by_name) <= set(training_type_names()) and len(types) > 50
    assert (by_name["ml.m5.xlarge"].vcpus, by_name["ml.m5.xlarge"].memory_gib, by_name["ml.m5.xlarge"].gpus) == (4, 16, 0)
    g5 = by_name["ml.g5.12xlarge"]
    assert (g5.gpus, g5.gpu_name, g5.vcpus) == (4, "A10G", 48)
    first_gpu = next(i for i, t in enumerate(types) if t.gpus)
    assert all(t.gpus for t in types[first_gpu:])  # CPU types first, then GPU types by their count


def test_a_type_the_region_does_not_offer_is_refused_before_anything_is_uploaded(
    aws_settings: Settings, aws: AwsSession, storage: S3Storage, source_dir: Path
) -> None:
    cape_town = AwsSession(replace(aws_settings, region="af-south-1"))  # moto's af-south-1 has no p4d or g5
    runner = SageMakerJobRunner(aws_settings, cape_town, storage)
    with pytest.raises(InvalidInputError, match=r"ml\.p4d\.24xlarge: af-south-1 does not offer it for training"):
        runner.start(_spec(source_dir, instance_type="ml.p4d.24xlarge"))
    with pytest.raises(InvalidInputError, match=r"ml\.m5\.huge: SageMaker has no training instance of that type"):
        runner.start(_spec(source_dir, instance_type="ml.m5.huge"))
    assert "ml.p4d.24xlarge" not in {t.name for t in runner.instance_types()}
    assert storage.list() == []


def test_when_ec2_refuses_to_say_the_types_are_listed_by_name_and_not_checked() -> None:
    class DeniedEc2:
        def _denied(self, *_: Any, **__: Any) -> Any:
            raise ClientError({"Error": {"Code": "UnauthorizedOperation", "Message": "not authorized"}},
                              "DescribeInstanceTypeOfferings")

        get_paginator = describe_instance_type_offerings = _denied

    types = training_instance_types(DeniedEc2())
    assert [t.name for t in types] == list(training_type_names())
    assert all(t.vcpus is None for t in types)
    assert is_offered(DeniedEc2(), "ml.g5.xlarge") is None


def test_explicit_image_and_checkpoint(
    aws_settings: Settings, aws: AwsSession, storage: S3Storage, source_dir: Path
) -> None:
    runner = SageMakerJobRunner(aws_settings, aws, storage, training_image="123.dkr.ecr.us-east-1.amazonaws.com/mine:1")
    runner.start(_spec(source_dir, checkpoint_uri=f"s3://{BUCKET}/ck/digits-1"))
    d = aws.client("sagemaker").describe_training_job(TrainingJobName="digits-1")
    assert d["AlgorithmSpecification"]["TrainingImage"] == "123.dkr.ecr.us-east-1.amazonaws.com/mine:1"
    assert d["CheckpointConfig"]["S3Uri"] == f"s3://{BUCKET}/ck/digits-1"


def test_local_inputs_are_refused_before_anything_is_uploaded(
    runner: SageMakerJobRunner, storage: S3Storage, aws: AwsSession, source_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(InvalidInputError, match="upload the dataset to S3 first"):
        runner.start(_spec(source_dir, inputs={"training": (tmp_path / "data").as_uri()}))
    with pytest.raises(InvalidInputError, match="s3://"):
        runner.start(_spec(source_dir, checkpoint_uri=(tmp_path / "ck").as_uri()))
    with pytest.raises(InvalidInputError, match="SageMaker type"):
        runner.start(_spec(source_dir, instance_type="m5.xlarge"))
    with pytest.raises(InvalidInputError, match="reserved"):
        runner.start(_spec(source_dir, hyperparameters={"sagemaker_program": "evil.py"}))
    assert storage.list() == []
    assert aws.client("sagemaker").list_training_jobs()["TrainingJobSummaries"] == []


def test_a_missing_role_is_a_config_error(
    aws_settings: Settings, aws: AwsSession, storage: S3Storage, source_dir: Path
) -> None:
    runner = SageMakerJobRunner(replace(aws_settings, role_arn=None), aws, storage)
    with pytest.raises(ConfigError, match="SMC_ROLE_ARN"):
        runner.start(_spec(source_dir))


def test_a_second_job_of_the_same_name_is_refused(runner: SageMakerJobRunner, source_dir: Path) -> None:
    runner.start(_spec(source_dir))
    with pytest.raises(AlreadyExistsError, match="digits-1"):
        runner.start(_spec(source_dir))


def test_a_refused_create_removes_the_uploaded_code(
    runner: SageMakerJobRunner, aws: AwsSession, storage: S3Storage, source_dir: Path
) -> None:
    with Stubber(aws.client("sagemaker")) as stub:
        stub.add_client_error(
            "describe_training_job",
            "ValidationException",
            "Requested resource not found.",
            400,
            expected_params={"TrainingJobName": "digits-1"},
        )
        stub.add_client_error("create_training_job", "ResourceLimitExceeded", "account limit for ml.m5.xlarge", 400)
        with pytest.raises(BackendError, match=r"over this account's quota \(ResourceLimitExceeded: account limit for "
                                               r"ml\.m5\.xlarge\)\. "
                                               "Ask for more in the Service Quotas console"):
            runner.start(_spec(source_dir))
        stub.assert_no_pending_responses()
    assert storage.list() == []


# --- describe, list ------------------------------------------------------------------------


def _description(status: str, **extra: Any) -> dict[str, Any]:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    return {
        "TrainingJobName": "digits-1",
        "TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/digits-1",
        "ModelArtifacts": {"S3ModelArtifacts": f"s3://{BUCKET}/{PREFIX}/jobs/digits-1/output/model.tar.gz"},
        "TrainingJobStatus": status,
        "SecondaryStatus": "Training" if status == "InProgress" else status,
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "CreationTime": now,
        "TrainingStartTime": now + timedelta(seconds=60),
        "HyperParameters": {"epochs": "2", "sagemaker_program": "train.py", "_tuning_objective_metric": "x"},
        "ResourceConfig": {"InstanceType": "ml.g5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        **extra,
    }


def test_describe_maps_a_failed_job(runner: SageMakerJobRunner, aws: AwsSession) -> None:
    created = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    failed = _description(
        "Failed",
        FailureReason="AlgorithmError: ExecuteUserScriptError",
        TrainingEndTime=created + timedelta(seconds=300),
        FinalMetricDataList=[{"MetricName": "train:loss", "Value": 0.5, "Timestamp": created}],
    )
    with Stubber(aws.client("sagemaker")) as stub:
        stub.add_response("describe_training_job", failed, {"TrainingJobName": "digits-1"})
        job = runner.describe("digits-1")
        stub.assert_no_pending_responses()
    assert job.status is JobStatus.FAILED
    assert job.failure_reason == "AlgorithmError: ExecuteUserScriptError"
    assert job.model_uri is None  # a failed job's artifacts are not a model
    assert dict(job.hyperparameters) == {"epochs": "2"}
    assert dict(job.final_metrics) == {"train:loss": 0.5}
    assert job.created_at == created.timestamp()
    assert job.duration_s == 240
    assert job.instance_type == "ml.g5.xlarge"


def test_describe_and_list_through_moto(runner: SageMakerJobRunner, source_dir: Path) -> None:
    for i in range(3):
        runner.start(_spec(source_dir, name=f"job-{i}"))
    job = runner.describe("job-0")
    assert job.status is JobStatus.COMPLETED  # moto completes jobs at once
    assert job.model_uri == f"s3://{BUCKET}/{PREFIX}/jobs/job-0/output/model.tar.gz"
    listed = runner.list_jobs()
    assert [j.name for j in listed] == ["job-2", "job-1", "job-0"]
    assert all(j.backend == "aws" and j.status is JobStatus.COMPLETED for j in listed)
    assert len(runner.list_jobs(limit=2)) == 2  # moto ignores SortOrder: which two is checked below
    assert runner.list_jobs(limit=0) == []


def test_list_asks_for_the_newest_jobs_page_by_page(runner: SageMakerJobRunner, aws: AwsSession) -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)

    def summary(i: int) -> dict[str, Any]:
        return {
            "TrainingJobName": f"job-{i}",
            "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/job-{i}",
            "CreationTime": base + timedelta(minutes=i),
            "TrainingJobStatus": "InProgress" if i == 9 else "Completed",
        }

    asked = {"SortBy": "CreationTime", "SortOrder": "Descending", "MaxResults": 3}
    with Stubber(aws.client("sagemaker")) as stub:
        first_page = {"TrainingJobSummaries": [summary(9), summary(8)], "NextToken": "t"}
        stub.add_response("list_training_jobs", first_page, asked)
        stub.add_response(
            "list_training_jobs", {"TrainingJobSummaries": [summary(7), summary(6)]}, {**asked, "NextToken": "t"}
        )
        for i in (9, 8, 7):  # the paginator stops at MaxItems: job-6 is neither listed nor described
            described = _description(summary(i)["TrainingJobStatus"], TrainingJobName=f"job-{i}",
                                     CreationTime=base + timedelta(minutes=i))
            stub.add_response("describe_training_job", described, {"TrainingJobName": f"job-{i}"})
        jobs = runner.list_jobs(limit=3)
        stub.assert_no_pending_responses()
    assert [(j.name, j.status) for j in jobs] == [
        ("job-9", JobStatus.IN_PROGRESS),
        ("job-8", JobStatus.COMPLETED),
        ("job-7", JobStatus.COMPLETED),
    ]
    assert jobs[0].created_at == (base + timedelta(minutes=9)).timestamp()


def _count_describes(session: AwsSession) -> list[str]:
    """The names DescribeTrainingJob is asked for from now on."""
    described: list[str] = []
    session.client("sagemaker").meta.events.register(
        "provide-client-params.sagemaker.DescribeTrainingJob",
        lambda params, **_: described.append(params["TrainingJobName"]),
    )
    return described


def test_a_listed_job_carries_what_a_described_one_does(
    runner: SageMakerJobRunner, aws: AwsSession, storage: S3Storage, source_dir: Path
) -> None:
    runner.start(_spec(source_dir, name="job-0", hyperparameters={"epochs": 3}))
    runner.start(_spec(source_dir, name="job-1", hyperparameters={"lr": 0.1}))
    fresh = SageMakerJobRunner(runner._settings, aws, storage)  # another process: it has described nothing
    described = _count_describes(aws)

    listed = fresh.list_jobs()

    assert sorted(described) == ["job-0", "job-1"]  # ListTrainingJobs summaries lack the rest
    assert listed == [fresh.describe("job-1"), fresh.describe("job-0")]
    job = listed[1]
    assert job.status is JobStatus.COMPLETED  # moto completes jobs at once
    assert job.model_uri == f"s3://{BUCKET}/{PREFIX}/jobs/job-0/output/model.tar.gz"
    assert job.hyperparameters["epochs"] == "3" and "debug-out-dir" in job.hyperparameters
    assert dict(job.inputs) == {"training": DATA_URI}
    assert dict(job.final_metrics) == {"train:progress": 100.0}  # moto's canned FinalMetricDataList
    assert job.instance_type == "ml.m5.xlarge" and job.created_at > 0


def test_a_finished_job_is_described_once_then_listed_from_memory(
    runner: SageMakerJobRunner, aws: AwsSession, storage: S3Storage, source_dir: Path
) -> None:
    runner.start(_spec(source_dir, name="job-0"))
    described = _count_describes(aws)
    fresh = SageMakerJobRunner(runner._settings, aws, storage)

    first = fresh.list_jobs()
    assert described == ["job-0"]
    assert fresh.list_jobs() == first and fresh.list_jobs(limit=1) == first
    assert described == ["job-0"]  # completed: nothing of it can change
    assert runner.list_jobs() == first and described == ["job-0"]  # start() described it already
    fresh.describe("job-0")
    assert described == ["job-0", "job-0"]  # describe() itself always asks SageMaker


def _listing(*jobs: tuple[str, str, datetime]) -> dict[str, Any]:
    return {
        "TrainingJobSummaries": [
            {
                "TrainingJobName": name,
                "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{name}",
                "CreationTime": created,
                "TrainingJobStatus": status,
            }
            for name, status, created in jobs
        ]
    }


def test_a_running_job_is_described_at_every_listing_until_it_finishes(
    runner: SageMakerJobRunner, aws: AwsSession
) -> None:
    t0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    t1, reused = t0 + timedelta(minutes=1), t0 + timedelta(days=1)

    def described(name: str, status: str, created: datetime) -> dict[str, Any]:
        return _description(status, TrainingJobName=name, CreationTime=created, TrainingStartTime=created)

    def expect_describe(stub: Stubber, name: str, status: str, created: datetime) -> None:
        stub.add_response("describe_training_job", described(name, status, created), {"TrainingJobName": name})

    with Stubber(aws.client("sagemaker")) as stub:  # an unexpected DescribeTrainingJob fails the test
        stub.add_response("list_training_jobs", _listing(("run", "InProgress", t1), ("done", "Completed", t0)))
        expect_describe(stub, "run", "InProgress", t1)
        expect_describe(stub, "done", "Completed", t0)
        running = runner.list_jobs()
        stub.add_response("list_training_jobs", _listing(("run", "InProgress", t1), ("done", "Completed", t0)))
        expect_describe(stub, "run", "InProgress", t1)
        assert runner.list_jobs() == running
        stub.add_response("list_training_jobs", _listing(("run", "Completed", t1), ("done", "Completed", t0)))
        expect_describe(stub, "run", "Completed", t1)
        finished = runner.list_jobs()
        stub.add_response("list_training_jobs", _listing(("run", "Completed", t1), ("done", "Completed", t0)))
        assert runner.list_jobs() == finished  # no describe at all
        # DeleteTrainingJob frees a name: the new job of that name is another job
        stub.add_response("list_training_jobs", _listing(("done", "InProgress", reused), ("run", "Completed", t1)))
        expect_describe(stub, "done", "InProgress", reused)
        renamed = runner.list_jobs()
        stub.assert_no_pending_responses()

    model = f"s3://{BUCKET}/{PREFIX}/jobs/digits-1/output/model.tar.gz"
    assert [(j.name, j.status, j.model_uri) for j in running] == [
        ("run", JobStatus.IN_PROGRESS, None),
        ("done", JobStatus.COMPLETED, model),
    ]
    assert [(j.name, j.status, j.model_uri) for j in finished] == [
        ("run", JobStatus.COMPLETED, model),
        ("done", JobStatus.COMPLETED, model),
    ]
    assert dict(finished[0].hyperparameters) == {"epochs": "2"} and finished[0].started_at == t1.timestamp()
    assert [(j.name, j.status, j.created_at) for j in renamed] == [
        ("done", JobStatus.IN_PROGRESS, reused.timestamp()),
        ("run", JobStatus.COMPLETED, t1.timestamp()),
    ]


def test_a_job_deleted_between_listing_and_describing_is_left_out(runner: SageMakerJobRunner, aws: AwsSession) -> None:
    created = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with Stubber(aws.client("sagemaker")) as stub:
        stub.add_response("list_training_jobs", _listing(("gone", "Completed", created), ("kept", "Failed", created)))
        stub.add_client_error("describe_training_job", "ValidationException", "Requested resource not found.", 400)
        stub.add_response("describe_training_job", _description("Failed", TrainingJobName="kept", CreationTime=created))
        jobs = runner.list_jobs()
        stub.assert_no_pending_responses()
    assert [(j.name, j.status) for j in jobs] == [("kept", JobStatus.FAILED)]


def test_finished_jobs_keeps_the_most_recently_used_finished_ones() -> None:
    def job(name: str, status: JobStatus = JobStatus.COMPLETED, created_at: float = 1.0) -> TrainingJob:
        return TrainingJob(name=name, status=status, backend="aws", created_at=created_at)

    kept = FinishedJobs(max_entries=2)
    kept.add(job("running", JobStatus.IN_PROGRESS))
    kept.add(job("stopping", JobStatus.STOPPING))
    assert kept.get("running", 1.0) is None and kept.get("stopping", 1.0) is None  # they would go stale
    a, b, c = job("a"), job("b", JobStatus.FAILED), job("c", JobStatus.STOPPED)
    kept.add(a)
    kept.add(b)
    assert kept.get("a", 1.0) is a  # a is now the most recently used
    kept.add(c)
    assert (kept.get("a", 1.0), kept.get("b", 1.0), kept.get("c", 1.0)) == (a, None, c)
    assert kept.get("a", 2.0) is None  # another job of the same name


def test_unknown_jobs_are_not_found(runner: SageMakerJobRunner) -> None:
    for call in (runner.describe, runner.stop, runner.metrics, runner.log_tail):
        with pytest.raises(NotFoundError, match="training job nope"):
            call("nope")


# --- stop (moto has no StopTrainingJob) ----------------------------------------------------


def test_stop_asks_sagemaker_and_returns_the_stopping_job(runner: SageMakerJobRunner, aws: AwsSession) -> None:
    with Stubber(aws.client("sagemaker")) as stub:
        stub.add_response("describe_training_job", _description("InProgress"), {"TrainingJobName": "digits-1"})
        stub.add_response("stop_training_job", {}, {"TrainingJobName": "digits-1"})
        stub.add_response("describe_training_job", _description("Stopping"), {"TrainingJobName": "digits-1"})
        job = runner.stop("digits-1")
        stub.assert_no_pending_responses()
    assert job.status is JobStatus.STOPPING


def test_stop_of_a_job_that_just_finished_returns_it(runner: SageMakerJobRunner, aws: AwsSession) -> None:
    with Stubber(aws.client("sagemaker")) as stub:
        stub.add_response("describe_training_job", _description("InProgress"), {"TrainingJobName": "digits-1"})
        stub.add_client_error(
            "stop_training_job", "ValidationException", "The job is in status Completed and cannot be stopped.", 400
        )
        stub.add_response("describe_training_job", _description("Completed"), {"TrainingJobName": "digits-1"})
        job = runner.stop("digits-1")
        stub.assert_no_pending_responses()
    assert job.status is JobStatus.COMPLETED


def test_a_refused_stop_of_a_running_job_is_an_error(runner: SageMakerJobRunner, aws: AwsSession) -> None:
    with Stubber(aws.client("sagemaker")) as stub:
        stub.add_response("describe_training_job", _description("InProgress"), {"TrainingJobName": "digits-1"})
        stub.add_client_error("stop_training_job", "ValidationException", "Stop is not allowed now.", 400)
        stub.add_response("describe_training_job", _description("InProgress"), {"TrainingJobName": "digits-1"})
        with pytest.raises(InvalidInputError, match="stopping training job digits-1: Stop is not allowed now"):
            runner.stop("digits-1")
        stub.assert_no_pending_responses()


def test_stop_of_a_finished_job_sends_no_stop(runner: SageMakerJobRunner, source_dir: Path) -> None:
    runner.start(_spec(source_dir))  # completed at once under moto, which would reject a stop
    assert runner.stop("digits-1").status is JobStatus.COMPLETED


# --- metrics and logs ----------------------------------------------------------------------


def test_metrics_come_from_cloudwatch_with_steps(runner: SageMakerJobRunner, aws: AwsSession, source_dir: Path) -> None:
    runner.start(_spec(source_dir))
    created = aws.client("sagemaker").describe_training_job(TrainingJobName="digits-1")["CreationTime"]
    cloudwatch = aws.client("cloudwatch")

    def put(name: str, value: float, host: str = "digits-1/algo-1", offset_s: int = 0) -> None:
        cloudwatch.put_metric_data(
            Namespace=METRIC_NAMESPACE,
            MetricData=[
                {
                    "MetricName": name,
                    "Dimensions": [{"Name": "Host", "Value": host}],
                    "Value": value,
                    "Timestamp": created + timedelta(seconds=offset_s),
                }
            ],
        )

    # moto finishes the job at its creation time: one minute-long period each side of it
    put("train:loss", 1.0, offset_s=-30)
    put("validation:accuracy", 0.5, offset_s=-30)
    put("train:loss", 0.5, offset_s=30)
    put("validation:accuracy", 0.8, offset_s=30)
    put("train:loss", 9.0, host="other/algo-1")
    points = runner.metrics("digits-1")
    by_name: dict[str, list[tuple[int, float]]] = {}
    for p in points:
        by_name.setdefault(p.name, []).append((p.step, p.value))
    assert by_name == {"train:loss": [(0, 1.0), (1, 0.5)], "validation:accuracy": [(0, 0.5), (1, 0.8)]}
    assert [p.timestamp for p in points] == sorted(p.timestamp for p in points)


def test_metrics_fall_back_to_the_final_values(runner: SageMakerJobRunner, source_dir: Path) -> None:
    runner.start(_spec(source_dir))
    points = runner.metrics("digits-1")
    # moto's canned FinalMetricDataList
    assert [(p.name, p.value, p.step) for p in points] == [("train:progress", 100.0, 0)]


def _put_log(logs: Any, stream: str, lines: list[str], start_ms: int) -> None:
    logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
    logs.put_log_events(
        logGroupName=LOG_GROUP,
        logStreamName=stream,
        logEvents=[{"timestamp": start_ms + i * 10, "message": line} for i, line in enumerate(lines)],
    )


def test_log_tail_reads_the_job_streams_only(runner: SageMakerJobRunner, aws: AwsSession, source_dir: Path) -> None:
    runner.start(_spec(source_dir))
    runner.start(_spec(source_dir, name="digits-10"))
    assert runner.log_tail("digits-1") == []  # no log group yet
    logs = aws.client("logs")
    logs.create_log_group(logGroupName=LOG_GROUP)
    assert runner.log_tail("digits-1") == []  # no stream yet
    now_ms = int(time.time() * 1000)
    _put_log(logs, "digits-1/algo-1-1700000000", [f"epoch={i}\n" for i in range(1, 6)], now_ms)
    _put_log(logs, "digits-10/algo-1-1700000000", ["another job"], now_ms)
    assert runner.log_tail("digits-1") == [f"epoch={i}" for i in range(1, 6)]
    assert runner.log_tail("digits-1", max_lines=2) == ["epoch=4", "epoch=5"]
    assert runner.log_tail("digits-1", max_lines=0) == []


def test_log_tail_interleaves_hosts(runner: SageMakerJobRunner, aws: AwsSession, source_dir: Path) -> None:
    runner.start(_spec(source_dir, instance_count=2))
    logs = aws.client("logs")
    logs.create_log_group(logGroupName=LOG_GROUP)
    now_ms = int(time.time() * 1000)
    _put_log(logs, "digits-1/algo-1-1700000000", ["a1", "a2"], now_ms)
    _put_log(logs, "digits-1/algo-2-1700000000", ["b1", "b2"], now_ms + 5)
    assert runner.log_tail("digits-1", max_lines=3) == [
        "[algo-2-1700000000] b1",
        "[algo-1-1700000000] a2",
        "[algo-2-1700000000] b2",
    ]
