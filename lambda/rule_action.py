"""An AWS Lambda function that acts on a fired Debugger rule: stops the training job, notifies a topic.

The EventBridge rule the Debugger page deploys routes the console's "Debugger Rule Fired"
events (source ``ml-console.debugger``) here. Self-contained like ``lambda_function.py``
(standard library and boto3); the same file runs on AWS and, unchanged, on the local backend,
where ``AWS_ENDPOINT_URL_SAGEMAKER`` and ``AWS_ENDPOINT_URL_SNS`` point boto3 at the console's
loopback stand-ins for those two calls.

Configuration (environment): ``STOP_TRAINING`` (``true``: call ``StopTrainingJob`` for events
whose rule has the StopTraining action, ``detail.stop_training``); ``TOPIC_ARN`` (publish every
event to this SNS topic; unset: no notification).

The event's ``detail``: ``job``, ``rule``, ``step``, ``tensor``, ``finding``, ``stop_training``.
Each action ends in an outcome: ``stopped``, ``notified``, ``already ended`` (the job is no
longer InProgress), ``not found``, ``denied`` (the role lacks the permission) or ``failed``. A
refused call is an outcome, not an error: EventBridge would retry an error twice, and a missing
permission does not come back on a retry. One log line per event, ``RULE_ACTION {json}``, which
the console reads back from the function's log; never a credential.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

LOG = logging.getLogger()
LOG.setLevel(logging.INFO)

SOURCE = "ml-console.debugger"
DETAIL_TYPE = "Debugger Rule Fired"
RECORD_PREFIX = "RULE_ACTION "
"""Starts the log line the console parses (``core.rule_actions.records``)."""
_DENIED = ("AccessDenied", "AccessDeniedException", "AuthorizationError", "UnauthorizedOperation")
_clients: dict[str, Any] = {}
"""boto3 clients, created on first use (tests put their own here)."""


class EventError(ValueError):
    """The event is not one this function acts on."""


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """Acts on one fired-rule event; returns (and logs) what each action did.

    Raises:
        EventError: the event is not a "Debugger Rule Fired" event with a job and a rule.
    """
    detail = _detail(event)
    actions = []
    if _flag("STOP_TRAINING") and detail.get("stop_training"):
        actions.append(_stop(detail))
    if os.environ.get("TOPIC_ARN"):
        actions.append(_notify(os.environ["TOPIC_ARN"], detail))
    record = {"event_id": event.get("id"), "job": detail["job"], "rule": detail["rule"],
              "step": detail.get("step"), "actions": actions}
    LOG.info("%s%s", RECORD_PREFIX, json.dumps(record, sort_keys=True))
    return record


def _detail(event: Any) -> dict[str, Any]:
    if not isinstance(event, dict) or event.get("source") != SOURCE or event.get("detail-type") != DETAIL_TYPE:
        raise EventError(f"not a {DETAIL_TYPE!r} event from {SOURCE}")
    detail = event.get("detail")
    if not isinstance(detail, dict) or not isinstance(detail.get("job"), str) or not isinstance(detail.get("rule"), str):
        raise EventError("the event's detail names no job and rule")
    return detail


def _stop(detail: dict[str, Any]) -> dict[str, str]:
    job = detail["job"]
    try:
        _client("sagemaker").stop_training_job(TrainingJobName=job)
    except Exception as exc:  # botocore's ClientError, without importing botocore here
        return _refused("StopTrainingJob", exc)
    return {"action": "StopTrainingJob", "outcome": "stopped",
            "message": f"asked SageMaker to stop {job}: {detail['rule']} fired at step {detail.get('step')}"}


def _notify(topic_arn: str, detail: dict[str, Any]) -> dict[str, str]:
    subject = f"{detail['rule']} fired on {detail['job']}"[:100]
    message = (f"Debugger rule {detail['rule']} found an issue in training job {detail['job']} at step "
               f"{detail.get('step')} (tensor {detail.get('tensor')}): {detail.get('finding')}")
    try:
        _client("sns").publish(TopicArn=topic_arn, Subject=subject, Message=message)
    except Exception as exc:
        return _refused("Publish", exc)
    return {"action": "Publish", "outcome": "notified", "message": f"published to {topic_arn}"}


def _refused(action: str, exc: Exception) -> dict[str, str]:
    error = getattr(exc, "response", {}).get("Error", {})
    code, message = str(error.get("Code") or type(exc).__name__), str(error.get("Message") or exc)
    if code in _DENIED or "not authorized" in message:
        outcome = "denied"
    elif "is in status" in message:
        outcome = "already ended"
    elif code in ("ResourceNotFound", "NotFound", "NotFoundException") or "not found" in message.lower():
        outcome = "not found"
    else:
        outcome = "failed"
    LOG.warning("%s refused (%s): %s", action, code, message)
    return {"action": action, "outcome": outcome, "message": f"{code}: {message}"}


def _flag(name: str) -> bool:
    return os.environ.get(name, "false").strip().lower() in ("true", "1", "yes")


def _client(service: str) -> Any:
    if service not in _clients:
        import boto3

        _clients[service] = boto3.client(service)
    return _clients[service]
