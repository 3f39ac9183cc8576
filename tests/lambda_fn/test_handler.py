"""lambda/lambda_function.py called directly, as Lambda calls it: every bad input, the proxy
event shapes, the mapping of SageMaker Runtime errors (botocore Stubber, so requests and
answers are checked against the service model), S3 inputs (moto) and URL inputs (a loopback
server). The handler against a real endpoint server is in tests/core/lambdas/test_local_functions.py."""

from __future__ import annotations

import base64
import io
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber
from moto import mock_aws

from tests.core.aws_fixtures import FAKE_SECRET, no_network_fixture  # noqa: F401  (autouse fixture)
from tests.lambda_fn.conftest import JPEG, PNG, Context, load_function

TOP_K = [{"label": "cat", "probability": 0.8}, {"label": "dog", "probability": 0.15},
         {"label": "fox", "probability": 0.05}]


@pytest.fixture
def fn(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fresh copy of the function module with ENDPOINT_NAME set and no cached clients."""
    module = load_function()
    monkeypatch.setenv("ENDPOINT_NAME", "Digits-EP")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFAKEKEYFORTESTS12")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    monkeypatch.delenv("S3_INPUT_PREFIX", raising=False)
    return module


@pytest.fixture
def runtime(fn: Any) -> Iterator[Stubber]:
    """A stubbed sagemaker-runtime client installed as the function's client."""
    client = boto3.client("sagemaker-runtime", region_name="us-east-1")
    fn._clients["sagemaker-runtime"] = client
    with Stubber(client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def answer(document: dict[str, Any]) -> dict[str, Any]:
    data = json.dumps(document).encode()
    return {"Body": StreamingBody(io.BytesIO(data), len(data)), "ContentType": "application/json"}


def call(fn: Any, event: Any) -> tuple[int, dict[str, Any]]:
    response = fn.lambda_handler(event, Context())
    assert response["headers"] == {"Content-Type": "application/json"} and response["isBase64Encoded"] is False
    return response["statusCode"], json.loads(response["body"])


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- success and event shapes ----------------------------------------------------------------

def test_base64_image_is_sent_raw_and_top_k_comes_back(fn: Any, runtime: Stubber) -> None:
    runtime.add_response("invoke_endpoint", answer({"predictions": [{"top_k": TOP_K}]}),
                         {"EndpointName": "Digits-EP", "Body": JPEG, "ContentType": "image/jpeg",
                          "Accept": "application/json"})
    status, body = call(fn, {"image": b64(JPEG), "top_k": 2})
    assert status == 200
    assert body["predictions"] == TOP_K[:2]
    assert body["endpoint"] == "Digits-EP"
    assert body["input"] == {"source": "image", "bytes": len(JPEG), "content_type": "image/jpeg"}


@pytest.mark.parametrize("proxy", [
    {"body": json.dumps({"image": b64(PNG)}), "isBase64Encoded": False},
    {"body": b64(json.dumps({"image": b64(PNG)}).encode()), "isBase64Encoded": True},
    {"body": {"image": b64(PNG)}},
    {"image": "data:image/png;base64," + b64(PNG)},
], ids=["api-gateway", "api-gateway-base64-body", "body-as-object", "data-url"])
def test_proxy_events_and_data_urls(fn: Any, runtime: Stubber, proxy: dict[str, Any]) -> None:
    runtime.add_response("invoke_endpoint", answer({"predictions": [{"top_k": TOP_K}]}),
                         {"EndpointName": "Digits-EP", "Body": PNG, "ContentType": "image/png",
                          "Accept": "application/json"})
    status, body = call(fn, proxy)
    assert status == 200 and body["predictions"] == TOP_K


def test_top_k_above_five_goes_as_json(fn: Any, runtime: Stubber) -> None:
    runtime.add_response("invoke_endpoint", answer({"predictions": [{"top_k": TOP_K}]}),
                         {"EndpointName": "Digits-EP", "ContentType": "application/json", "Accept": "application/json",
                          "Body": json.dumps({"image": b64(JPEG), "top_k": 7}).encode()})
    assert call(fn, {"image": b64(JPEG), "top_k": 7})[0] == 200


# --- bad input: 400 / 413 / 500, and the endpoint is never called ------------------------------

@pytest.mark.parametrize(("event", "status", "fragment"), [
    ({"body": None}, 400, "no body"),
    ({"body": ""}, 400, "no body"),
    ({}, 400, "give exactly one of image"),
    ("not an object", 400, "must be a JSON object"),
    ({"body": "{not json"}, 400, "not JSON"),
    ({"body": "[1, 2]"}, 400, "must be a JSON object"),
    ({"body": "%%%", "isBase64Encoded": True}, 400, "body is not valid base64"),
    ({"image": "this is not base64!"}, 400, "image is not valid base64"),
    ({"image": b64(b"plain text, not an image")}, 400, "not an image"),
    ({"image": ""}, 400, "give exactly one of image"),
    ({"image": 42}, 400, "image must be a string"),
    ({"image": b64(JPEG), "url": "http://127.0.0.1/x.jpg"}, 400, "not image and url"),
    ({"image": b64(JPEG), "top_k": 0}, 400, "top_k must be a whole number"),
    ({"image": b64(JPEG), "top_k": "3"}, 400, "top_k must be a whole number"),
    ({"image": b64(JPEG), "top_k": True}, 400, "top_k must be a whole number"),
    ({"s3_uri": "s3://bucket/images/x.jpg"}, 400, "S3 inputs are not enabled"),
    ({"url": "file:///etc/passwd"}, 400, "http:// or https://"),
])
def test_bad_input(fn: Any, runtime: Stubber, event: Any, status: int, fragment: str) -> None:
    got_status, body = call(fn, event)
    assert got_status == status
    assert body["error"] == "BadRequest" and fragment in body["message"], body


def test_oversize_image_is_refused_with_413(fn: Any, runtime: Stubber) -> None:
    big = JPEG + b"\0" * (6 * 1024 * 1024)  # a JPEG header, then more than the 6 MB limit
    status, body = call(fn, {"image": b64(big)})
    assert status == 413 and body["error"] == "PayloadTooLarge"
    status, body = call(fn, {"body": json.dumps({"image": b64(big)})})
    assert status == 413 and "the limit is 6,291,456" in body["message"]


def test_an_image_just_under_the_limit_passes(fn: Any, runtime: Stubber) -> None:
    image = JPEG + b"\0" * (6 * 1024 * 1024 - len(JPEG))
    runtime.add_response("invoke_endpoint", answer({"predictions": [{"top_k": TOP_K}]}),
                         {"EndpointName": "Digits-EP", "Body": image, "ContentType": "image/jpeg",
                          "Accept": "application/json"})
    assert call(fn, {"image": b64(image)})[0] == 200


def test_missing_endpoint_name_is_a_configuration_error(fn: Any, runtime: Stubber,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENDPOINT_NAME")
    status, body = call(fn, {"image": b64(JPEG)})
    assert status == 500 and body == {"error": "Misconfigured",
                                      "message": "the function has no ENDPOINT_NAME environment variable"}


# --- the endpoint's errors --------------------------------------------------------------------

@pytest.mark.parametrize(("code", "http", "extra", "status", "error"), [
    ("AccessDeniedException", 400, {}, 403, "AccessDenied"),
    ("ValidationError", 400, {}, 404, "EndpointNotFound"),
    ("ModelError", 424, {"OriginalStatusCode": 400, "OriginalMessage": '{"Message": "cannot decode the image"}'},
     400, "BadRequest"),
    ("ModelError", 424, {"OriginalStatusCode": 500, "OriginalMessage": '{"Message": "CUDA out of memory"}'},
     502, "EndpointFailed"),
    ("ServiceUnavailable", 503, {}, 503, "EndpointNotReady"),
    ("InternalFailure", 500, {}, 502, "EndpointFailed"),
    ("ThrottlingException", 400, {}, 429, "Throttled"),
])
def test_endpoint_errors(fn: Any, runtime: Stubber, code: str, http: int, extra: dict[str, Any], status: int,
                         error: str) -> None:
    messages = {"AccessDeniedException": "User: arn:aws:sts::123456789012:assumed-role/r/fn is not authorized to "
                "perform: sagemaker:InvokeEndpoint on resource: arn:aws:sagemaker:us-east-1:123456789012:endpoint/"
                "digits-ep because no identity-based policy allows the sagemaker:InvokeEndpoint action",
                "ValidationError": "Endpoint Digits-EP of account 123456789012 not found."}
    runtime.add_client_error("invoke_endpoint", service_error_code=code, service_message=messages.get(code, code),
                             http_status_code=http, modeled_fields=extra)
    got_status, body = call(fn, {"image": b64(JPEG)})
    assert (got_status, body["error"]) == (status, error)
    if code == "AccessDeniedException":
        assert body["message"] == messages[code]
    if code == "ModelError":
        assert body["message"].endswith(("cannot decode the image", "CUDA out of memory"))


def test_an_unexpected_answer_is_a_502(fn: Any, runtime: Stubber) -> None:
    runtime.add_response("invoke_endpoint", answer({"something": "else"}))
    assert call(fn, {"image": b64(JPEG)}) == (502, {"error": "BadEndpointAnswer",
                                                    "message": "endpoint Digits-EP answered something unexpected"})


def test_an_unreachable_endpoint_is_a_502(fn: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", f"http://127.0.0.1:{port}")
    status, body = call(fn, {"image": b64(JPEG)})
    assert status == 502 and body["error"] == "EndpointUnreachable"


def test_nothing_secret_or_bulky_is_logged(fn: Any, runtime: Stubber, caplog: pytest.LogCaptureFixture) -> None:
    runtime.add_response("invoke_endpoint", answer({"predictions": [{"top_k": TOP_K}]}))
    with caplog.at_level(logging.INFO):
        call(fn, {"image": b64(JPEG)})
        call(fn, {"image": "bad base64!"})
    text = caplog.text
    assert "status=200 top1=cat" in text and "status=400 error=BadRequest" in text
    assert FAKE_SECRET not in text and "AKIAFAKEKEYFORTESTS12" not in text and b64(JPEG)[:40] not in text
    assert len(caplog.records) == 2  # one line per request


# --- S3 and URL inputs ---------------------------------------------------------------------------

@pytest.fixture
def s3_inputs(fn: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("S3_INPUT_PREFIX", "s3://smc-inputs/lambda-inputs/")
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="smc-inputs")
        s3.put_object(Bucket="smc-inputs", Key="lambda-inputs/cat.jpg", Body=JPEG)
        s3.put_object(Bucket="smc-inputs", Key="other/cat.jpg", Body=JPEG)
        fn._clients["s3"] = s3
        yield s3


def test_s3_input_under_the_prefix(fn: Any, runtime: Stubber, s3_inputs: Any) -> None:
    runtime.add_response("invoke_endpoint", answer({"predictions": [{"top_k": TOP_K}]}),
                         {"EndpointName": "Digits-EP", "Body": JPEG, "ContentType": "image/jpeg",
                          "Accept": "application/json"})
    status, body = call(fn, {"s3_uri": "s3://smc-inputs/lambda-inputs/cat.jpg"})
    assert status == 200 and body["input"]["source"] == "s3_uri"


@pytest.mark.parametrize(("uri", "status", "fragment"), [
    ("s3://smc-inputs/other/cat.jpg", 400, "must name an object under s3://smc-inputs/lambda-inputs/"),
    ("s3://smc-inputs/lambda-inputs/../other/cat.jpg", 400, "must name an object under"),
    ("s3://smc-inputs/lambda-inputs-evil/cat.jpg", 400, "must name an object under"),
    ("s3://smc-inputs/lambda-inputs/missing.jpg", 404, "does not exist"),
])
def test_s3_inputs_outside_the_prefix_or_missing(fn: Any, runtime: Stubber, s3_inputs: Any, uri: str, status: int,
                                                 fragment: str) -> None:
    got_status, body = call(fn, {"s3_uri": uri})
    assert got_status == status and fragment in body["message"]


class _ImageServer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/cat.png":
            self.send_response(200)
            self.send_header("Content-Length", str(len(PNG)))
            self.end_headers()
            self.wfile.write(PNG)
        else:
            self.send_error(404)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def image_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ImageServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_url_input(fn: Any, runtime: Stubber, image_server: str) -> None:
    runtime.add_response("invoke_endpoint", answer({"predictions": [{"top_k": TOP_K}]}),
                         {"EndpointName": "Digits-EP", "Body": PNG, "ContentType": "image/png",
                          "Accept": "application/json"})
    assert call(fn, {"url": f"{image_server}/cat.png"})[0] == 200
    status, body = call(fn, {"url": f"{image_server}/missing.png"})
    assert status == 400 and "HTTP 404" in body["message"]


def test_url_inputs_can_be_switched_off(fn: Any, runtime: Stubber, image_server: str,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOW_URL_INPUTS", "false")
    status, body = call(fn, {"url": f"{image_server}/cat.png"})
    assert status == 400 and "URL inputs are not enabled" in body["message"]
