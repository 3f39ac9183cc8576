"""The Training form's compute fields on both backends: the backend's instance types, and what a job
started from them carries (SageMaker's request on moto) or why it is refused, in words."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.aws import AwsSession
from core.backend import Backend
from core.entities import DatasetRecord
from tests.core.aws_faults import Fault, faults_fixture  # noqa: F401  (fixtures register on import)
from tests.core.aws_fixtures import (  # noqa: F401  (fixtures register on import)
    BUCKET,
    PREFIX,
    aws_credentials_fixture,
    aws_fixture,
    aws_settings_fixture,
    no_network_fixture,
)
from tests.pages.conftest import open_page
from tests.pages.test_aws_faults_pages import _shows_only_words, aws_backend  # noqa: F401  (a fixture)
from tests.pages.test_training_page import add_dataset


def _set_compute(at: AppTest, instance_type: str, count: int, volume: int, max_run_min: int,
                 max_wait_min: int | None = None, *, form: str = "job") -> None:
    """Fills the compute fields of the Training form (``form="tune"``: the Tuning form's)."""
    at.selectbox(key=f"{form}_instance_type").select(instance_type)
    at.number_input(key=f"{form}_instance_count").set_value(count)
    at.number_input(key=f"{form}_volume").set_value(volume)
    at.number_input(key=f"{form}_max_run").set_value(max_run_min)
    if max_wait_min is not None:
        at.checkbox(key=f"{form}_spot").check()
        at.number_input(key=f"{form}_max_wait").set_value(max_wait_min)


def test_the_local_form_offers_this_machine_and_refuses_more_instances_than_cpus(
        local_backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no nvidia-smi: this machine has no GPU
    add_dataset(local_backend, tmp_path)
    at = open_page("training")
    (local,) = at.selectbox(key="job_instance_type").options  # labels: the name, then what it has
    assert local.startswith("local · ") and "GPU" not in local
    too_many = (os.cpu_count() or 1) + 1
    _set_compute(at, "local", too_many, 30, 60)
    at.button[0].click().run()
    assert not at.exception
    assert any(f"instance count {too_many}: locally each instance is a training process" in e.value
               for e in at.error)
    assert local_backend.runner.list_jobs() == []


@pytest.fixture
def dataset_in_s3(aws_backend: Backend) -> None:
    aws_backend.store.put_dataset(DatasetRecord("digits", f"s3://{BUCKET}/{PREFIX}/datasets/digits", "demo",
                                                time.time(), {"total_images": 3, "classes": ["a"]}))


def test_a_sagemaker_job_carries_the_forms_compute(aws_backend: Backend, aws: AwsSession, dataset_in_s3: None) -> None:
    at = open_page("training")
    types = at.selectbox(key="job_instance_type")
    assert types.value == "ml.m5.xlarge"
    assert "ml.g5.12xlarge · 48 vCPU, 192 GiB · 4 × A10G, 22.4 GiB each" in types.options
    at.text_input(key="job_name").input("gpu-job")
    _set_compute(at, "ml.g5.12xlarge", 2, 100, 120, max_wait_min=240)
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert any("Started gpu-job" in s.value for s in at.success), [e.value for e in at.error]
    d = aws.client("sagemaker").describe_training_job(TrainingJobName="gpu-job")
    assert d["ResourceConfig"] == {"InstanceType": "ml.g5.12xlarge", "InstanceCount": 2, "VolumeSizeInGB": 100}
    assert d["EnableManagedSpotTraining"] is True
    assert d["StoppingCondition"] == {"MaxRuntimeInSeconds": 7200, "MaxWaitTimeInSeconds": 14400}
    assert d["CheckpointConfig"]["S3Uri"] == f"s3://{BUCKET}/{PREFIX}/jobs/gpu-job/checkpoints"
    # batch size left to the type: 128 per 22 GiB A10G × 4 GPUs × 2 instances; 48 vCPUs / 4 processes - 1
    assert (d["HyperParameters"]["batch-size"], d["HyperParameters"]["num-workers"]) == ("1024", "8")


def test_spot_that_waits_less_than_it_runs_is_refused(aws_backend: Backend, aws: AwsSession,
                                                      dataset_in_s3: None) -> None:
    at = open_page("training")
    _set_compute(at, "ml.g5.xlarge", 1, 30, 120, max_wait_min=60)
    at.button[0].click().run()
    _shows_only_words(at, "a spot job's maximum wait (3600 s) includes its run time, so it cannot be shorter "
                          "than the maximum run time (7200 s)")
    assert aws.client("sagemaker").list_training_jobs()["TrainingJobSummaries"] == []


def test_more_instances_than_the_quota_shows_awss_words(aws_backend: Backend, aws: AwsSession, dataset_in_s3: None,
                                                       faults: dict[str, list[Fault]]) -> None:
    quota = ("The account-level service limit 'ml.p4d.24xlarge for training job usage' is 0 Instances, with "
             "current utilization of 0 Instances and a request delta of 2 Instances. Please use AWS Service Quotas "
             "to request an increase for this quota.")
    faults["sagemaker"].append(Fault("CreateTrainingJob", "ResourceLimitExceeded", quota))
    at = open_page("training")
    at.text_input(key="job_name").input("big-job")
    _set_compute(at, "ml.p4d.24xlarge", 2, 30, 60)
    at.button[0].click().run()
    _shows_only_words(at, f"creating training job big-job: over this account's quota (ResourceLimitExceeded: {quota}). "
                          "Ask for more in the Service Quotas console (Amazon SageMaker), or choose fewer or other "
                          "instances")
    assert aws.client("sagemaker").list_training_jobs()["TrainingJobSummaries"] == []


def test_a_sagemaker_tuning_jobs_trials_carry_the_forms_compute(aws_backend: Backend, aws: AwsSession,
                                                                dataset_in_s3: None) -> None:
    at = open_page("tuning")
    assert at.selectbox(key="tune_instance_type").value == "ml.m5.xlarge"
    at.text_input(key="tune_name").input("gpu-hpo")
    _set_compute(at, "ml.g5.xlarge", 2, 30, 60, max_wait_min=120, form="tune")
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert any("Started gpu-hpo" in s.value for s in at.success), [e.value for e in at.error]
    definition = aws.client("sagemaker").describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="gpu-hpo")["TrainingJobDefinition"]
    assert definition["ResourceConfig"] == {"InstanceType": "ml.g5.xlarge", "InstanceCount": 2, "VolumeSizeInGB": 30}
    assert definition["EnableManagedSpotTraining"] is True
    assert definition["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
    assert definition["CheckpointConfig"]["S3Uri"] == f"s3://{BUCKET}/{PREFIX}/jobs/gpu-hpo/checkpoints"


def test_the_local_tuning_form_refuses_managed_spot_in_words(local_backend: Backend, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    add_dataset(local_backend, tmp_path)
    at = open_page("tuning")
    _set_compute(at, "local", 1, 30, 60, max_wait_min=120, form="tune")
    at.button[0].click().run()
    assert not at.exception
    assert any("managed spot training: SageMaker's, on the aws backend" in e.value for e in at.error)
    assert local_backend.tuner.list_tuning_jobs() == []
