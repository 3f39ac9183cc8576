"""SageMaker's own rule evaluations of a training job (accounts that still have Debugger).

``DescribeTrainingJob`` lists ``DebugRuleEvaluationStatuses`` when a job ran with SageMaker
Debugger rules; they are shown beside the console's own evaluations.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core.aws import aws_errors
from core.debugger.entities import RuleResult, RuleStatus

_STATUS = {status.value: status for status in RuleStatus}


def sagemaker_rule_statuses(sagemaker_client: Any, job_name: str) -> list[RuleResult]:
    """The SageMaker Debugger rule statuses of a job (empty when it ran without them).

    Raises:
        NotFoundError: no such training job.
        BackendError, CredentialsError: the call failed.
    """
    with aws_errors(f"training job {job_name}"):
        described = sagemaker_client.describe_training_job(TrainingJobName=job_name)
    results = []
    for entry in described.get("DebugRuleEvaluationStatuses") or []:
        modified = entry.get("LastModifiedTime")
        results.append(RuleResult(
            job_name=job_name,
            rule=entry.get("RuleConfigurationName", "?"),
            status=_STATUS.get(entry.get("RuleEvaluationStatus", ""), RuleStatus.ERROR),
            updated_at=modified.timestamp() if isinstance(modified, datetime) else 0.0,
            message=entry.get("StatusDetails"),
            meaning="Evaluated by SageMaker Debugger (rule job "
                    f"{entry.get('RuleEvaluationJobArn', 'unknown').rsplit('/', 1)[-1]}).",
        ))
    return results
