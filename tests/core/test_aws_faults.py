"""AWS faults on the aws backend, each injected into exactly one call (or, for credentials that expire,
every call from one on) while moto answers the rest: what the user reads says what is wrong and how
to fix it, and nothing half-created is left in S3, SageMaker or IAM (or the message names what is).

The faults: credentials that expire or vanish mid-session, a denied call (s3:PutObject,
sagemaker:CreateTrainingJob, iam:PassRole), throttling that outlasted botocore's retries, a bucket in
another region, a name taken between the check and the create, and an execution role that SageMaker
or Lambda cannot assume.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from core.aws import NO_CREDENTIALS_MESSAGE, AwsSession, translate_client_error
from core.config import Settings
from core.endpoints._sagemaker import SageMakerEndpointManager
from core.errors import AlreadyExistsError, BackendError, ConfigError, CredentialsError
from core.lambdas import FunctionSpec
from core.lambdas._aws import AwsFunctionManager, role_name_for
from core.storage._s3 import MB, S3Storage
from core.training._sagemaker import SageMakerJobRunner
from core.training.spec import TrainingJobSpec
from core.tuning._sagemaker import SageMakerTuner
from core.tuning.spec import ContinuousRange, Scaling, TuningJobSpec
from tests.core.aws_faults import AWS_EXPIRED_TOKEN, Fault, inject
from tests.core.aws_fixtures import (  # noqa: F401  (fixtures register on import)
    BUCKET,
    FAKE_ACCESS_KEY,
    FAKE_SECRET,
    PREFIX,
    REGION,
    ROLE_ARN,
    aws_credentials_fixture,
    aws_fixture,
    aws_settings_fixture,
    no_network_fixture,
)

DATA_URI = f"s3://{BUCKET}/{PREFIX}/datasets/digits"
CODE_URI = f"s3://{BUCKET}/{PREFIX}/jobs/digits-1/code/sourcedir.tar.gz"
IMAGE = f"123456789012.dkr.ecr.{REGION}.amazonaws.com/sm-console-serving:1"
MODEL_URI = f"s3://{BUCKET}/{PREFIX}/jobs/digits-1/output/model.tar.gz"
CALLER = "arn:aws:sts::123456789012:assumed-role/dev/alice"
IAM_TABLE = "Ask for this permission; the README's IAM table lists what each page needs"
THROTTLED = "AWS is throttling requests ({code}) and still refused after retrying. Wait a minute and try again"


def _denied(action: str, resource: str) -> str:
    return (f"User: {CALLER} is not authorized to perform: {action} on resource: {resource} "
            f"because no identity-based policy allows the {action} action")


@pytest.fixture
def storage(aws: AwsSession) -> S3Storage:
    return S3Storage(aws.client("s3"), BUCKET, PREFIX)


@pytest.fixture
def source_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "train.py").write_text("print('train')\n")
    return folder


@pytest.fixture
def runner(aws_settings: Settings, aws: AwsSession, storage: S3Storage) -> SageMakerJobRunner:
    return SageMakerJobRunner(aws_settings, aws, storage)


@pytest.fixture
def endpoints(aws_settings: Settings, aws: AwsSession) -> SageMakerEndpointManager:
    return SageMakerEndpointManager(aws_settings, aws, serving_image=IMAGE)


@pytest.fixture
def functions(aws_credentials: None, aws_settings: Settings) -> Iterator[AwsFunctionManager]:
    with mock_aws(config={"lambda": {"use_docker": False}}):
        yield AwsFunctionManager(AwsSession(aws_settings), sleep=lambda seconds: None)


def _spec(source_dir: Path, name: str = "digits-1") -> TrainingJobSpec:
    return TrainingJobSpec(name=name, inputs={"training": DATA_URI}, hyperparameters={"epochs": 2},
                           source_dir=source_dir, instance_type="ml.m5.xlarge")


def _dataset(root: Path, sizes: dict[str, int]) -> Path:
    for name, size in sizes.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(os.urandom(size))
    return root


DATASET = {"train/a/1.png": 10, "train/b/2.png": 20, "valid/a/3.png": 30, "valid/b/4.png": 40}


def _nothing_stored(aws: AwsSession) -> None:
    s3 = aws.client("s3")
    assert s3.list_objects_v2(Bucket=BUCKET).get("Contents", []) == []
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def _no_training_job(aws: AwsSession) -> None:
    assert aws.client("sagemaker").list_training_jobs()["TrainingJobSummaries"] == []


def _no_deployment(aws: AwsSession) -> None:
    sagemaker = aws.client("sagemaker")
    assert sagemaker.list_models()["Models"] == []
    assert sagemaker.list_endpoint_configs()["EndpointConfigs"] == []
    assert sagemaker.list_endpoints()["Endpoints"] == []


def _no_function_and_no_role() -> None:
    assert boto3.client("lambda", region_name=REGION).list_functions()["Functions"] == []
    assert boto3.client("iam").list_roles(PathPrefix="/sm-console/")["Roles"] == []


def _secret_free(message: str) -> None:
    assert FAKE_ACCESS_KEY not in message and FAKE_SECRET not in message


# --- (1) credentials that expire, or vanish, mid-session ------------------------------------


def test_credentials_expiring_during_a_dataset_upload_say_so_and_what_is_left(
    storage: S3Storage, aws: AwsSession, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One file went up; then every call is refused, the clean-up's too: the upload's error is the one shown."""
    s3 = inject(aws.client("s3"), Fault(None, "ExpiredToken", "The provided token has expired.", after=1, times=None))
    with pytest.raises(CredentialsError) as caught:
        storage.put_folder(_dataset(tmp_path / "ds", DATASET), "datasets/digits")
    message = str(caught.value)
    assert message.startswith(f"uploading 2.png to {DATA_URI}/train/b/2.png: AWS refused the credentials "
                              "(ExpiredToken); they have expired. Refresh them and try again")
    assert message.endswith(f". What was uploaded under {DATA_URI} could not be removed again: delete it by hand")
    assert s3.failed == ["PutObject", "ListObjectsV2"]
    assert any("after a failed upload" in r.getMessage() for r in caplog.records)  # the clean-up's own error
    _secret_free(message)
    s3.times = 0  # refreshed: the one file named above is what is left
    assert [o.key for o in storage.list()] == ["datasets/digits/train/a/1.png"]


def test_credentials_expiring_between_upload_and_create_name_the_code_left_behind(
    runner: SageMakerJobRunner, aws: AwsSession, source_dir: Path
) -> None:
    """The job's code went up; then the session token expired: CreateTrainingJob and the clean-up are refused."""
    sagemaker = inject(aws.client("sagemaker"),
                       Fault(None, "ExpiredTokenException", AWS_EXPIRED_TOKEN, after=1, times=None))
    s3 = inject(aws.client("s3"), Fault(None, "ExpiredToken", "The provided token has expired.", after=1, times=None))
    with pytest.raises(CredentialsError) as caught:
        runner.start(_spec(source_dir))
    message = str(caught.value)
    assert message.startswith("creating training job digits-1: AWS refused the credentials (ExpiredTokenException); "
                              "they have expired. Refresh them and try again: `aws sso login` for an SSO profile")
    assert f"Could not remove the uploaded code {CODE_URI} again (ExpiredToken): delete it by hand" in message
    assert s3.failed == ["ListObjectsV2"]  # the clean-up was tried
    _secret_free(message)
    s3.times = sagemaker.times = 0  # the credentials are refreshed: the one object named above is what is left
    assert [o["Key"] for o in aws.client("s3").list_objects_v2(Bucket=BUCKET)["Contents"]] == [
        f"{PREFIX}/jobs/digits-1/code/sourcedir.tar.gz"]
    _no_training_job(aws)


def test_credentials_that_vanish_mid_deployment_name_what_is_left(
    endpoints: SageMakerEndpointManager, aws: AwsSession
) -> None:
    """DescribeEndpoint and CreateModel worked; from then on botocore finds no credentials at all."""
    fault = inject(aws.client("sagemaker"), Fault(None, after=2, times=None, no_credentials=True))
    with pytest.raises(CredentialsError) as caught:
        endpoints.deploy("digits-ep", MODEL_URI)
    assert str(caught.value) == (f"{NO_CREDENTIALS_MESSAGE}. Could not remove model digits-ep again "
                                 "(NoCredentialsError): delete it by hand")
    assert fault.failed == ["CreateEndpointConfig", "DeleteModel"]
    fault.times = 0
    assert [m["ModelName"] for m in aws.client("sagemaker").list_models()["Models"]] == ["digits-ep"]


def test_credentials_expiring_during_a_lambda_deploy_remove_what_was_created_when_they_can(
    functions: AwsFunctionManager,
) -> None:
    """Only CreateFunction is refused (the token expired; the clean-up ran with refreshed ones)."""
    inject(functions.session.client("lambda"),
           Fault("CreateFunction", "ExpiredTokenException", AWS_EXPIRED_TOKEN, status=403))
    with pytest.raises(CredentialsError, match=r"creating Lambda function classify-digits: AWS refused the "
                                               r"credentials \(ExpiredTokenException\); they have expired"):
        functions.deploy(FunctionSpec(function_name="classify-digits", endpoint_name="digits-ep"))
    _no_function_and_no_role()


# --- (2) a denied call -----------------------------------------------------------------------


def test_a_denied_put_object_names_the_action_and_leaves_no_object(storage: S3Storage, aws: AwsSession,
                                                                   tmp_path: Path) -> None:
    """S3 often answers a bare "Access Denied": the action comes from the call (the third upload)."""
    fault = inject(aws.client("s3"), Fault("PutObject", "AccessDenied", "Access Denied", status=403, after=2))
    with pytest.raises(BackendError) as caught:
        storage.put_folder(_dataset(tmp_path / "ds", DATASET), "datasets/digits")
    assert fault.failed == ["PutObject"]
    assert str(caught.value) == (
        f"access denied: uploading 3.png to {DATA_URI}/valid/a/3.png: these credentials may not do s3:PutObject. "
        f"{IAM_TABLE}. AWS said: Access Denied")
    _nothing_stored(aws)


@pytest.mark.parametrize(("action", "resource"), [
    ("sagemaker:CreateTrainingJob", f"arn:aws:sagemaker:{REGION}:123456789012:training-job/digits-1"),
    ("iam:PassRole", ROLE_ARN),
])
def test_a_denied_create_training_job_names_the_action_and_removes_the_code(
    runner: SageMakerJobRunner, aws: AwsSession, source_dir: Path, action: str, resource: str
) -> None:
    inject(aws.client("sagemaker"),
           Fault("CreateTrainingJob", "AccessDeniedException", _denied(action, resource), status=400))
    with pytest.raises(BackendError) as caught:
        runner.start(_spec(source_dir))
    assert str(caught.value).startswith(
        f"access denied: creating training job digits-1: these credentials may not do {action} on {resource}. "
        f"{IAM_TABLE}. AWS said: User: {CALLER} is not authorized")
    _nothing_stored(aws)
    _no_training_job(aws)


def test_a_denied_pass_role_on_create_function_removes_the_new_role(functions: AwsFunctionManager) -> None:
    role_arn = f"arn:aws:iam::123456789012:role/sm-console/{role_name_for('classify-digits')}"
    inject(functions.session.client("lambda"),
           Fault("CreateFunction", "AccessDeniedException", _denied("iam:PassRole", role_arn), status=403))
    with pytest.raises(BackendError) as caught:
        functions.deploy(FunctionSpec(function_name="classify-digits", endpoint_name="digits-ep"))
    assert str(caught.value).startswith(
        f"access denied: creating Lambda function classify-digits: these credentials may not do iam:PassRole on "
        f"{role_arn}. {IAM_TABLE}.")
    _no_function_and_no_role()


def test_a_lambda_deploy_over_an_existing_role_keeps_that_role(functions: AwsFunctionManager) -> None:
    """A role the deploy did not create is not the deploy's to delete; the new function is."""
    iam = boto3.client("iam")
    role_name = role_name_for("classify-digits")
    iam.create_role(RoleName=role_name, Path="/sm-console/", AssumeRolePolicyDocument="{}")
    inject(functions.session.client("lambda"),
           Fault("PutFunctionConcurrency", "AccessDeniedException",
                 _denied("lambda:PutFunctionConcurrency", "arn:aws:lambda:us-east-1:1:function:classify-digits")))
    with pytest.raises(BackendError, match="may not do lambda:PutFunctionConcurrency"):
        functions.deploy(FunctionSpec(function_name="classify-digits", endpoint_name="digits-ep",
                                      reserved_concurrency=2))
    assert boto3.client("lambda", region_name=REGION).list_functions()["Functions"] == []
    assert [r["RoleName"] for r in iam.list_roles(PathPrefix="/sm-console/")["Roles"]] == [role_name]


# --- (3) throttling that outlasted the retries ----------------------------------------------


def test_a_throttled_multipart_upload_is_aborted_and_the_folder_removed(storage: S3Storage, aws: AwsSession,
                                                                       tmp_path: Path) -> None:
    folder = _dataset(tmp_path / "ds", {"train/a/1.png": 10, "train/b/big.bin": 2 * 8 * MB + 1})
    fault = inject(aws.client("s3"), Fault("UploadPart", "SlowDown", "Please reduce your request rate.", status=503,
                                           after=1))
    with pytest.raises(BackendError) as caught:
        storage.put_folder(folder, "datasets/digits")
    assert fault.failed == ["UploadPart"]
    assert str(caught.value).startswith(f"uploading big.bin to {DATA_URI}/train/b/big.bin: "
                                        + THROTTLED.format(code="SlowDown"))
    _nothing_stored(aws)


def test_a_throttled_create_endpoint_rolls_back_the_model_and_config(endpoints: SageMakerEndpointManager,
                                                                     aws: AwsSession) -> None:
    inject(aws.client("sagemaker"), Fault("CreateEndpoint", "ThrottlingException", "Rate exceeded"))
    with pytest.raises(BackendError) as caught:
        endpoints.deploy("digits-ep", MODEL_URI)
    assert str(caught.value).startswith("creating SageMaker endpoint digits-ep: "
                                        + THROTTLED.format(code="ThrottlingException"))
    assert "if it keeps happening, run fewer uploads, jobs or open pages at once" in str(caught.value)
    _no_deployment(aws)


# --- (4) a bucket in another region -----------------------------------------------------------

WRONG_REGION = f"bucket {BUCKET} is in eu-west-1, not us-east-1: set SMC_REGION=eu-west-1 or use a bucket in us-east-1"


@pytest.mark.parametrize("fault", [
    Fault("PutObject", "PermanentRedirect",
          "The bucket you are attempting to access must be addressed using the specified endpoint. Please send all "
          "future requests to this endpoint.", status=301, headers={"x-amz-bucket-region": "eu-west-1"},
          fields={"Bucket": BUCKET, "Endpoint": f"{BUCKET}.s3.eu-west-1.amazonaws.com"}),
    Fault("PutObject", "AuthorizationHeaderMalformed",
          "The authorization header is malformed; the region 'us-east-1' is wrong; expecting 'eu-west-1'",
          fields={"Region": "eu-west-1"}),
    Fault("PutObject", "PermanentRedirect", "The bucket you are attempting to access must be addressed using the "
          "specified endpoint.", status=301, fields={"Endpoint": f"{BUCKET}.s3-eu-west-1.amazonaws.com"}),
], ids=["301-with-region-header", "authorization-header-malformed", "endpoint-only"])
def test_an_upload_to_a_bucket_in_another_region_says_which_region_to_set(
    storage: S3Storage, aws: AwsSession, tmp_path: Path, fault: Fault
) -> None:
    """botocore follows these redirects itself when it can: this is the answer it could not follow."""
    inject(aws.client("s3"), fault)
    with pytest.raises(ConfigError) as caught:
        storage.put_folder(_dataset(tmp_path / "ds", DATASET), "datasets/digits")
    assert str(caught.value) == f"uploading 1.png to {DATA_URI}/train/a/1.png: {WRONG_REGION}"
    _nothing_stored(aws)


def test_a_head_in_another_region_has_no_body_but_the_region_header(storage: S3Storage, aws: AwsSession) -> None:
    inject(aws.client("s3"), Fault("HeadObject", "301", "Moved Permanently", status=301,
                                   headers={"x-amz-bucket-region": "eu-west-1"}))
    with pytest.raises(ConfigError, match=f"^S3 object {DATA_URI}/x.png: {WRONG_REGION}$"):
        storage.exists("datasets/digits/x.png")


def test_a_redirect_that_names_no_region_still_says_what_to_do() -> None:
    error = ClientError({"Error": {"Code": "PermanentRedirect", "Message": "Please send all future requests to "
                                   "this endpoint."}, "ResponseMetadata": {"HTTPStatusCode": 301}}, "GetObject")
    assert str(translate_client_error(error, "S3 object s3://far-away/x")) == (
        "S3 object s3://far-away/x: bucket far-away is in another region than the console's region: set SMC_REGION "
        "to the bucket's region (the S3 console shows it) or use a bucket in the region SMC_REGION names")


# --- (5) a name taken between the check and the create ----------------------------------------


def test_a_training_job_name_taken_meanwhile_removes_the_code(runner: SageMakerJobRunner, aws: AwsSession,
                                                              source_dir: Path) -> None:
    inject(aws.client("sagemaker"), Fault(
        "CreateTrainingJob", "ResourceInUse", "Training job names must be unique within an AWS account and region, "
        f"and a training job with this name already exists (arn:aws:sagemaker:{REGION}:123456789012:training-job/"
        "digits-1)"))
    with pytest.raises(AlreadyExistsError) as caught:
        runner.start(_spec(source_dir))
    assert str(caught.value).startswith("creating training job digits-1: the name is taken (Training job names must")
    assert str(caught.value).endswith("): choose another name, or delete the existing one first")
    _nothing_stored(aws)


def test_a_tuning_job_name_taken_meanwhile_removes_the_code(aws_settings: Settings, aws: AwsSession,
                                                            storage: S3Storage, runner: SageMakerJobRunner,
                                                            source_dir: Path) -> None:
    tuner = SageMakerTuner(aws_settings, aws, storage, runner, source_dir=source_dir)
    inject(aws.client("sagemaker"), Fault(
        "CreateHyperParameterTuningJob", "ResourceInUse",
        f"Hyperparameter tuning job arn:aws:sagemaker:{REGION}:123456789012:hyper-parameter-tuning-job/hpo-1 "
        "already exists"))
    spec = TuningJobSpec(name="hpo-1", ranges=(ContinuousRange("lr", 1e-4, 0.1, Scaling.LOGARITHMIC),),
                         inputs={"training": DATA_URI}, objective_metric="validation:accuracy", max_jobs=2,
                         max_parallel_jobs=1)
    with pytest.raises(AlreadyExistsError, match=r"^creating tuning job hpo-1: the name is taken \(.* already "
                                                 r"exists\): choose another name, or delete the existing one first$"):
        tuner.start(spec)
    _nothing_stored(aws)


def test_credentials_expiring_before_a_tuning_job_is_created_name_the_code_left_behind(
    aws_settings: Settings, aws: AwsSession, storage: S3Storage, runner: SageMakerJobRunner, source_dir: Path
) -> None:
    tuner = SageMakerTuner(aws_settings, aws, storage, runner, source_dir=source_dir)
    spec = TuningJobSpec(name="hpo-1", ranges=(ContinuousRange("lr", 1e-4, 0.1, Scaling.LOGARITHMIC),),
                         inputs={"training": DATA_URI}, objective_metric="validation:accuracy", max_jobs=2,
                         max_parallel_jobs=1)
    inject(aws.client("sagemaker"), Fault("CreateHyperParameterTuningJob", "ExpiredTokenException", AWS_EXPIRED_TOKEN))
    s3 = inject(aws.client("s3"), Fault(None, "ExpiredToken", "The provided token has expired.", after=1, times=None))
    with pytest.raises(CredentialsError) as caught:
        tuner.start(spec)
    code_uri = storage.uri("tuning/hpo-1/code/sourcedir.tar.gz")
    assert f"Could not remove the uploaded code {code_uri} again (ExpiredToken): delete it by hand" in str(caught.value)
    s3.times = 0
    assert [o["Key"] for o in aws.client("s3").list_objects_v2(Bucket=BUCKET)["Contents"]] == [
        f"{PREFIX}/tuning/hpo-1/code/sourcedir.tar.gz"]


def test_an_endpoint_name_taken_meanwhile_rolls_back_the_model_and_config(endpoints: SageMakerEndpointManager,
                                                                          aws: AwsSession) -> None:
    inject(aws.client("sagemaker"), Fault(
        "CreateEndpoint", "ValidationException",
        f'Cannot create already existing endpoint "arn:aws:sagemaker:{REGION}:123456789012:endpoint/digits-ep".'))
    with pytest.raises(AlreadyExistsError, match=r"^SageMaker endpoint digits-ep exists already: deploy under another "
                                                 r"name, or delete it in the SageMaker console"):
        endpoints.deploy("digits-ep", MODEL_URI)
    _no_deployment(aws)


def test_a_function_name_taken_meanwhile_removes_the_role_it_created(functions: AwsFunctionManager) -> None:
    inject(functions.session.client("lambda"),
           Fault("CreateFunction", "ResourceConflictException", "Function already exist: classify-digits", 409))
    with pytest.raises(AlreadyExistsError, match=r"^creating Lambda function classify-digits: the name is taken "
                                                 r"\(Function already exist: classify-digits\): choose another name"):
        functions.deploy(FunctionSpec(function_name="classify-digits", endpoint_name="digits-ep"))
    _no_function_and_no_role()


# --- (6) an execution role the service cannot assume --------------------------------------------


@pytest.mark.parametrize("message", [
    f"Could not assume role {ROLE_ARN}. Please ensure that the role exists and allows principal "
    "'sagemaker.amazonaws.com' to assume the role.",
    f"SageMaker is not authorized to assume the role {ROLE_ARN}",
])
def test_a_role_sagemaker_cannot_assume_is_a_config_error_and_leaves_no_code(
    runner: SageMakerJobRunner, aws: AwsSession, source_dir: Path, message: str
) -> None:
    inject(aws.client("sagemaker"), Fault("CreateTrainingJob", "ValidationException", message))
    with pytest.raises(ConfigError) as caught:
        runner.start(_spec(source_dir))
    assert str(caught.value).startswith(
        f"creating training job digits-1: SageMaker could not assume the execution role {ROLE_ARN}: its trust policy "
        "must allow sagemaker.amazonaws.com (see README, IAM)")
    _nothing_stored(aws)
    _no_training_job(aws)


def test_a_role_sagemaker_cannot_assume_for_a_model_creates_nothing(endpoints: SageMakerEndpointManager,
                                                                       aws: AwsSession) -> None:
    inject(aws.client("sagemaker"), Fault("CreateModel", "ValidationException",
                                          f"Could not assume role {ROLE_ARN}. Please ensure that the role exists."))
    with pytest.raises(ConfigError, match=f"SageMaker could not assume the execution role {ROLE_ARN}: its trust"):
        endpoints.deploy("digits-ep", MODEL_URI)
    _no_deployment(aws)


def test_a_role_lambda_never_could_assume_is_removed_after_the_retries(functions: AwsFunctionManager) -> None:
    """Lambda says so while a new role propagates, so it is retried; a role it never accepts is given up and removed."""
    fault = inject(functions.session.client("lambda"), Fault(
        "CreateFunction", "InvalidParameterValueException", "The role defined for the function cannot be assumed "
        "by Lambda.", times=None))
    with pytest.raises(ConfigError, match=r"^creating Lambda function classify-digits: Lambda could not assume the "
                                          r"function's role: its trust policy must allow lambda.amazonaws.com"):
        functions.deploy(FunctionSpec(function_name="classify-digits", endpoint_name="digits-ep"))
    assert len(fault.failed) == 10
    _no_function_and_no_role()


# --- the clean-up itself -------------------------------------------------------------------------


def test_a_failed_clean_up_keeps_the_original_error_class_and_cause(
    endpoints: SageMakerEndpointManager, aws: AwsSession
) -> None:
    client = aws.client("sagemaker")
    inject(client, Fault("CreateEndpoint", "ThrottlingException", "Rate exceeded"))
    inject(client, Fault("DeleteEndpointConfig", "ThrottlingException", "Rate exceeded"))
    with pytest.raises(BackendError) as caught:
        endpoints.deploy("digits-ep", MODEL_URI)
    assert type(caught.value) is BackendError
    assert str(caught.value).endswith(
        ". Could not remove endpoint configuration digits-ep again (ThrottlingException): delete it by hand")
    assert isinstance(caught.value.__cause__, BackendError)  # the error as it was, before the clean-up
    sagemaker = aws.client("sagemaker")
    assert sagemaker.list_models()["Models"] == []  # the model went even so
    assert [c["EndpointConfigName"] for c in sagemaker.list_endpoint_configs()["EndpointConfigs"]] == ["digits-ep"]
