"""The rule actions on this machine: a local event bus, the action zip in its own process.

Everything lives in ``<workspace>/rule-actions/``: ``actions.json`` (what is deployed: the
spec, the routing rule's pattern, the topic), ``function.zip`` and ``code/`` (the same package
AWS Lambda gets, unpacked), ``logs.txt`` (the function's "log group"), ``events.jsonl`` (every
event put on the bus, as EventBridge delivers it) and ``topics/<name>.jsonl`` (the messages
published to each local topic, in place of an inbox). The role lives in local IAM (``core.lambdas._local_iam``).

:meth:`LocalRuleActions.put_event` is the bus: it records the event and, when the deployed
rule's pattern matches, runs the function on it at once in a fresh process (``_bootstrap.py``),
with a session of its role and ``AWS_ENDPOINT_URL_SAGEMAKER`` / ``AWS_ENDPOINT_URL_SNS`` at a
loopback :class:`~core.rule_actions._control.ControlPlane` that checks the role's policy and
stops the local job (as ``LocalJobRunner.stop`` does) or appends to the topic's file. EventBridge
invokes a target asynchronously, seconds later; here the delivery ends before ``put_event``
returns, so a test or a benchmark sees the whole chain in one call.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import uuid
import zipfile
from dataclasses import asdict
from io import BytesIO
from pathlib import Path
from typing import Any

from core.endpoints._local import IAM_FOLDER, LOCAL_ACCOUNT_ID
from core.errors import BackendError, NotFoundError
from core.job_environment import require_ready
from core.lambdas._local import append_log, run_runtime, runtime_environment
from core.lambdas._local_iam import LocalIam
from core.lambdas.bundle import LAMBDA_DIR, build_package
from core.lambdas.policies import trust_policy
from core.rule_actions._base import RuleActions
from core.rule_actions._control import ControlPlane, ServiceError
from core.rule_actions.entities import FUNCTION_NAME, RULE_NAME, ActionRecord, ActionsSpec, DeployedActions
from core.rule_actions.policies import action_policy, event_pattern, matches, topic_arn
from core.rule_actions.records import parse_records
from core.training import JobRunner
from core.types import JobStatus
from entrypoints.rule_events import DEFAULT_BUS

HANDLER = "rule_action.lambda_handler"
POLICY_NAME = "least-privilege"
TIMEOUT_S = 30
MEMORY_MB = 128
BACKSTOP_S = 30.0


class LocalRuleActions(RuleActions):
    """The chain run locally against the local job runner.

    Args:
        workspace: the workspace folder (``rule-actions/`` and ``iam/`` inside).
        job_python: the interpreter that stands in for Lambda's Python runtime (has boto3).
        runner: the local training jobs (StopTrainingJob stops them).
        region: the region the function "runs" in; its policy names it.
    """

    backend_name = "local"
    evaluates_in_job = False
    runs_where = ("Locally, a fired rule's event goes to a local bus in the console's workspace; the same action "
                  "zip runs in its own process with a local role, whose policy is checked on every call.")

    def __init__(self, workspace: Path, job_python: Path, runner: JobRunner, *, region: str = "us-east-1",
                 source_dir: Path = LAMBDA_DIR) -> None:
        self.root = Path(workspace) / "rule-actions"
        self.iam = LocalIam(Path(workspace) / IAM_FOLDER, LOCAL_ACCOUNT_ID)
        self.job_python = Path(job_python)
        self.runner = runner
        self.region = region
        self.account = LOCAL_ACCOUNT_ID
        self.source_dir = Path(source_dir)

    @property
    def _role_name(self) -> str:
        return f"{FUNCTION_NAME}-role"

    # --- deploy, describe, remove --------------------------------------------------------------

    def deploy(self, spec: ActionsSpec) -> DeployedActions:
        package = build_package(self.source_dir)
        topic = topic_arn(self.region, self.account, spec.topic_name) if spec.topic_name else None
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".code-", dir=self.root))
            with zipfile.ZipFile(BytesIO(package.data)) as archive:
                archive.extractall(staging)
            shutil.rmtree(self.root / "code", ignore_errors=True)
            staging.rename(self.root / "code")
            (self.root / "function.zip").write_bytes(package.data)
            if spec.topic_name:
                (self.root / "topics").mkdir(exist_ok=True)
                (self.root / "topics" / f"{spec.topic_name}.jsonl").touch()
        except OSError as exc:
            raise BackendError(f"cannot install the rule actions in {self.root}: {exc}") from None
        policy = action_policy(spec, region=self.region, account=self.account, function_name=FUNCTION_NAME,
                               topic=topic)
        self.iam.put_role(self._role_name, trust_policy(), POLICY_NAME, policy)
        LocalIam._write(self.root / "actions.json", {
            "spec": asdict(spec), "event_pattern": event_pattern(spec.job_prefix), "topic_arn": topic,
            "region": self.region, "deployed_at": time.time()})
        deployed = self.describe()
        assert deployed is not None
        return deployed

    def describe(self) -> DeployedActions | None:
        path = self.root / "actions.json"
        if not path.is_file():
            return None
        try:
            record = json.loads(path.read_text())
            role = self.iam.get_role(self._role_name)
        except (OSError, ValueError, NotFoundError) as exc:
            raise BackendError(f"cannot read the local rule actions in {self.root}: {exc}") from None
        return DeployedActions(
            spec=ActionsSpec(**record["spec"]), backend=self.backend_name, bus=DEFAULT_BUS,
            function_name=FUNCTION_NAME,
            function_arn=f"arn:aws:lambda:{record['region']}:{self.account}:function:{FUNCTION_NAME}",
            role_arn=role["Arn"], policy=role["RolePolicies"].get(POLICY_NAME, {}),
            trust_policy=role["AssumeRolePolicyDocument"],
            rule_arn=f"arn:aws:events:{record['region']}:{self.account}:rule/{RULE_NAME}",
            event_pattern=record["event_pattern"], topic_arn=record.get("topic_arn"))

    def remove(self) -> None:
        if self.describe() is None:
            return
        try:
            self.iam.delete_role(self._role_name)
        except NotFoundError:
            pass
        for path in ("actions.json", "function.zip"):
            (self.root / path).unlink(missing_ok=True)
        shutil.rmtree(self.root / "code", ignore_errors=True)

    # --- the bus -----------------------------------------------------------------------------

    def put_event(self, entry: dict[str, Any]) -> str:
        try:
            detail = json.loads(entry["Detail"])
        except (KeyError, TypeError, ValueError):
            raise BackendError("the event has no JSON Detail") from None
        event = {"version": "0", "id": str(uuid.uuid4()), "detail-type": entry.get("DetailType"),
                 "source": entry.get("Source"), "account": self.account,
                 "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "region": self.region,
                 "resources": list(entry.get("Resources") or []), "detail": detail}
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with open(self.root / "events.jsonl", "a", encoding="utf-8") as log:
                log.write(json.dumps(event, sort_keys=True) + "\n")
        except OSError as exc:
            raise BackendError(f"the local bus could not record the event: {exc}") from None
        deployed = self.describe()
        if deployed is not None and matches(deployed.event_pattern, event):
            self._deliver(deployed, event)
        return str(event["id"])

    def _deliver(self, deployed: DeployedActions, event: dict[str, Any]) -> None:
        """Runs the function on ``event`` (its log lines land in ``logs.txt``, as on AWS)."""
        require_ready(self.job_python)
        region = deployed.function_arn.split(":")[3]  # where it was deployed, whoever delivers
        variables = {"STOP_TRAINING": "true" if deployed.spec.stop_training else "false"}
        if deployed.topic_arn:
            variables["TOPIC_ARN"] = deployed.topic_arn
        with ControlPlane(self.iam.iam_dir, self.account, region, stop_job=self._stop_job,
                          publish=self._publish) as control, \
                self.iam.session(self._role_name, FUNCTION_NAME) as credentials:
            variables |= {"AWS_ENDPOINT_URL_SAGEMAKER": control.url, "AWS_ENDPOINT_URL_SNS": control.url}
            env = runtime_environment(FUNCTION_NAME, deployed.function_arn, self.root / "code", region,
                                      credentials, memory_mb=MEMORY_MB, timeout_s=TIMEOUT_S, handler=HANDLER,
                                      variables=variables)
            try:
                _outcome, lines = run_runtime(self.job_python, self.root / "code", json.dumps(event).encode(), env,
                                              TIMEOUT_S + BACKSTOP_S)
            except subprocess.TimeoutExpired:
                lines = [f"the local runtime did not exit within {TIMEOUT_S + BACKSTOP_S:.0f} s and was killed"]
        append_log(self.root / "logs.txt", lines)

    def _stop_job(self, name: str) -> None:
        """StopTrainingJob on a local job, answered as SageMaker answers."""
        try:
            job = self.runner.describe(name)
        except NotFoundError:
            raise ServiceError(400, "ValidationException", "Requested resource not found.") from None
        if job.status.is_terminal or job.status is JobStatus.STOPPING:
            raise ServiceError(400, "ValidationException",
                               f"The request was rejected because the training job is in status {job.status.value}.")
        self.runner.stop(name)

    def _publish(self, topic: str, subject: str, message: str) -> str:
        path = self.root / "topics" / f"{topic.rsplit(':', 1)[-1]}.jsonl"
        if not path.is_file():
            raise ServiceError(404, "NotFound", "Topic does not exist")
        message_id = str(uuid.uuid4())
        with open(path, "a", encoding="utf-8") as log:
            log.write(json.dumps({"MessageId": message_id, "Subject": subject, "Message": message,
                                  "Timestamp": time.time()}) + "\n")
        return message_id

    # --- what the function did -----------------------------------------------------------------

    def history(self, job_name: str | None = None, *, since: float | None = None) -> list[ActionRecord]:
        path = self.root / "logs.txt"
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines() if path.exists() else []
        except OSError as exc:
            raise BackendError(f"cannot read {path}: {exc}") from None
        return [r for r in parse_records(lines)
                if (job_name is None or r.job == job_name) and (since is None or r.at >= since)]
