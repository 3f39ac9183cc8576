"""Issue 14: the newcomer's journey on the aws backend, in a real browser, against AWS on loopback.

AWS here is moto's server on 127.0.0.1, with the loopback stand-ins of ``tests/standins`` in
front of it for what moto cannot do (a SageMaker job's lifecycle, stop calls). The app runs
unchanged on the aws backend with ``AWS_ENDPOINT_URL`` pointing at them, as it would point at
AWS: every object, job and resource the journey makes is read back from there.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import screenshot, serve_app
from tests.e2e.test_data_and_training_browser import ingest_demo_by_drop, upload_checked_dataset
from tests.e2e.test_journey_browser import heading, sidebar_next
from tests.standins.sagemaker import SageMakerStandIn

pytestmark = [pytest.mark.browser]

REGION = "us-east-1"
# moto keeps one state per process, shared with the contract suites' server: names of this test's own
BUCKET = f"smc-journey-{uuid.uuid4().hex[:8]}"
PREFIX = "sm-console"
ACCESS_KEY = "AKIAFAKEKEYFORTESTS12"
SECRET = "fake-secret-for-tests-only"
SAGEMAKER_TRUST_POLICY = (
    '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", '
    '"Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}]}'
)


@dataclass(frozen=True)
class AwsApp:
    """The app on the aws backend, and a way to look at what it made in AWS."""

    url: str
    moto_url: str

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(service, region_name=REGION, endpoint_url=self.moto_url, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET)


@pytest.fixture
def aws_app(tmp_path: Path) -> Iterator[AwsApp]:
    """moto's server and the stand-ins on loopback, a bucket and an execution role in them, and the
    app on the aws backend pointed at them; all stopped after the test."""
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    moto_url = f"http://{host}:{port}"
    try:
        with SageMakerStandIn(moto_url) as sagemaker:
            app = AwsApp(url="", moto_url=moto_url)
            app.client("s3").create_bucket(Bucket=BUCKET)
            role = app.client("iam").create_role(RoleName=f"smc-training-{uuid.uuid4().hex[:8]}",
                                                 AssumeRolePolicyDocument=SAGEMAKER_TRUST_POLICY)["Role"]["Arn"]
            (tmp_path / "aws-config").write_text("")
            environment = {
                "SMC_BACKEND": "aws", "SMC_REGION": REGION, "SMC_BUCKET": BUCKET, "SMC_PREFIX": PREFIX,
                "SMC_ROLE_ARN": role, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET,
                "AWS_DEFAULT_REGION": REGION, "AWS_ENDPOINT_URL": moto_url, "AWS_ENDPOINT_URL_SAGEMAKER": sagemaker.url,
                "AWS_CONFIG_FILE": str(tmp_path / "aws-config"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-config"),
                "AWS_EC2_METADATA_DISABLED": "true",
            }
            with serve_app(tmp_path, **environment) as url:
                yield AwsApp(url=url, moto_url=moto_url)
            assert not sagemaker.errors, f"the SageMaker stand-in failed: {sagemaker.errors}"
    finally:
        moto.stop()


def no_error_shown(page: Page) -> None:
    """No exception box, no error message, no traceback anywhere on the page."""
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)
    expect(page.locator('[data-testid="stAlertContentError"]')).to_have_count(0)


@pytest.mark.timeout(900)
def test_the_journey_on_the_aws_backend(page: Page, aws_app: AwsApp, tmp_path: Path) -> None:
    page.goto(aws_app.url)
    heading(page, "Data")
    expect(page.locator('[data-testid="stSidebar"]').get_by_text("AWS backend: account")).to_be_visible(
        timeout=60_000)
    sidebar_next(page, "Bring a dataset")

    ingest_demo_by_drop(page, aws_app.url, tmp_path)
    target = f"s3://{BUCKET}/{PREFIX}/datasets/digits-demo"
    upload_checked_dataset(page)
    expect(page.get_by_text(f"Dataset digits-demo is ready at {target}")).to_be_visible(timeout=120_000)
    no_error_shown(page)
    listed = aws_app.client("s3").get_paginator("list_objects_v2").paginate(
        Bucket=BUCKET, Prefix=f"{PREFIX}/datasets/digits-demo/")
    keys = [o["Key"] for listing in listed for o in listing.get("Contents", [])]
    images = [k for k in keys if k.endswith(".jpg")]
    assert len(images) == 1797, len(images)
    assert {re.match(rf"{PREFIX}/datasets/digits-demo/(\w+)/", k).group(1) for k in images} == {  # type: ignore[union-attr]
        "train", "valid", "test"}
    screenshot(page, "aws-journey-02-data")
