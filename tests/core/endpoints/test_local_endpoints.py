"""Local endpoints with real server processes: lifecycle, failures, restart recovery, every
input error, and a boto3 ``sagemaker-runtime`` client pointed at the server."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from core.config import DEFAULT_JOB_PYTHON
from core.endpoints import EndpointStatus, LocalEndpointManager
from core.endpoints._local import ping
from core.endpoints.invoke import error_message, image_request, json_request, sniff_image_type
from core.errors import AlreadyExistsError, InvalidInputError, NotFoundError
from core.jobstore import JobStore
from core.training._local import is_process_alive
from tests.core.endpoints.conftest import CLASS_NAMES, image_bytes

SIX_MB = 6 * 1024 * 1024


def manager_for(workspace: Path) -> LocalEndpointManager:
    return LocalEndpointManager(JobStore(workspace / "console.db"), workspace, DEFAULT_JOB_PYTHON)


def server_pid(manager: LocalEndpointManager, name: str) -> int:
    pid = manager.store.runtime(name)["pid"]
    assert isinstance(pid, int)
    return pid


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, model_tar: Path) -> Iterator[tuple[LocalEndpointManager, str]]:
    """One InService endpoint shared by the invocation tests; deleted at the end."""
    manager = manager_for(tmp_path_factory.mktemp("workspace"))
    manager.deploy("shared", model_tar.as_uri(), max_batch_size=8, max_wait_ms=20)
    endpoint = manager.wait("shared", timeout_s=120, poll_s=0.1)
    assert endpoint.status is EndpointStatus.IN_SERVICE, endpoint.failure_reason
    yield manager, "shared"
    manager.delete("shared")


def runtime_client(port: int) -> object:
    return boto3.client(
        "sagemaker-runtime", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 0}),
    )


# --- deploy arguments and unknown names (no server) ----------------------------------------


@pytest.mark.parametrize(
    ("name", "uri", "kwargs", "words"),
    [
        ("bad_name!", None, {}, "endpoint name"),
        ("-leading", None, {}, "endpoint name"),
        ("ok", "s3://bucket/model.tar.gz", {}, "file://"),
        ("ok", "file:///no/such/model.tar.gz", {}, "does not exist"),
        ("ok", None, {"instance_type": "ml.m5.large"}, "instance_type"),
        ("ok", None, {"instance_count": 2}, "instance_count"),
        ("ok", None, {"max_batch_size": 0}, "max_batch_size"),
        ("ok", None, {"workers": 0}, "workers"),
    ],
)
def test_deploy_refuses_bad_arguments(tmp_path: Path, model_tar: Path, name: str, uri: str | None,
                                      kwargs: dict[str, object], words: str) -> None:
    manager = manager_for(tmp_path)
    with pytest.raises(InvalidInputError, match=words):
        manager.deploy(name, uri or model_tar.as_uri(), **kwargs)  # type: ignore[arg-type]
    assert manager.list_endpoints() == []


def test_unknown_endpoint_is_not_found(tmp_path: Path) -> None:
    manager = manager_for(tmp_path)
    with pytest.raises(NotFoundError):
        manager.describe("nope")
    with pytest.raises(NotFoundError):
        manager.delete("nope")
    with pytest.raises(NotFoundError):
        manager.invoke("nope", image_bytes(), "image/jpeg")


# --- lifecycle -----------------------------------------------------------------------------


def test_lifecycle_creating_in_service_survives_restart_then_deleted(tmp_path: Path, model_tar: Path) -> None:
    manager = manager_for(tmp_path)
    endpoint = manager.deploy("life", model_tar.as_uri())
    assert endpoint.status is EndpointStatus.CREATING
    assert endpoint.url == f"http://127.0.0.1:{endpoint.port}"
    assert (endpoint.backend, endpoint.instance_type, endpoint.instance_count) == ("local", "local", 1)
    with pytest.raises(InvalidInputError, match="Creating"):
        manager.invoke("life", image_bytes(), "image/jpeg")
    with pytest.raises(AlreadyExistsError):
        manager.deploy("life", model_tar.as_uri())

    assert manager.wait("life", timeout_s=120, poll_s=0.1).status is EndpointStatus.IN_SERVICE
    pid = server_pid(manager, "life")

    restarted = manager_for(tmp_path)  # the app restarted: a new manager over the same database
    assert [(e.name, e.status) for e in restarted.list_endpoints()] == [("life", EndpointStatus.IN_SERVICE)]
    result = restarted.invoke("life", *image_request(image_bytes()))
    assert result.status_code == 200
    assert result.latency_ms > 0 and result.server_latency_ms is not None
    assert any("ready in" in line for line in restarted.log_tail("life"))

    restarted.delete("life")
    assert not is_process_alive(pid, str(tmp_path / "endpoints" / "life"))
    assert not ping(endpoint.url)
    assert not (tmp_path / "endpoints" / "life").exists()
    with pytest.raises(NotFoundError):
        manager.describe("life")
    assert manager.list_endpoints() == []


def test_delete_while_creating_stops_the_server(tmp_path: Path, model_tar: Path) -> None:
    manager = manager_for(tmp_path)
    manager.deploy("early", model_tar.as_uri())
    pid = server_pid(manager, "early")
    manager.delete("early")
    assert not is_process_alive(pid, str(tmp_path / "endpoints" / "early"))
    with pytest.raises(NotFoundError):
        manager.describe("early")


def test_model_that_fails_to_load_is_failed_with_the_reason(tmp_path: Path, broken_model_tar: Path) -> None:
    manager = manager_for(tmp_path)
    manager.deploy("broken", broken_model_tar.as_uri())
    endpoint = manager.wait("broken", timeout_s=120, poll_s=0.1)
    assert endpoint.status is EndpointStatus.FAILED
    assert "not a readable model artifact" in (endpoint.failure_reason or "")
    with pytest.raises(InvalidInputError, match="Failed"):
        manager.invoke("broken", image_bytes(), "image/jpeg")
    with pytest.raises(AlreadyExistsError):
        manager.deploy("broken", broken_model_tar.as_uri())
    manager.store.set_status("broken", EndpointStatus.DELETING)  # as if the app died inside delete()
    assert manager_for(tmp_path).list_endpoints() == []  # the next read finishes the delete


def test_restart_marks_an_endpoint_whose_server_died_failed(tmp_path: Path, model_tar: Path) -> None:
    manager = manager_for(tmp_path)
    manager.deploy("doomed", model_tar.as_uri())
    assert manager.wait("doomed", timeout_s=120, poll_s=0.1).status is EndpointStatus.IN_SERVICE
    pid = server_pid(manager, "doomed")
    os.kill(pid, signal.SIGKILL)
    marker = str(tmp_path / "endpoints" / "doomed")
    deadline = time.monotonic() + 30
    while is_process_alive(pid, marker) and time.monotonic() < deadline:
        time.sleep(0.05)

    restarted = manager_for(tmp_path)
    endpoint = restarted.describe("doomed")
    assert endpoint.status is EndpointStatus.FAILED
    assert "server process stopped" in (endpoint.failure_reason or "")
    restarted.delete("doomed")
    assert restarted.list_endpoints() == []


# --- invocations ---------------------------------------------------------------------------


def test_each_request_format_gets_top_k_predictions(served: tuple[LocalEndpointManager, str]) -> None:
    manager, name = served
    for data in (image_bytes("JPEG"), image_bytes("PNG"), image_bytes("GIF")):
        result = manager.invoke(name, *image_request(data))
        [top] = result.predictions
        assert {label for label, _ in top} == set(CLASS_NAMES)
        probabilities = [p for _, p in top]
        assert probabilities == sorted(probabilities, reverse=True)
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-4)
    result = manager.invoke(name, *json_request([image_bytes(), image_bytes("PNG", color=(0, 0, 250))], top_k=2))
    assert [len(top) for top in result.predictions] == [2, 2]


def test_concurrent_requests_get_their_own_answers(served: tuple[LocalEndpointManager, str]) -> None:
    manager, name = served
    images = [image_bytes(size=(20 + 7 * i, 32), color=(30 * i, 255 - 30 * i, 90)) for i in range(8)]
    alone = [manager.invoke(name, *image_request(data)).predictions for data in images]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda data: manager.invoke(name, *image_request(data)).predictions, images * 3))
    for expected, got in zip(alone * 3, together):
        assert [label for label, _ in got[0]] == [label for label, _ in expected[0]]
        assert [p for _, p in got[0]] == pytest.approx([p for _, p in expected[0]], abs=1e-4)


def _corrupt_jpeg() -> bytes:
    data = bytearray(image_bytes(size=(64, 64)))
    data[200:260] = b"\x00" * 60
    return bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    ("body", "content_type", "status", "words"),
    [
        (b"x" * 10, "text/plain", 415, "not supported"),
        (image_bytes(), "", 415, "not supported"),
        (b"", "image/jpeg", 400, "empty"),
        (b"GIF89a-not-really", "image/png", 400, "not an image"),
        (_corrupt_jpeg(), "image/jpeg", 400, "cannot be decoded"),
        (b"\xff" * (SIX_MB + 1), "image/jpeg", 413, "limit"),
        (b'{"image": ', "application/json", 400, "not valid JSON"),
        (b"[1, 2]", "application/json", 400, "must be an object"),
        (b'{"picture": "abc"}', "application/json", 400, "exactly one of"),
        (b'{"image": "%%% not base64 %%%"}', "application/json", 400, "not valid base64"),
        (b'{"instances": [{"url": "http://x"}]}', "application/json", 400, "b64"),
        (json.dumps({"images": ["aGk="] * 65}).encode(), "application/json", 400, "limit is 64"),
        (json_request([image_bytes()], top_k=0)[0], "application/json", 400, "top_k"),
        (json.dumps({"image": "aGVsbG8="}).encode(), "application/json", 400, "not an image"),
    ],
    ids=["wrong-type", "no-type", "empty", "not-image", "corrupt", "over-6MB", "bad-json", "json-list", "no-key",
         "bad-base64", "instance-without-b64", "too-many", "bad-top-k", "base64-not-image"],
)
def test_every_input_error_is_refused_clearly(served: tuple[LocalEndpointManager, str], body: bytes,
                                              content_type: str, status: int, words: str) -> None:
    manager, name = served
    with pytest.raises(InvalidInputError, match=rf"\({status}\): .*{words}"):
        manager.invoke(name, body, content_type)
    assert manager.invoke(name, *image_request(image_bytes())).status_code == 200


def test_an_unsupported_accept_is_refused(served: tuple[LocalEndpointManager, str]) -> None:
    manager, name = served
    with pytest.raises(InvalidInputError, match=r"\(406\).*application/json"):
        manager.invoke(name, image_bytes(), "image/jpeg", accept="text/csv")


def test_request_helpers_sniff_bytes_not_names() -> None:
    assert image_request(image_bytes("JPEG"))[1] == "image/jpeg"
    assert image_request(image_bytes("PNG"))[1] == "image/png"
    assert sniff_image_type(image_bytes("WEBP")) == "image/webp"
    assert image_request(image_bytes("BMP"))[1] == "application/x-image"
    assert image_request(b"%PDF-1.7")[1] == "application/x-image"
    assert error_message(b'{"ErrorCode": "BadRequest", "Message": "no"}') == "no"
    assert error_message(json.dumps({"OriginalMessage": '{"Message": "inner"}'}).encode()) == "inner"
    assert error_message(b"plain words") == "plain words"


# --- the SageMaker Runtime path through boto3 ----------------------------------------------


def test_boto3_sagemaker_runtime_invokes_the_local_server(served: tuple[LocalEndpointManager, str]) -> None:
    manager, name = served
    endpoint = manager.describe(name)
    assert endpoint.port is not None
    client = runtime_client(endpoint.port)
    answer = client.invoke_endpoint(  # type: ignore[attr-defined]
        EndpointName=name, Body=image_bytes(), ContentType="image/jpeg", Accept="application/json")
    assert answer["ContentType"] == "application/json"
    assert answer["InvokedProductionVariant"] == "AllTraffic"
    [top] = json.loads(answer["Body"].read())["predictions"]
    assert {entry["label"] for entry in top["top_k"]} == set(CLASS_NAMES)


def test_boto3_sees_the_endpoint_url_from_the_environment(served: tuple[LocalEndpointManager, str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    manager, name = served
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", str(manager.describe(name).url))
    client = boto3.client("sagemaker-runtime", region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
    answer = client.invoke_endpoint(EndpointName=name, Body=image_bytes("PNG"), ContentType="image/png")
    assert len(json.loads(answer["Body"].read())["predictions"]) == 1


@pytest.mark.parametrize(
    ("endpoint_name", "body", "content_type", "code", "http_status", "original"),
    [
        (None, b"not an image", "image/jpeg", "ModelError", 424, 400),
        (None, b"x", "text/csv", "ModelError", 424, 415),
        (None, b"", "image/jpeg", "ModelError", 424, 400),
        (None, b'{"image": 1}', "application/json", "ModelError", 424, 400),
        ("other-endpoint", image_bytes(), "image/jpeg", "ValidationError", 400, None),
        (None, b"\x00" * (SIX_MB + 1), "image/jpeg", "413", 413, None),
    ],
    ids=["not-image", "wrong-type", "empty", "bad-json", "unknown-endpoint", "over-6MB"],
)
def test_boto3_gets_sagemaker_runtime_errors(served: tuple[LocalEndpointManager, str], endpoint_name: str | None,
                                             body: bytes, content_type: str, code: str, http_status: int,
                                             original: int | None) -> None:
    manager, name = served
    client = runtime_client(manager.describe(name).port or 0)
    with pytest.raises(ClientError) as caught:
        client.invoke_endpoint(  # type: ignore[attr-defined]
            EndpointName=endpoint_name or name, Body=body, ContentType=content_type)
    response = caught.value.response
    assert response["Error"]["Code"] == code
    assert response["ResponseMetadata"]["HTTPStatusCode"] == http_status
    assert response["Error"]["Message"]
    if original is not None:
        assert response["OriginalStatusCode"] == original
        assert error_message(response["OriginalMessage"])
    if code == "ValidationError":
        assert "other-endpoint" in response["Error"]["Message"] and "not found" in response["Error"]["Message"]
