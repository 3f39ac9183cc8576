"""Fault injection for the aws backend's tests: one AWS operation answers an error, the rest reach moto.

A :class:`Fault` is a botocore ``before-call`` handler: when it answers, botocore skips the request
(and so moto, and its own retries) and raises the error exactly as it raises a real AWS answer,
with the service's exception class, error code, message, HTTP status and headers. Unlike
botocore's Stubber, every other call still reaches moto, so a test can check what a failed
operation left behind.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import NoCredentialsError

from core.aws import AwsSession

AWS_EXPIRED_TOKEN = "The security token included in the request is expired"


@dataclass
class Fault:
    """Answers ``operation`` (or every operation, when None) with an AWS error.

    Args:
        operation: the API operation's name (``CreateTrainingJob``), None for every one.
        code, message, status: the error AWS answers; headers and fields go with it.
        after: how many matching calls go through before the first fault.
        times: how many calls fail from then on; None: every one (credentials that expired). A test
            sets it to 0 to let calls through again (the credentials were refreshed).
        no_credentials: raise botocore's NoCredentialsError instead of an answer.
    """

    operation: str | None
    code: str = ""
    message: str = ""
    status: int = 400
    headers: dict[str, str] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)
    after: int = 0
    times: int | None = 1
    no_credentials: bool = False
    seen: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def __call__(self, model: Any, **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if self.operation is not None and model.name != self.operation:
            return None
        self.seen.append(model.name)
        if len(self.seen) <= self.after or (self.times is not None and len(self.failed) >= self.times):
            return None
        self.failed.append(model.name)
        if self.no_credentials:
            raise NoCredentialsError()
        error = {"Code": self.code, "Message": self.message, **self.fields}
        parsed = {"Error": error, "ResponseMetadata": {"HTTPStatusCode": self.status, "HTTPHeaders": self.headers}}
        return AWSResponse("https://aws.example/fault", self.status, self.headers, None), parsed


def inject(client: Any, fault: Fault) -> Fault:
    """Registers fault on one boto3 client (``before-call.<service>[.<operation>]``)."""
    service = client.meta.service_model.service_id.hyphenize()
    event = f"before-call.{service}" + (f".{fault.operation}" if fault.operation else "")
    client.meta.events.register(event, fault)
    return fault


@pytest.fixture(name="faults")
def faults_fixture(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Fault]]:
    """Faults by service, injected into every client an AwsSession makes from now on (pages build their
    own session). A test fills it: ``faults["sagemaker"].append(Fault("CreateTrainingJob", ...))``."""
    planned: dict[str, list[Fault]] = defaultdict(list)
    real_client = AwsSession.client
    armed: list[Any] = []  # the clients faults were injected into (kept, so no id is reused)

    def client(self: AwsSession, service: str) -> Any:
        made = real_client(self, service)
        if not any(made is c for c in armed):
            armed.append(made)
            for fault in planned[service]:
                inject(made, fault)
        return made

    monkeypatch.setattr(AwsSession, "client", client)
    return planned
