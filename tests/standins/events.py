"""A loopback EventBridge in front of a moto server: moto's rules and targets, and PutEvents that delivers.

moto 5.2.5 keeps rules and targets, but its ``PutEvents`` cannot deliver to a Lambda target
(it fails on any matching rule: ``jsonpath_ng`` is missing, and Lambda targets are not
implemented). :class:`EventsStandIn` is a small HTTP proxy on 127.0.0.1: point the ``events``
service at it (``AWS_ENDPOINT_URL_EVENTBRIDGE``). It forwards every request to moto unchanged, except
``PutEvents``, which it answers as EventBridge does:

- the request is checked against botocore's model (at most 10 entries, each with its fields);
- each entry becomes an event (``version``, a new ``id``, ``detail-type``, ``source``,
  ``account``, ``time``, ``region``, ``resources``, ``detail``) with an ``EventId`` in the answer;
  an entry whose ``Detail`` is not a JSON object fails with ``MalformedDetail``;
- the event goes to every ENABLED rule of its bus whose pattern matches (moto's own
  ``EventPattern``, read from moto's ``ListRules``), and to each Lambda target of that rule
  (``ListTargetsByRule``) *when the function's resource policy lets ``events.amazonaws.com``
  invoke it from that rule* (``GetPolicy``, ``SourceArn``), as EventBridge needs. Without it the
  delivery fails, as on AWS, silently for the sender: it is recorded in :attr:`undelivered`.
- delivery is asynchronous, as on AWS: a thread invokes the function through the Lambda stand-in
  (``InvocationType=RequestResponse`` there, which runs the code); :meth:`wait` waits for the
  deliveries in flight.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

from moto.events.models import EventPattern

from tests.standins.runtime import Answer, LoopbackService, StandInError, _check, credential_scope

TARGET_PREFIX = "AWSEvents."


class EventsStandIn(LoopbackService):
    """EventBridge on loopback: moto for everything but PutEvents (see the module docstring).

    Args:
        upstream: moto's URL.
        lambda_url: the Lambda stand-in's URL (targets are invoked there).
    """

    thread_name = "events-stand-in"

    def __init__(self, upstream: str, lambda_url: str, *, region: str = "us-east-1") -> None:
        super().__init__(upstream, "events")
        self.lambda_url = lambda_url
        self.region = region
        self.undelivered: list[str] = []
        """Why a matching event did not reach a target (no permission, a failed invocation)."""
        self._deliveries: list[threading.Thread] = []
        self._lock = threading.Lock()

    def __enter__(self) -> EventsStandIn:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wait()
        self.stop()

    def reset(self) -> None:
        self.wait()
        self.undelivered.clear()
        self.errors.clear()

    def wait(self, timeout_s: float = 120.0) -> None:
        """Waits for the deliveries in flight."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            deliveries, self._deliveries = self._deliveries, []
        for delivery in deliveries:
            delivery.join(max(0.0, deadline - time.monotonic()))

    def answer(self, method: str, path: str, body: bytes, headers: Mapping[str, str]) -> Answer:
        target = {k.lower(): v for k, v in headers.items()}.get("x-amz-target", "")
        if target != f"{TARGET_PREFIX}PutEvents":
            return self.forward(method, path, body, headers)
        scope = credential_scope({k.lower(): v for k, v in headers.items()}.get("authorization"))
        region = scope[1] if scope else self.region
        request = json.loads(body or b"{}")
        operation = self.model.operation_model("PutEvents")
        try:
            _check(operation.input_shape, request, "a PutEvents request")
        except AssertionError as exc:
            raise StandInError("ValidationException", str(exc), 400) from None
        results = [self._put(entry, region) for entry in request["Entries"]]
        output = {"FailedEntryCount": sum("ErrorCode" in r for r in results), "Entries": results}
        _check(operation.output_shape, output, "a PutEvents answer")
        return 200, {"Content-Type": "application/x-amz-json-1.1"}, json.dumps(output).encode()

    def _put(self, entry: Mapping[str, Any], region: str) -> dict[str, str]:
        try:
            detail = json.loads(entry.get("Detail") or "")
            assert isinstance(detail, dict)
        except (ValueError, AssertionError):
            return {"ErrorCode": "MalformedDetail", "ErrorMessage": "Detail is malformed."}
        account = self.client("sts", region).get_caller_identity()["Account"]
        event = {"version": "0", "id": str(uuid.uuid4()), "detail-type": entry.get("DetailType"),
                 "source": entry.get("Source"), "account": account,
                 "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "region": region,
                 "resources": list(entry.get("Resources") or []), "detail": detail}
        bus = str(entry.get("EventBusName") or "default").rsplit("/", 1)[-1]
        events = self.client("events", region)
        for page in events.get_paginator("list_rules").paginate(EventBusName=bus):
            for rule in page["Rules"]:
                if rule.get("State") == "ENABLED" and rule.get("EventPattern") and \
                        EventPattern.load(rule["EventPattern"]).matches_event(event):
                    for target in events.list_targets_by_rule(Rule=rule["Name"], EventBusName=bus)["Targets"]:
                        self._deliver(rule["Arn"], target["Arn"], event, region)
        return {"EventId": str(event["id"])}

    def _deliver(self, rule_arn: str, function_arn: str, event: dict[str, Any], region: str) -> None:
        if ":lambda:" not in function_arn:
            self.undelivered.append(f"{function_arn}: only Lambda targets are stood in")
            return
        if not self._may_invoke(rule_arn, function_arn, region):
            self.undelivered.append(f"{function_arn}: its resource policy does not let {rule_arn} invoke it")
            return
        thread = threading.Thread(target=self._invoke, args=(function_arn, event, region), daemon=True)
        with self._lock:
            self._deliveries.append(thread)
        thread.start()

    def _may_invoke(self, rule_arn: str, function_arn: str, region: str) -> bool:
        try:
            policy = json.loads(self.client("lambda", region).get_policy(FunctionName=function_arn)["Policy"])
        except Exception:  # no resource policy at all
            return False
        for statement in policy.get("Statement", []):
            principal = statement.get("Principal") or {}
            service = principal.get("Service") if isinstance(principal, dict) else principal
            source = ((statement.get("Condition") or {}).get("ArnLike") or {}).get("AWS:SourceArn")
            if statement.get("Effect") == "Allow" and service == "events.amazonaws.com" and source in (None, rule_arn):
                return True
        return False

    def _invoke(self, function_arn: str, event: dict[str, Any], region: str) -> None:
        client = self._boto.client("lambda", region_name=region, endpoint_url=self.lambda_url)
        try:
            answer = client.invoke(FunctionName=function_arn, Payload=json.dumps(event).encode())
            if answer.get("FunctionError"):
                self.undelivered.append(f"{function_arn}: {answer['Payload'].read().decode()[:500]}")
        except Exception as exc:
            self.undelivered.append(f"{function_arn}: {type(exc).__name__}: {exc}")
