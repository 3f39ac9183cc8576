"""The error shapes SageMaker clients see: the container contract's, and SageMaker Runtime's.

A container answers ``{"ErrorCode", "Message"}`` with its own status (:func:`error_answer`).
SageMaker Runtime wraps a container's 4xx/5xx as ``ModelError`` (424, :func:`runtime_answer`) and
raises its own errors with an ``x-amzn-ErrorType`` header (:func:`runtime_error`), so botocore
raises the same ``ClientError`` codes against the local server as against AWS.
"""

from __future__ import annotations

import json
from http import HTTPStatus

from http1 import Answer


def error_answer(status: int, message: str) -> Answer:
    """The container contract's error: the status and ``{"ErrorCode", "Message"}``."""
    code = HTTPStatus(status).phrase.title().replace(" ", "").replace("-", "")
    return Answer(status, json.dumps({"ErrorCode": code, "Message": message}).encode())


def runtime_answer(answer: Answer) -> Answer:
    """What SageMaker Runtime makes of the container's answer: 4xx/5xx become ModelError (424)."""
    if answer.status < 400:
        return Answer(answer.status, answer.body, answer.content_type,
                      {"x-Amzn-Invoked-Production-Variant": "AllTraffic"}, answer.batch_size)
    original = answer.body.decode("utf-8", errors="replace")
    kind = "client" if answer.status < 500 else "server"
    message = (f'Received {kind} error ({answer.status}) from primary with message "{original}". '
               "See the endpoint's server log for more information.")
    body = {"ErrorCode": "ModelError", "Message": message, "OriginalStatusCode": answer.status,
            "OriginalMessage": original}
    return Answer(424, json.dumps(body).encode(), headers={"x-amzn-ErrorType": "ModelError"})


def runtime_error(status: int, code: str | None, message: str) -> Answer:
    """An error SageMaker Runtime raises itself (code None: botocore reports the status)."""
    body: dict[str, str] = {"Message": message}
    headers = {}
    if code:
        body["ErrorCode"] = code
        headers["x-amzn-ErrorType"] = code
    return Answer(status, json.dumps(body).encode(), headers=headers)
