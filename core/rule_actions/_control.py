"""The two AWS calls of the action function, served on 127.0.0.1 for the local backend.

``lambda/rule_action.py`` calls SageMaker ``StopTrainingJob`` (JSON protocol, ``X-Amz-Target:
SageMaker.StopTrainingJob``) and SNS ``Publish`` (query protocol, ``Action=Publish``) with
boto3. Locally its process gets ``AWS_ENDPOINT_URL_SAGEMAKER`` and ``AWS_ENDPOINT_URL_SNS``
pointing here, for the one invocation. Each request is authorised as AWS would: by the policy
of the local role whose session signed it (``entrypoints/local_iam.py``); a denied call gets
AWS's error code and message (``AccessDeniedException``; SNS's ``AuthorizationError``). What
the call does is the caller's: ``stop_job`` and ``publish`` raise :class:`ServiceError` with
SageMaker's or SNS's answer when they refuse.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from core.rule_actions.policies import training_jobs_arn
from entrypoints.local_iam import Refusal, authorize

SNS_NAMESPACE = "http://sns.amazonaws.com/doc/2010-03-31/"


class ServiceError(Exception):
    """A refusal in the service's own words: HTTP status, error code, message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class ControlPlane:
    """A loopback server for ``StopTrainingJob`` and ``Publish``; a context manager.

    Args:
        iam_dir: local IAM (roles and live sessions).
        account, region: whose resources the calls name.
        stop_job: stops a training job by name.
        publish: publishes (topic ARN, subject, message); returns the message id.
    """

    def __init__(self, iam_dir: Path, account: str, region: str, *, stop_job: Callable[[str], None],
                 publish: Callable[[str, str, str], str]) -> None:
        self.iam_dir, self.account, self.region = Path(iam_dir), account, region
        self.stop_job, self.publish = stop_job, publish
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "enter the context first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> ControlPlane:
        plane = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, content_type, answer = plane.answer(dict(self.headers.items()), body)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def answer(self, headers: dict[str, str], body: bytes) -> tuple[int, str, bytes]:
        """The HTTP status, content type and body of one request."""
        target = headers.get("X-Amz-Target") or headers.get("x-amz-target") or ""
        if target:
            return self._sagemaker(target, headers, body)
        return self._sns(headers, body)

    def _sagemaker(self, target: str, headers: dict[str, str], body: bytes) -> tuple[int, str, bytes]:
        try:
            if target != "SageMaker.StopTrainingJob":
                raise ServiceError(400, "UnknownOperationException", f"{target} is not served locally")
            name = str(json.loads(body or b"{}").get("TrainingJobName") or "")
            self._check(headers, "sagemaker:StopTrainingJob",
                        lambda region: training_jobs_arn(region, self.account, name).removesuffix("*"))
            self.stop_job(name)
        except ServiceError as exc:
            error = {"__type": exc.code, "message": exc.message}
            return exc.status, "application/x-amz-json-1.1", json.dumps(error).encode()
        return 200, "application/x-amz-json-1.1", b"{}"

    def _sns(self, headers: dict[str, str], body: bytes) -> tuple[int, str, bytes]:
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        request_id = str(uuid.uuid4())
        try:
            if form.get("Action") != "Publish":
                raise ServiceError(400, "InvalidAction", f"{form.get('Action')} is not served locally")
            topic = form.get("TopicArn", "")
            self._check(headers, "sns:Publish", lambda _region: topic, denied=(403, "AuthorizationError"))
            message_id = self.publish(topic, form.get("Subject", ""), form.get("Message", ""))
        except ServiceError as exc:
            error = (f'<ErrorResponse xmlns="{SNS_NAMESPACE}"><Error><Type>Sender</Type><Code>{escape(exc.code)}</Code>'
                     f"<Message>{escape(exc.message)}</Message></Error><RequestId>{request_id}</RequestId>"
                     "</ErrorResponse>")
            return exc.status, "text/xml", error.encode()
        answer = (f'<PublishResponse xmlns="{SNS_NAMESPACE}"><PublishResult><MessageId>{escape(message_id)}'
                  f"</MessageId></PublishResult><ResponseMetadata><RequestId>{request_id}</RequestId>"
                  "</ResponseMetadata></PublishResponse>")
        return 200, "text/xml", answer.encode()

    def _check(self, headers: dict[str, str], action: str, resource_of: Callable[[str], str], *,
               denied: tuple[int, str] = (400, "AccessDeniedException")) -> None:
        authorization = headers.get("Authorization") or headers.get("authorization")
        refusal: Refusal | None = authorize(self.iam_dir, self.account, authorization, action, resource_of,
                                            denied=denied, roles_only=True)
        if refusal is not None:
            raise ServiceError(refusal.status, refusal.code, refusal.message)
