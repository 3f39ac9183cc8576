"""AWS faults as the user meets them on the pages of the aws backend (moto, one call made to fail): the
page shows what is wrong and how to fix it in a red box, with no exception element and no traceback,
and nothing half-created is left in S3 or SageMaker."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from core.aws import AwsSession
from core.backend import Backend, get_backend
from core.config import load_settings
from core.entities import DatasetRecord
from core.training.spec import TrainingJobSpec
from core.types import BackendKind
from tests.core.aws_faults import Fault, faults_fixture  # noqa: F401  (fixtures register on import)
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
from tests.pages.conftest import open_page

DATA_URI = f"s3://{BUCKET}/{PREFIX}/datasets/digits"
IMAGE = f"123456789012.dkr.ecr.{REGION}.amazonaws.com/sm-console-serving:1"


@pytest.fixture
def aws_backend(aws: AwsSession, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Backend:
    """The aws backend the pages build from the environment (inside moto, with the test bucket)."""
    for name, value in {"SMC_BACKEND": "aws", "SMC_REGION": REGION, "SMC_BUCKET": BUCKET, "SMC_PREFIX": PREFIX,
                        "SMC_ROLE_ARN": ROLE_ARN, "SMC_SERVING_IMAGE_URI": IMAGE,
                        "SMC_WORKSPACE": str(tmp_path / "ws")}.items():
        monkeypatch.setenv(name, value)
    backend = get_backend(load_settings())
    assert backend.settings.backend is BackendKind.AWS
    return backend


def _shows_only_words(at: AppTest, expected: str) -> None:
    """The page ran to its end and shows expected in an error box, without an exception or a traceback."""
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    assert any(expected in e for e in errors), errors
    texts = errors + [m.value for m in at.markdown] + [c.value for c in at.code]
    assert not any("Traceback" in t or "botocore" in t for t in texts)


def _objects(aws: AwsSession, prefix: str) -> list[str]:
    return [o["Key"] for o in aws.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]


def test_training_page_when_create_training_job_is_denied(aws_backend: Backend, aws: AwsSession,
                                                          faults: dict[str, list[Fault]]) -> None:
    aws_backend.store.put_dataset(DatasetRecord("digits", DATA_URI, "demo", time.time(),
                                                {"total_images": 3, "classes": ["a"]}))
    denied = Fault("CreateTrainingJob", "AccessDeniedException",
                   "User: arn:aws:sts::123456789012:assumed-role/dev/alice is not authorized to perform: "
                   "sagemaker:CreateTrainingJob on resource: arn:aws:sagemaker:us-east-1:123456789012:training-job/"
                   "denied-job because no identity-based policy allows the sagemaker:CreateTrainingJob action")
    faults["sagemaker"].append(denied)
    at = open_page("training")
    at.text_input(key="job_name").input("denied-job")
    at.button[0].click().run()  # the form's submit button
    assert denied.failed == ["CreateTrainingJob"]
    _shows_only_words(at, "access denied: creating training job denied-job: these credentials may not do "
                          "sagemaker:CreateTrainingJob on arn:aws:sagemaker:us-east-1:123456789012:training-job/"
                          "denied-job. Ask for this permission; the README's IAM table lists what each page needs.")
    assert any("No training job yet" in i.value for i in at.info)
    assert _objects(aws, f"{PREFIX}/jobs/") == []  # the uploaded sourcedir.tar.gz was removed again
    assert aws.client("sagemaker").list_training_jobs()["TrainingJobSummaries"] == []


def test_data_page_when_the_upload_is_throttled(aws_backend: Backend, aws: AwsSession, tmp_path: Path,
                                                faults: dict[str, list[Fault]]) -> None:
    folder = tmp_path / "shapes"
    for split in ("train", "valid", "test"):
        for cls in ("a", "b"):
            (folder / split / cls).mkdir(parents=True)
            Image.new("RGB", (8, 8), (200 if cls == "a" else 0, 0, 0)).save(folder / split / cls / "1.jpg")
    slow_down = Fault("PutObject", "SlowDown", "Please reduce your request rate.", status=503, after=2)
    faults["s3"].append(slow_down)
    at = open_page("data")
    at.radio(key="data_source").set_value("Folder on this machine").run()
    at.text_input(key="data_folder").input(str(folder)).run()
    at.button(key="data_check").click().run()
    at.button(key="data_upload").click().run()
    assert slow_down.failed == ["PutObject"]
    _shows_only_words(at, "AWS is throttling requests (SlowDown) and still refused after retrying. Wait a minute "
                          "and try again")
    assert _objects(aws, f"{PREFIX}/datasets/") == []
    assert aws_backend.store.list_datasets() == []
    assert any("No dataset yet" in i.value for i in at.info)


def test_deploy_page_when_the_endpoint_name_is_taken(aws_backend: Backend, aws: AwsSession, tmp_path: Path,
                                                     faults: dict[str, list[Fault]]) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "train.py").write_text("print('train')\n")
    aws_backend.runner.start(TrainingJobSpec(name="digits-1", inputs={"training": DATA_URI}, source_dir=source,
                                             instance_type="ml.m5.xlarge"))  # moto completes it at once
    taken = Fault("CreateEndpoint", "ValidationException", 'Cannot create already existing endpoint '
                  '"arn:aws:sagemaker:us-east-1:123456789012:endpoint/digits-ep".')
    faults["sagemaker"].append(taken)
    at = open_page("deploy")
    assert not at.exception, at.exception
    assert at.selectbox(key="deploy_job").value == "digits-1"
    at.text_input(key="deploy_name").input("digits-ep")
    at.button(key="deploy_button").click().run()
    assert taken.failed == ["CreateEndpoint"]
    _shows_only_words(at, "SageMaker endpoint digits-ep exists already: deploy under another name, or delete it in "
                          "the SageMaker console")
    sagemaker = aws.client("sagemaker")
    assert sagemaker.list_models()["Models"] == []
    assert sagemaker.list_endpoint_configs()["EndpointConfigs"] == []
    assert any("No endpoint yet" in i.value for i in at.info)
