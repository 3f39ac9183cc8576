"""The Lambda page against the real local backend: a real endpoint server, the function deployed
from the page, an image picked into the test event, invoked (200, top-1), the permission
switched off (403 from the server's policy check) and on again; bad events get clear errors."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from core.backend import Backend, get_backend
from core.config import load_settings
from core.endpoints import EndpointStatus, LocalEndpointManager
from tests.core.endpoints.conftest import CLASS_NAMES, model_tar  # noqa: F401  (fixture)
from tests.pages.conftest import open_page

TIMEOUT = 120


@pytest.fixture
def endpoint(local_backend: Backend, model_tar: Path) -> Iterator[LocalEndpointManager]:
    """One InService endpoint named Shapes-EP; everything is stopped at the end."""
    backend = get_backend(load_settings())
    endpoints = backend.endpoints
    endpoints.deploy("Shapes-EP", model_tar.as_uri())
    assert endpoints.wait("Shapes-EP", timeout_s=120, poll_s=0.2).status is EndpointStatus.IN_SERVICE
    yield endpoints
    functions = backend.functions
    for function in functions.list_functions():
        functions.delete(function.name)
    for item in endpoints.list_endpoints():
        endpoints.delete(item.name)


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (30, 30, 220)).save(buffer, format="PNG")
    return buffer.getvalue()


def metric(at: object, label: str) -> str:
    (value,) = [m.value for m in at.metric if m.label == label]  # type: ignore[attr-defined]
    return str(value)


def test_empty_workspace_points_to_deploy(local_backend: Backend) -> None:
    at = open_page("lambda_fn")
    assert not at.exception
    assert any("No endpoint is InService" in i.value for i in at.info)
    assert any("No function yet" in i.value for i in at.info)
    assert [link.proto.page for link in at.main.get("page_link")] == ["deploy"]


def test_deploy_invoke_deny_and_allow_again(endpoint: LocalEndpointManager) -> None:
    at = open_page("lambda_fn", timeout=TIMEOUT)
    assert at.selectbox(key="lambda_endpoint").value == "Shapes-EP"
    at.checkbox(key="lambda_reserve").check().run()
    at.number_input(key="lambda_reserved").set_value(2)
    at.button(key="lambda_deploy").click().run()
    assert not at.exception
    assert any("Deployed classify-Shapes-EP" in s.value for s in at.success)
    assert at.selectbox(key="lambda_function").value == "classify-Shapes-EP"
    policy = json.loads(at.json[0].value)
    assert policy["Statement"][0] == {
        "Sid": "InvokeOneEndpoint", "Effect": "Allow", "Action": "sagemaker:InvokeEndpoint",
        "Resource": "arn:aws:sagemaker:us-east-1:000000000000:endpoint/shapes-ep"}
    assert any("**InvokeOneEndpoint**" in m.value for m in at.markdown)
    assert any("**allowed** by this policy" in s.value for s in at.success)
    assert any("reserved concurrency 2" in c.value for c in at.caption)

    at.file_uploader(key="lambda_image").set_value([("blue.png", png(), "image/png")])  # type: ignore[attr-defined]
    at.run()
    event = json.loads(at.text_area(key="lambda_event").value)
    assert set(event) == {"image", "top_k"} and event["image"].startswith("iVBORw0KGgo")  # PNG as base64
    at.button(key="lambda_invoke").click().run()
    assert not at.exception
    assert metric(at, "Status") == "200"
    assert metric(at, "Top-1") in CLASS_NAMES
    assert metric(at, "Latency").endswith(" ms") and metric(at, "Duration").endswith(" ms")
    assert any("START RequestId" in c.value and "status=200" in c.value for c in at.code)

    at.toggle(key="lambda_allow_classify-Shapes-EP").set_value(False).run()
    assert not at.exception
    assert [s["Sid"] for s in json.loads(at.json[0].value)["Statement"]] == ["WriteOwnLogs"]
    assert any("denied (implicitDeny)" in w.value for w in at.warning)
    at.button(key="lambda_invoke").click().run()
    assert metric(at, "Status") == "403"
    (error,) = [e.value for e in at.error]
    assert error.startswith("403 AccessDenied: User: arn:aws:sts::000000000000:assumed-role/")
    assert "because no identity-based policy allows the sagemaker:InvokeEndpoint action" in error

    at.toggle(key="lambda_allow_classify-Shapes-EP").set_value(True).run()
    at.button(key="lambda_invoke").click().run()
    assert metric(at, "Status") == "200"


def test_a_broken_event_gets_a_clear_error(endpoint: LocalEndpointManager) -> None:
    at = open_page("lambda_fn", timeout=TIMEOUT)
    at.text_input(key="lambda_name").input("fn-under-test")
    at.button(key="lambda_deploy").click().run()
    at.text_area(key="lambda_event").input('{"image": ').run()
    at.button(key="lambda_invoke").click().run()
    assert not at.exception
    assert any("the test event is not valid JSON" in e.value for e in at.error)
    at.text_area(key="lambda_event").input(json.dumps({"image": "bm90IGFuIGltYWdl"})).run()  # "not an image"
    at.button(key="lambda_invoke").click().run()
    assert metric(at, "Status") == "400"
    assert any(e.value.startswith("400 BadRequest: not an image") for e in at.error)
