"""The rule actions on AWS: an EventBridge rule, the action function (Lambda), its role (IAM), a topic (SNS).

Deploy is create-or-update, in dependency order: the topic (and an e-mail subscription, which AWS
confirms by mail), the role and its one inline policy, the function (the Lambda page's role and
function mechanics, ``AwsFunctionManager.put_role`` and ``put_function``), the EventBridge rule on the default bus
with the function as its target, and Lambda's resource policy that lets EventBridge invoke it
from that rule only. The spec is kept in the rule's description, so ``describe`` needs nothing
but AWS. A deploy that fails removes what it created. Outcomes come from the function's log
group (``FilterLogEvents`` on ``RULE_ACTION``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from core.aws import aws_errors, roll_back, with_leftovers
from core.errors import BackendError, NotFoundError
from core.lambdas._aws import POLICY_NAME, AwsFunctionManager, role_name_for
from core.lambdas.bundle import LAMBDA_DIR, build_package
from core.lambdas.entities import RUNTIME
from core.lambdas.policies import log_group_name, partition
from core.rule_actions._base import RuleActions
from core.rule_actions.entities import FUNCTION_NAME, RULE_NAME, ActionRecord, ActionsSpec, DeployedActions
from core.rule_actions.policies import action_policy, event_pattern
from core.rule_actions.records import RECORD_PREFIX, parse_records
from entrypoints.rule_events import DEFAULT_BUS, sent_event_id

if TYPE_CHECKING:
    from core.aws import AwsSession

HANDLER = "rule_action.lambda_handler"
TARGET_ID = "rule-action-function"
PERMISSION_ID = "events-invoke-rule-actions"
DESCRIPTION_PREFIX = "sm-console rule actions "


class AwsRuleActions(RuleActions):
    """The chain on AWS, through one boto3 session."""

    backend_name = "aws"
    evaluates_in_job = True

    def __init__(self, session: AwsSession, functions: AwsFunctionManager) -> None:
        self.session = session
        self.functions = functions

    @property
    def runs_where(self) -> str:  # type: ignore[override]
        return (f"On AWS: fired rules go to EventBridge's default bus in {self.session.region}; a rule there invokes "
                "the action function on AWS Lambda, with its own least-privilege role.")

    # --- deploy ----------------------------------------------------------------------------

    def deploy(self, spec: ActionsSpec) -> DeployedActions:
        created: list[tuple[str, Callable[[], object]]] = []  # undone, newest first, if the deploy fails
        try:
            self._deploy(spec, created)
        except BaseException as exc:
            error = with_leftovers(exc, roll_back(created))
            if error is exc:
                raise
            raise error from exc
        deployed = self.describe()
        assert deployed is not None
        return deployed

    def _deploy(self, spec: ActionsSpec, created: list[tuple[str, Callable[[], object]]]) -> None:
        lam, events = self.session.client("lambda"), self.session.client("events")
        topic = self._topic(spec)  # first: the policy names it (CreateTopic is idempotent; a topic stays)
        policy = action_policy(spec, region=self.session.region, account=self.functions.account,
                               function_name=FUNCTION_NAME, topic=topic)
        role_arn = self.functions.put_role(FUNCTION_NAME, policy, created)
        variables = {"STOP_TRAINING": "true" if spec.stop_training else "false"}
        if topic:
            variables["TOPIC_ARN"] = topic
        settings: dict[str, Any] = {
            "Role": role_arn, "Handler": HANDLER, "Runtime": RUNTIME, "Timeout": 30, "MemorySize": 128,
            "Environment": {"Variables": variables},
            "Description": "Acts on fired Debugger rules: stops the training job, notifies a topic (sm-console)",
        }
        self.functions.put_function(FUNCTION_NAME, build_package(LAMBDA_DIR).data, settings, created)
        with aws_errors(f"putting EventBridge rule {RULE_NAME}"):
            rule_arn = events.put_rule(
                Name=RULE_NAME, EventBusName=DEFAULT_BUS, State="ENABLED",
                EventPattern=json.dumps(event_pattern(spec.job_prefix)),
                Description=DESCRIPTION_PREFIX + json.dumps(asdict(spec), sort_keys=True))["RuleArn"]
        created.append((f"EventBridge rule {RULE_NAME}", lambda: events.delete_rule(Name=RULE_NAME)))
        function_arn = lam.get_function(FunctionName=FUNCTION_NAME)["Configuration"]["FunctionArn"]
        with aws_errors(f"pointing EventBridge rule {RULE_NAME} at {FUNCTION_NAME}"):
            events.put_targets(Rule=RULE_NAME, EventBusName=DEFAULT_BUS,
                               Targets=[{"Id": TARGET_ID, "Arn": function_arn}])
        created.append((f"the target of EventBridge rule {RULE_NAME}",
                        lambda: events.remove_targets(Rule=RULE_NAME, Ids=[TARGET_ID])))
        self._allow_invoke_from(rule_arn)

    def _topic(self, spec: ActionsSpec) -> str | None:
        """The topic's ARN (CreateTopic is idempotent), with the e-mail subscribed; None without a topic."""
        if spec.topic_name is None:
            return None
        sns = self.session.client("sns")
        with aws_errors(f"creating SNS topic {spec.topic_name}"):
            topic = str(sns.create_topic(Name=spec.topic_name, Tags=[{"Key": "managed-by", "Value": "sm-console"}])
                        ["TopicArn"])
        if spec.email:
            with aws_errors(f"subscribing {spec.email} to {spec.topic_name}"):
                sns.subscribe(TopicArn=topic, Protocol="email", Endpoint=spec.email)
        return topic

    def _allow_invoke_from(self, rule_arn: str) -> None:
        """Lambda's resource policy: EventBridge may invoke the function, from this rule only."""
        lam = self.session.client("lambda")
        try:
            with aws_errors(f"reading the resource policy of {FUNCTION_NAME}"):
                statements = json.loads(lam.get_policy(FunctionName=FUNCTION_NAME)["Policy"]).get("Statement", [])
        except NotFoundError:
            statements = []
        if any(s.get("Sid") == PERMISSION_ID for s in statements):
            return
        with aws_errors(f"letting EventBridge invoke {FUNCTION_NAME}"):
            lam.add_permission(FunctionName=FUNCTION_NAME, StatementId=PERMISSION_ID, Action="lambda:InvokeFunction",
                               Principal="events.amazonaws.com", SourceArn=rule_arn)

    # --- describe, remove ----------------------------------------------------------------------

    def describe(self) -> DeployedActions | None:
        events, iam = self.session.client("events"), self.session.client("iam")
        try:
            with aws_errors(f"EventBridge rule {RULE_NAME}"):
                rule = events.describe_rule(Name=RULE_NAME, EventBusName=DEFAULT_BUS)
            with aws_errors(f"Lambda function {FUNCTION_NAME}"):
                config = self.session.client("lambda").get_function(FunctionName=FUNCTION_NAME)["Configuration"]
        except NotFoundError:
            return None
        description = str(rule.get("Description") or "")
        if not description.startswith(DESCRIPTION_PREFIX):
            return None
        spec = ActionsSpec(**json.loads(description.removeprefix(DESCRIPTION_PREFIX)))
        role_name = role_name_for(FUNCTION_NAME)
        try:
            with aws_errors(f"the inline policy of IAM role {role_name}"):
                policy = _document(iam.get_role_policy(RoleName=role_name, PolicyName=POLICY_NAME)["PolicyDocument"])
            with aws_errors(f"IAM role {role_name}"):
                trust = _document(iam.get_role(RoleName=role_name)["Role"]["AssumeRolePolicyDocument"])
        except NotFoundError:
            policy, trust = {"Version": "2012-10-17", "Statement": []}, {}
        variables = (config.get("Environment") or {}).get("Variables") or {}
        region = self.session.region
        bus_arn = f"arn:{partition(region)}:events:{region}:{self.functions.account}:event-bus/{DEFAULT_BUS}"
        return DeployedActions(
            spec=spec, backend=self.backend_name, bus=DEFAULT_BUS, function_name=FUNCTION_NAME,
            function_arn=config["FunctionArn"], role_arn=config["Role"], policy=policy, trust_policy=trust,
            rule_arn=rule["Arn"], event_pattern=json.loads(rule["EventPattern"]), topic_arn=variables.get("TOPIC_ARN"),
            job_statement={"Sid": "PutRuleEvents", "Effect": "Allow", "Action": "events:PutEvents",
                           "Resource": bus_arn})

    def remove(self) -> None:
        events, lam, iam = (self.session.client(s) for s in ("events", "lambda", "iam"))
        role_name = role_name_for(FUNCTION_NAME)
        steps: list[tuple[str, Callable[[], object]]] = [
            (f"the target of EventBridge rule {RULE_NAME}", lambda: events.remove_targets(Rule=RULE_NAME,
                                                                                          Ids=[TARGET_ID])),
            (f"EventBridge rule {RULE_NAME}", lambda: events.delete_rule(Name=RULE_NAME)),
            (f"Lambda function {FUNCTION_NAME}", lambda: lam.delete_function(FunctionName=FUNCTION_NAME)),
            (f"the inline policy of IAM role {role_name}",
             lambda: iam.delete_role_policy(RoleName=role_name, PolicyName=POLICY_NAME)),
            (f"IAM role {role_name}", lambda: iam.delete_role(RoleName=role_name)),
        ]
        left = roll_back(list(reversed(steps)))  # roll_back undoes newest first: this order, target first
        if left:
            raise BackendError(f"removing the rule actions: {left}")

    # --- the bus and the outcomes -------------------------------------------------------------

    def put_event(self, entry: dict[str, Any]) -> str:
        with aws_errors("putting the event on EventBridge"):
            response = self.session.client("events").put_events(Entries=[entry])
        try:
            return sent_event_id(response)
        except RuntimeError as exc:
            raise BackendError(f"EventBridge refused the event: {exc}") from None

    def history(self, job_name: str | None = None, *, since: float | None = None) -> list[ActionRecord]:
        logs = self.session.client("logs")
        pattern = f'"{RECORD_PREFIX.strip()}"'  # the job is filtered here: moto matches one term only
        window = {"startTime": int(since * 1000)} if since is not None else {}
        records: list[ActionRecord] = []
        try:
            with aws_errors(f"reading the log group of {FUNCTION_NAME}"):
                pages = logs.get_paginator("filter_log_events").paginate(
                    logGroupName=log_group_name(FUNCTION_NAME), filterPattern=pattern, **window)
                for page in pages:
                    for event in page.get("events", []):
                        records += parse_records([event["message"]], default_time=event["timestamp"] / 1000)
        except NotFoundError:  # the function never ran: Lambda creates its log group on the first run
            return []
        return [r for r in records if job_name is None or r.job == job_name]


def _document(document: Any) -> dict[str, Any]:
    """A policy document as a dict (boto3 returns IAM's URL-decoded JSON as a dict already)."""
    return dict(json.loads(document)) if isinstance(document, str) else dict(document)
