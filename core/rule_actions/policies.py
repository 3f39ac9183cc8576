"""The action function's IAM policy, and the EventBridge pattern that routes events to it.

The policy grants exactly what ``lambda/rule_action.py`` does, on exactly what it touches:

- ``sagemaker:StopTrainingJob`` on ``training-job/<prefix>*`` (SageMaker writes training job
  ARNs in lower case, so the prefix is lower-cased too), only when the stop action is on;
- ``sns:Publish`` on the one topic, only when notifications are on;
- its own log group, as every function here (``core.lambdas.policies``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.lambdas.policies import LOG_ACTIONS, LOGS_SID, POLICY_VERSION, log_group_arns, partition
from core.rule_actions.entities import ActionsSpec
from entrypoints.rule_events import DETAIL_TYPE, SOURCE

STOP_SID = "StopMatchingTrainingJobs"
PUBLISH_SID = "PublishToOneTopic"


def training_jobs_arn(region: str, account: str, job_prefix: str) -> str:
    """The ARN pattern of the training jobs whose names start with ``job_prefix``."""
    return f"arn:{partition(region)}:sagemaker:{region}:{account}:training-job/{job_prefix.lower()}*"


def topic_arn(region: str, account: str, topic_name: str) -> str:
    return f"arn:{partition(region)}:sns:{region}:{account}:{topic_name}"


def action_policy(spec: ActionsSpec, *, region: str, account: str, function_name: str,
                  topic: str | None) -> dict[str, Any]:
    """The least-privilege inline policy of the action function's role (see the module docstring)."""
    statements: list[dict[str, Any]] = []
    if spec.stop_training and spec.allow_stop:
        statements.append({"Sid": STOP_SID, "Effect": "Allow", "Action": "sagemaker:StopTrainingJob",
                           "Resource": training_jobs_arn(region, account, spec.job_prefix)})
    if topic is not None:
        statements.append({"Sid": PUBLISH_SID, "Effect": "Allow", "Action": "sns:Publish", "Resource": topic})
    statements.append({"Sid": LOGS_SID, "Effect": "Allow", "Action": list(LOG_ACTIONS),
                       "Resource": log_group_arns(region, account, function_name)})
    return {"Version": POLICY_VERSION, "Statement": statements}


def explain(policy: Mapping[str, Any], spec: ActionsSpec) -> list[tuple[str, str]]:
    """One plain sentence per statement, keyed by its Sid (as the Lambda page shows its function's)."""
    reasons = {
        STOP_SID: "Calls `StopTrainingJob` on training jobs whose names start with the prefix, and nothing else: "
                  "no describe, no create, no other job. The ARN is in lower case, as SageMaker writes it.",
        PUBLISH_SID: "Publishes to this one SNS topic: no subscribing, no other topic.",
        LOGS_SID: "Writes the function's own log group `/aws/lambda/<function>` (the console reads each action's "
                  "outcome there).",
    }
    statements = list(policy.get("Statement", []))
    explained = [(str(s.get("Sid", "")), reasons.get(str(s.get("Sid", "")), "A statement this console did not "
                                                     "write.")) for s in statements]
    if spec.stop_training and not any(s.get("Sid") == STOP_SID for s in statements):
        explained.insert(0, ("(no stop)", "`sagemaker:StopTrainingJob` is not granted: the function's stop is "
                                          "denied (an implicit deny: nothing allows it)."))
    return explained


def event_pattern(job_prefix: str) -> dict[str, Any]:
    """The EventBridge pattern of fired-rule events for jobs whose names start with ``job_prefix``."""
    pattern: dict[str, Any] = {"source": [SOURCE], "detail-type": [DETAIL_TYPE]}
    if job_prefix:
        pattern["detail"] = {"job": [{"prefix": job_prefix}]}
    return pattern


def matches(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """Whether ``event`` matches ``pattern``, for the subset of EventBridge patterns written here:
    lists of exact values or ``{"prefix": ...}``, nested under object keys."""
    for key, wanted in pattern.items():
        value = event.get(key)
        if isinstance(wanted, Mapping):
            if not isinstance(value, Mapping) or not matches(wanted, value):
                return False
        elif not any(_accepts(choice, value) for choice in wanted):
            return False
    return True


def _accepts(choice: Any, value: Any) -> bool:
    if isinstance(choice, Mapping):
        return "prefix" in choice and isinstance(value, str) and value.startswith(str(choice["prefix"]))
    return bool(choice == value)
