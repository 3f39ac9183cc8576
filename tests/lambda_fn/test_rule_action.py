"""lambda/rule_action.py: each action's outcome from SageMaker's and SNS's answers (botocore's Stubber)."""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from core.rule_actions.records import RECORD_PREFIX, parse_records
from entrypoints.rule_events import fired_entry
from tests.lambda_fn.conftest import load_function

TOPIC = "arn:aws:sns:us-east-1:123456789012:alerts"


@pytest.fixture
def action(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    module = load_function("rule_action.py")
    monkeypatch.setenv("STOP_TRAINING", "true")
    monkeypatch.setenv("TOPIC_ARN", TOPIC)
    return module


def _event(job: str = "run-1", *, stop: bool = True) -> dict[str, Any]:
    """The event as EventBridge delivers the entry the rule evaluator puts."""
    entry = fired_entry(job=job, rule="LossNotDecreasing", step=12, tensor="CrossEntropyLoss_output_0",
                        finding="the loss did not decrease", stop_training=stop)
    return {"version": "0", "id": "ev-1", "source": entry["Source"], "detail-type": entry["DetailType"],
            "account": "123456789012", "time": "2026-12-07T14:00:00Z", "region": "us-east-1", "resources": [],
            "detail": json.loads(entry["Detail"])}


def _stubbed(module: ModuleType, service: str) -> Stubber:
    client = boto3.client(service, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    module._clients[service] = client
    stubber = Stubber(client)
    stubber.activate()
    return stubber


def test_a_stop_rule_stops_the_job_and_notifies_the_topic(action: ModuleType, caplog: pytest.LogCaptureFixture) -> None:
    sagemaker, sns = _stubbed(action, "sagemaker"), _stubbed(action, "sns")
    sagemaker.add_response("stop_training_job", {}, {"TrainingJobName": "run-1"})
    sns.add_response("publish", {"MessageId": "m-1"}, {
        "TopicArn": TOPIC, "Subject": "LossNotDecreasing fired on run-1",
        "Message": "Debugger rule LossNotDecreasing found an issue in training job run-1 at step 12 (tensor "
                   "CrossEntropyLoss_output_0): the loss did not decrease"})
    with caplog.at_level("INFO"):
        record = action.lambda_handler(_event(), None)
    assert [(a["action"], a["outcome"]) for a in record["actions"]] == [("StopTrainingJob", "stopped"),
                                                                       ("Publish", "notified")]
    sagemaker.assert_no_pending_responses()
    logged = parse_records([m for m in caplog.messages if m.startswith(RECORD_PREFIX)])
    assert [(r.event_id, r.job, r.rule, r.step) for r in logged] == [("ev-1", "run-1", "LossNotDecreasing", 12)]


def test_a_rule_without_stop_training_only_notifies(action: ModuleType) -> None:
    _stubbed(action, "sagemaker")  # any call would fail: none is stubbed
    _stubbed(action, "sns").add_response("publish", {"MessageId": "m-2"})
    record = action.lambda_handler(_event(stop=False), None)
    assert [a["action"] for a in record["actions"]] == ["Publish"]


@pytest.mark.parametrize(("code", "message", "outcome"), [
    ("ValidationException", "The request was rejected because the training job is in status Completed.",
     "already ended"),
    ("AccessDeniedException", "User: arn:aws:sts::123456789012:assumed-role/r/s is not authorized to perform: "
                              "sagemaker:StopTrainingJob", "denied"),
    ("ValidationException", "Requested resource not found.", "not found"),
    ("ThrottlingException", "Rate exceeded", "failed"),
])
def test_a_refused_stop_is_an_outcome_not_an_error(action: ModuleType, monkeypatch: pytest.MonkeyPatch, code: str,
                                                    message: str, outcome: str) -> None:
    monkeypatch.delenv("TOPIC_ARN")
    _stubbed(action, "sagemaker").add_client_error("stop_training_job", service_error_code=code,
                                                   service_message=message, http_status_code=400)
    record = action.lambda_handler(_event(), None)
    assert record["actions"] == [{"action": "StopTrainingJob", "outcome": outcome, "message": f"{code}: {message}"}]


def test_a_denied_publish_is_shown_as_denied(action: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOP_TRAINING", "false")
    _stubbed(action, "sns").add_client_error("publish", service_error_code="AuthorizationError",
                                             service_message="User is not authorized to perform: SNS:Publish",
                                             http_status_code=403)
    assert action.lambda_handler(_event(), None)["actions"][0]["outcome"] == "denied"


@pytest.mark.parametrize("event", [None, {"source": "aws.s3"}, {**_event(), "detail-type": "Other"},
                                   {**_event(), "detail": {"rule": "X"}}])
def test_an_event_that_is_not_a_fired_rule_is_refused(action: ModuleType, event: Any) -> None:
    with pytest.raises(action.EventError):
        action.lambda_handler(event, None)


def test_the_console_reads_the_prefix_the_function_writes(action: ModuleType) -> None:
    assert action.RECORD_PREFIX == RECORD_PREFIX
