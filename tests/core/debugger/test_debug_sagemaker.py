"""SageMaker's own DebugRuleEvaluationStatuses, read with botocore's Stubber (moto lacks them)."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber

from core.debugger import RuleStatus
from core.debugger.sagemaker import sagemaker_rule_statuses
from core.errors import NotFoundError
from tests.core.aws_fixtures import no_network_fixture  # noqa: F401  (autouse: no network)

JOB = "train-20261125-1"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
DESCRIBED = {
    "TrainingJobName": JOB,
    "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{JOB}",
    "ModelArtifacts": {"S3ModelArtifacts": "s3://b/m.tar.gz"},
    "TrainingJobStatus": "Completed",
    "SecondaryStatus": "Completed",
    "AlgorithmSpecification": {"TrainingInputMode": "File", "TrainingImage": "image"},
    "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
    "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    "CreationTime": NOW,
}


@pytest.fixture
def client() -> object:
    return boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="AKIAFAKE", aws_secret_access_key="x")


def test_statuses_are_mapped(client: object) -> None:
    statuses = [
        {"RuleConfigurationName": "LossNotDecreasing", "RuleEvaluationJobArn":
            "arn:aws:sagemaker:us-east-1:123456789012:processing-job/lossnotdecreasing-abc",
         "RuleEvaluationStatus": "IssuesFound", "StatusDetails": "loss did not decrease", "LastModifiedTime": NOW},
        {"RuleConfigurationName": "VanishingGradient", "RuleEvaluationStatus": "NoIssuesFound",
         "LastModifiedTime": NOW},
    ]
    with Stubber(client) as stub:  # type: ignore[arg-type]
        stub.add_response("describe_training_job", {**DESCRIBED, "DebugRuleEvaluationStatuses": statuses},
                          {"TrainingJobName": JOB})
        results = sagemaker_rule_statuses(client, JOB)
        stub.assert_no_pending_responses()
    assert [(r.rule, r.status, r.message) for r in results] == [
        ("LossNotDecreasing", RuleStatus.ISSUES_FOUND, "loss did not decrease"),
        ("VanishingGradient", RuleStatus.NO_ISSUES_FOUND, None),
    ]
    assert "lossnotdecreasing-abc" in (results[0].meaning or "") and results[0].updated_at == NOW.timestamp()


def test_a_job_without_debugger_rules_has_none(client: object) -> None:
    with Stubber(client) as stub:  # type: ignore[arg-type]
        stub.add_response("describe_training_job", DESCRIBED, {"TrainingJobName": JOB})
        assert sagemaker_rule_statuses(client, JOB) == []
        stub.assert_no_pending_responses()


def test_unknown_job_is_not_found(client: object) -> None:
    with Stubber(client) as stub:  # type: ignore[arg-type]
        stub.add_client_error("describe_training_job", "ValidationException", "Requested resource not found.")
        with pytest.raises(NotFoundError):
            sagemaker_rule_statuses(client, JOB)
        stub.assert_no_pending_responses()
