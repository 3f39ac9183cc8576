"""Issue 14: the newcomer's journey on the aws backend, in a real browser, against AWS on loopback.

AWS here is moto's server on 127.0.0.1, with the loopback stand-ins of ``tests/standins`` in
front of it for what moto cannot do: SageMaker runs each training job's container for real
(the console's own source and ``entrypoints/train.py`` in the job environment, data from moto's
S3, the model, debugger trial and profiler output back to it), SageMaker Runtime serves the
deployed model with ``entrypoints/serve.py``, and Lambda runs the function's zip with its role's
keys. The app runs unchanged on the aws backend with ``AWS_ENDPOINT_URL*`` pointing at them, as
it would point at AWS: every object, job and resource the journey makes is read back from there.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

from core.config import DEFAULT_JOB_PYTHON
from tests.core.aws_fixtures import moto_server
from tests.e2e import waits
from tests.e2e.conftest import choose_image_size, choose_option, click_when_idle, screenshot, serve_app
from tests.e2e.elements import metric_value, sidebar
from tests.e2e.test_data_and_training_browser import ingest_demo_by_drop, upload_checked_dataset
from tests.e2e.test_debugger_browser import deploy_rule_actions
from tests.e2e.test_journey_browser import (
    evaluate_the_test_split,
    invoke_lambda_allowed_then_denied,
    open_the_timeline_at_a_step,
    predict_demo_digits,
    sidebar_next,
    tune_two_one_epoch_trials,
)
from tests.standins.containers import LocalContainers
from tests.standins.lambdas import LambdaStandIn
from tests.standins.runtime import RuntimeStandIn
from tests.standins.sagemaker import SageMakerStandIn

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REGION = "us-east-1"
ACCOUNT = "123456789012"
"""moto's account."""
BUCKET = "smc-journey"
PREFIX = "sm-console"
ACCESS_KEY = "AKIAFAKEKEYFORTESTS12"
SECRET = "fake-secret-for-tests-only"
SERVING_IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/sm-console-serving:1"
MOTO_DLAMI = "Deep Learning AMI Ubuntu Linux*"
"""moto has no Deep Learning AMI with PyTorch of today's name: the older one it has stands in (SMC_SPOT_AMI)."""
JOB_TIMEOUT_MS = 600_000
ANALYSIS_TIMEOUT_MS = 180_000
"""The Debugger's rules and the Profiler's report of a finished job: read from S3 and analysed on this machine."""
ANALYSIS_POLL_S = "1"
"""How often those analyses look at the job: AWS here is on loopback, so not the default's gentle 15 s."""
USER_BUCKET = "user-data"
IN_PLACE_URI = f"s3://{USER_BUCKET}/scans/digits-demo/"
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
    containers = LocalContainers(job_python=DEFAULT_JOB_PYTHON, workdir=tmp_path / "containers")
    with moto_server() as moto_url:  # empty: the journey starts from an empty account
        with (SageMakerStandIn(moto_url, containers=containers) as sagemaker,
              RuntimeStandIn(moto_url, region=REGION) as runtime,
              LambdaStandIn(moto_url, runtime, region=REGION) as lambdas):
            app = AwsApp(url="", moto_url=moto_url)
            app.client("s3").create_bucket(Bucket=BUCKET)
            role = app.client("iam").create_role(RoleName="smc-training",
                                                 AssumeRolePolicyDocument=SAGEMAKER_TRUST_POLICY)["Role"]["Arn"]
            dlami = app.client("ec2").describe_images(Owners=["898082745236"], Filters=[
                {"Name": "name", "Values": [MOTO_DLAMI]}])["Images"][0]["ImageId"]
            (tmp_path / "aws-config").write_text("")
            environment = {
                "SMC_BACKEND": "aws", "SMC_REGION": REGION, "SMC_BUCKET": BUCKET, "SMC_PREFIX": PREFIX,
                "SMC_ROLE_ARN": role, "SMC_SERVING_IMAGE_URI": SERVING_IMAGE, "SMC_SPOT_AMI": dlami,
                "SMC_ANALYSIS_POLL_S": ANALYSIS_POLL_S,
                "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_DEFAULT_REGION": REGION,
                "AWS_ENDPOINT_URL": moto_url, "AWS_ENDPOINT_URL_SAGEMAKER": sagemaker.url,
                "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": runtime.url, "AWS_ENDPOINT_URL_LAMBDA": lambdas.url,
                "AWS_CONFIG_FILE": str(tmp_path / "aws-config"),
                "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-config"),
                "AWS_EC2_METADATA_DISABLED": "true",
            }
            with serve_app(tmp_path, **environment) as url:
                yield AwsApp(url=url, moto_url=moto_url)
            for stand_in in (sagemaker, runtime, lambdas):
                assert not stand_in.errors, f"a stand-in failed: {stand_in.errors}"


def no_error_shown(page: Page) -> None:
    """No exception box, no error message, no traceback anywhere on the page."""
    waits.count(page.locator('[data-testid="stException"]'), 0)
    waits.count(page.locator('[data-testid="stAlertContentError"]'), 0)


def keys_under(app: AwsApp, prefix: str) -> list[str]:
    listed = app.client("s3").get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{PREFIX}/{prefix}")
    return [o["Key"].removeprefix(f"{PREFIX}/") for listing in listed for o in listing.get("Contents", [])]


def upload_the_demo(page: Page, app: AwsApp, tmp_path: Path) -> None:
    ingest_demo_by_drop(page, app.url, tmp_path)
    upload_checked_dataset(page)
    waits.visible(page.get_by_text(f"Dataset digits-demo is ready at s3://{BUCKET}/{PREFIX}/datasets/digits-demo"))
    no_error_shown(page)
    images = [k for k in keys_under(app, "datasets/digits-demo/") if k.endswith(".jpg")]
    assert len(images) == 1797, len(images)
    assert {k.split("/")[2] for k in images} == {"train", "valid", "test"}
    screenshot(page, "aws-journey-02-data")


def register_in_place(page: Page, app: AwsApp) -> None:
    """The demo, put in another bucket by hand, is checked where it lies and registered without a copy."""
    s3 = app.client("s3")
    s3.create_bucket(Bucket=USER_BUCKET)
    for key in keys_under(app, "datasets/digits-demo/"):
        if key.endswith(".jpg"):
            s3.copy_object(Bucket=USER_BUCKET, Key=f"scans/{key.removeprefix('datasets/')}",
                           CopySource={"Bucket": BUCKET, "Key": f"{PREFIX}/{key}"})
    page.get_by_text("S3 prefix (in place)").click()
    page.get_by_label("S3 prefix holding train/ valid/ test/").fill(IN_PLACE_URI)
    page.get_by_label("S3 prefix holding train/ valid/ test/").press("Enter")
    click_when_idle(page, page.get_by_role("button", name="Check dataset"), page.get_by_text("Validation report"))
    waits.metric(page, "Images", "1797")
    page.get_by_label("Dataset name").fill("digits-in-place")
    page.get_by_label("Dataset name").press("Enter")
    page.get_by_role("button", name=f"Register {IN_PLACE_URI} (no copy)").click()
    waits.visible(page.get_by_text(f"Dataset digits-in-place is ready at {IN_PLACE_URI}"))
    no_error_shown(page)
    assert not keys_under(app, "datasets/digits-in-place")  # nothing copied into the console's bucket
    screenshot(page, "aws-journey-02b-in-place")


def train_one_epoch(page: Page, app: AwsApp) -> None:
    """Starts a training job from the form on the dataset registered in place (the newest): it runs in its
    container, reading the data from the user's bucket, and its model becomes deployable."""
    page.get_by_role("link", name=re.compile("Train a model")).click()
    waits.heading(page, "Training jobs")
    form = page.locator('[data-testid="stForm"]')
    form.get_by_label("Epochs", exact=True).fill("1")
    choose_image_size(page, form, 32)
    form.get_by_label("Job name (empty: generated)").fill("aws-train")
    form.get_by_text("Compute: instance type and count").click()  # the region's types, described by EC2
    choose_option(page, form.locator('[data-testid="stSelectbox"]').filter(has_text="Instance type"),
                  "ml.c5.2xlarge · 8 vCPU, 16 GiB", search="ml.c5.2xl")
    form.get_by_label("Volume (GB)", exact=True).fill("40")
    form.get_by_role("button", name="Start training").click()
    waits.visible(page.get_by_text("Started aws-train"))
    described = app.client("sagemaker").describe_training_job(TrainingJobName="aws-train")
    assert described["ResourceConfig"] == {"InstanceType": "ml.c5.2xlarge", "InstanceCount": 1, "VolumeSizeInGB": 40}
    waits.metric(page, "Status", "Completed", timeout=JOB_TIMEOUT_MS)
    assert float(metric_value(page, "Test accuracy").inner_text()) >= 0.5
    waits.visible(page.get_by_text(f"s3://{BUCKET}/{PREFIX}/jobs/aws-train/output/model.tar.gz").first)
    waits.visible(page.get_by_role("link", name="Deploy the model of aws-train"))
    waits.contains(page.locator('[data-testid="stCode"]'), "epoch=1/1")  # its CloudWatch log
    no_error_shown(page)
    assert "jobs/aws-train/output/model.tar.gz" in keys_under(app, "jobs/aws-train/output/")
    screenshot(page, "aws-journey-03-training")


def read_the_debugger_and_profiler(page: Page, job: str) -> None:
    """Both views of a SageMaker job: its trial and its system metrics are read from S3 and analysed."""
    page.get_by_role("link", name=f"Debugger view of {job}").click()
    waits.heading(page, "Debugger")
    waits.visible(page.get_by_text(re.compile(r"^\d+ rules: ")).first, timeout=ANALYSIS_TIMEOUT_MS)
    waits.chart(page)
    no_error_shown(page)
    screenshot(page, "aws-journey-05-debugger")

    page.get_by_role("link", name=f"Profiler view of {job}").click()
    waits.heading(page, "Profiler")
    waits.metric(page, "Analysis", "final", timeout=ANALYSIS_TIMEOUT_MS)
    waits.chart(page)
    no_error_shown(page)
    screenshot(page, "aws-journey-06-profiler")
    open_the_timeline_at_a_step(page)  # the trace the job uploaded, mirrored and indexed on this machine
    no_error_shown(page)
    screenshot(page, "aws-journey-06b-timeline")


def spot_price_launch_terminate_cleanup(page: Page, app: AwsApp) -> None:
    """EC2 Spot at moto: the price history, a launch, terminate, and the run's IAM and network clean-up."""
    waits.heading(page, "EC2 Spot")
    waits.chart(page)  # the price history
    waits.visible(page.get_by_text(re.compile("These prices look synthetic")))  # moto's, and said so
    # a spot run reads its data from the console's bucket: the uploaded copy, not the one registered in place
    choose_option(page, page.locator('[data-testid="stSelectbox"]').filter(has_text="Dataset"), "digits-demo")
    page.get_by_label("Run name (empty: generated)").fill("aws-spot")
    page.get_by_label("Run name (empty: generated)").press("Enter")
    click_when_idle(page, page.get_by_role("button", name="Launch", exact=True), page.get_by_text("Launched aws-spot"))
    waits.metric(page, "Status", "Running")
    instances = app.client("ec2").describe_instances(
        Filters=[{"Name": "tag:Name", "Values": ["smc-spot aws-spot"]}])["Reservations"][0]["Instances"]
    assert instances[0]["InstanceLifecycle"] == "spot"
    page.get_by_role("button", name="Terminate").click()
    waits.metric(page, "Status", "Terminated")
    assert app.client("ec2").describe_instances(InstanceIds=[instances[0]["InstanceId"]])[
        "Reservations"][0]["Instances"][0]["State"]["Name"] == "terminated"
    page.get_by_role("button", name="Delete the run's role, instance profile and security group").click()
    waits.visible(page.get_by_text(re.compile(r"^Deleted sg-")))
    assert not [r for r in app.client("iam").list_roles()["Roles"] if r["RoleName"].startswith("smc-spot-aws-spot")]
    no_error_shown(page)
    screenshot(page, "aws-journey-09-spot")


@pytest.mark.timeout(1500)
def test_the_journey_on_the_aws_backend(page: Page, aws_app: AwsApp, tmp_path: Path) -> None:
    page.goto(aws_app.url)
    waits.heading(page, "Data")
    waits.visible(sidebar(page).get_by_text("AWS backend: account"))
    sidebar_next(page, "Bring a dataset")
    upload_the_demo(page, aws_app, tmp_path)
    register_in_place(page, aws_app)
    train_one_epoch(page, aws_app)
    training = aws_app.client("sagemaker").describe_training_job(TrainingJobName="aws-train")
    assert training["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == IN_PLACE_URI

    page.goto(f"{aws_app.url}/tuning")
    best_job = tune_two_one_epoch_trials(page)
    no_error_shown(page)
    read_the_debugger_and_profiler(page, best_job)

    page.get_by_role("link", name=f"Deploy the model of {best_job}").click()
    waits.heading(page, "Deploy")
    waits.visible(page.get_by_text(f"s3://{BUCKET}/{PREFIX}/jobs/{best_job}/output/model.tar.gz").first)
    endpoint = page.get_by_label("Endpoint name (empty: generated)").get_attribute("placeholder")
    assert endpoint
    page.get_by_role("button", name="Deploy", exact=True).click()
    with zipfile.ZipFile(tmp_path / "digits-demo.zip") as archive:
        archive.extractall(tmp_path / "demo")
    image = predict_demo_digits(page, tmp_path / "demo" / "test")  # answered by the Runtime stand-in
    # the test split registered in place, read from the user's bucket where it lies
    evaluate_the_test_split(page, "digits-in-place", len(list((tmp_path / "demo" / "test").rglob("*.jpg"))))
    assert aws_app.client("sagemaker").describe_endpoint(EndpointName=endpoint)["EndpointStatus"] == "InService"
    no_error_shown(page)

    page.get_by_role("link", name=f"Next: call {endpoint} from a Lambda function").click()
    invoke_lambda_allowed_then_denied(page, endpoint, image, account=ACCOUNT, region=REGION)
    assert aws_app.client("lambda").get_function(FunctionName=f"classify-{endpoint}")["Configuration"]["Role"]

    sidebar(page).get_by_role("link", name="Next: Train for less on EC2 Spot").click()
    spot_price_launch_terminate_cleanup(page, aws_app)

    page.goto(f"{aws_app.url}/deploy")
    waits.heading(page, "Deploy")
    page.get_by_role("button", name="Delete endpoint").click()
    waits.visible(page.get_by_text(f"Deleted {endpoint}"))
    assert aws_app.client("sagemaker").list_endpoints()["Endpoints"] == []
    no_error_shown(page)

    deploy_rule_actions_on_aws(page, aws_app)


def deploy_rule_actions_on_aws(page: Page, app: AwsApp) -> None:
    """The Debugger's rule actions deployed at moto from the page: the EventBridge rule, its Lambda
    target and the function's permission, the topic; the statement a job's role needs is shown."""
    deploy_rule_actions(page, app.url, topic="rule-alerts")
    waits.visible(page.get_by_text("PutRuleEvents").first)  # what the SageMaker execution role needs
    events = app.client("events")
    assert events.describe_rule(Name="debugger-rule-fired")["State"] == "ENABLED"
    [target] = events.list_targets_by_rule(Rule="debugger-rule-fired")["Targets"]
    assert target["Arn"].endswith(":function:debugger-rule-actions")
    assert "events.amazonaws.com" in app.client("lambda").get_policy(FunctionName="debugger-rule-actions")["Policy"]
    assert any(t["TopicArn"].endswith(":rule-alerts") for t in app.client("sns").list_topics()["Topics"])
    no_error_shown(page)
    screenshot(page, "aws-journey-10-rule-actions")
