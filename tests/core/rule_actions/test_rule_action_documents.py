"""The rule actions' documents: spec validation, policy statements, the event pattern and its matching,
the outcome records read from the function's log and the fired-rules table."""

from __future__ import annotations

import json

import pytest

from core.debugger import RuleEvent, RuleResult, RuleStatus
from core.errors import InvalidInputError
from core.rule_actions import ActionOutcome, ActionRecord, ActionsSpec
from core.rule_actions.history import fired_rules_table
from core.rule_actions.policies import action_policy, event_pattern, explain, matches
from core.rule_actions.records import parse_records
from entrypoints.rule_events import fired_entry, sent_event_id


@pytest.mark.parametrize(("fields", "error"), [
    ({"job_prefix": "bad prefix"}, "job name prefix"),
    ({"topic_name": "a:b"}, "SNS topic"),
    ({"topic_name": "t", "email": "nobody"}, "is not an address"),
    ({"email": "a@b.io"}, "through an SNS topic"),
    ({"stop_training": False}, "choose an action"),
])
def test_a_spec_that_cannot_be_deployed_is_refused(fields: dict[str, object], error: str) -> None:
    with pytest.raises(InvalidInputError, match=error):
        ActionsSpec(**fields)  # type: ignore[arg-type]


def test_the_policy_grants_each_action_on_its_own_resource_only() -> None:
    spec = ActionsSpec(job_prefix="Exp-", topic_name="t")
    policy = action_policy(spec, region="eu-west-1", account="123456789012", function_name="f",
                           topic="arn:aws:sns:eu-west-1:123456789012:t")
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    assert by_sid["StopMatchingTrainingJobs"]["Resource"] == \
        "arn:aws:sagemaker:eu-west-1:123456789012:training-job/exp-*"  # SageMaker's ARNs are lower case
    assert by_sid["PublishToOneTopic"] == {"Sid": "PublishToOneTopic", "Effect": "Allow", "Action": "sns:Publish",
                                           "Resource": "arn:aws:sns:eu-west-1:123456789012:t"}
    assert [sid for sid, _ in explain(policy, spec)] == ["StopMatchingTrainingJobs", "PublishToOneTopic",
                                                         "WriteOwnLogs"]
    denied = ActionsSpec(allow_stop=False)
    bare = action_policy(denied, region="eu-west-1", account="123456789012", function_name="f", topic=None)
    assert explain(bare, denied)[0][0] == "(no stop)"


def test_the_pattern_matches_fired_rules_of_prefixed_jobs_only() -> None:
    def event(job: str, source: str = "ml-console.debugger") -> dict[str, object]:
        entry = fired_entry(job=job, rule="R", step=1, tensor=None, finding="f", stop_training=True)
        return {"source": source, "detail-type": entry["DetailType"], "detail": json.loads(entry["Detail"])}

    assert matches(event_pattern("exp-"), event("exp-1"))
    assert not matches(event_pattern("exp-"), event("other"))
    assert not matches(event_pattern(""), event("exp-1", source="aws.s3"))
    assert matches(event_pattern(""), event("anything"))


def test_put_events_answers_give_the_id_or_the_refusal() -> None:
    assert sent_event_id({"FailedEntryCount": 0, "Entries": [{"EventId": "e-1"}]}) == "e-1"
    with pytest.raises(RuntimeError, match="AccessDeniedException: not allowed"):
        sent_event_id({"FailedEntryCount": 1, "Entries": [{"ErrorCode": "AccessDeniedException",
                                                           "ErrorMessage": "not allowed"}]})


def test_records_are_read_from_lambda_log_lines_and_broken_ones_skipped() -> None:
    line = ('[INFO]\t2026-12-07T14:00:05.250Z\treq-1\tRULE_ACTION {"actions": [{"action": "StopTrainingJob", '
            '"message": "m", "outcome": "stopped"}], "event_id": "e-1", "job": "j", "rule": "R", "step": 4}')
    [record] = parse_records(["START RequestId: req-1", line, "RULE_ACTION {not json", "RULE_ACTION {}"])
    assert record == ActionRecord(at=1796652005.25, event_id="e-1", job="j", rule="R", step=4,
                                  outcomes=(ActionOutcome("StopTrainingJob", "stopped", "m"),))


def test_the_fired_rules_table_joins_rules_events_and_outcomes() -> None:
    def rule(name: str, status: RuleStatus = RuleStatus.ISSUES_FOUND) -> RuleResult:
        return RuleResult("j", name, status, 0.0, step=7, tensor="loss", stop_training=True, message="found")

    events = [RuleEvent("j", "A", 1.0, "default", {}, event_id="e-1"), RuleEvent("j", "B", 2.0, "default", {},
                                                                                 error="AccessDenied: no")]
    records = [ActionRecord(3.0, "e-1", "j", "A", 7, (ActionOutcome("StopTrainingJob", "stopped", "ok"),))]
    table = fired_rules_table([rule("A"), rule("B"), rule("C"), rule("D", RuleStatus.NO_ISSUES_FOUND)], events,
                              records)
    assert table[["rule", "action", "outcome"]].values.tolist() == [
        ["A", "StopTrainingJob", "stopped"], ["B", "PutEvents", "refused"],
        ["C", "StopTraining by the evaluator", "no event (rule actions were not deployed at launch)"]]
