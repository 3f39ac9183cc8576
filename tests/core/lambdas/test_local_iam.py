"""Local IAM: the role and session files core writes, and the endpoint server's reading of
them (entrypoints/local_iam.py) from a SigV4 Authorization header, without a server."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import pytest

from core.config import ENTRYPOINTS_DIR
from core.errors import InvalidInputError, NotFoundError
from core.lambdas._local_iam import LocalIam
from core.lambdas.policies import PolicyScope, execution_policy, trust_policy

ACCOUNT = "000000000000"


@pytest.fixture
def server_side(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """entrypoints/local_iam.py imported as serve.py imports it (its folder on sys.path)."""
    monkeypatch.syspath_prepend(str(ENTRYPOINTS_DIR))
    return importlib.import_module("local_iam")


def header(access_key_id: str, region: str = "us-east-1") -> str:
    return (f"AWS4-HMAC-SHA256 Credential={access_key_id}/20261129/{region}/sagemaker/aws4_request, "
            "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64)


def put_role(iam: LocalIam, allow_invoke: bool = True) -> None:
    scope = PolicyScope("classify", "Shapes-EP", "us-east-1", ACCOUNT, allow_invoke=allow_invoke)
    iam.put_role("classify-role", trust_policy(), "least-privilege", execution_policy(scope))


def test_unsigned_and_foreign_keys_are_not_checked(server_side: ModuleType, tmp_path: Path) -> None:
    assert server_side.authorize_invoke(tmp_path, ACCOUNT, None, "Shapes-EP") is None
    assert server_side.authorize_invoke(tmp_path, ACCOUNT, header("AKIAFAKEKEYFORTESTS12"), "x") is None


def test_a_session_is_authorised_by_its_roles_policy(server_side: ModuleType, tmp_path: Path) -> None:
    iam = LocalIam(tmp_path, ACCOUNT)
    put_role(iam)
    with iam.session("classify-role", "classify") as credentials:
        assert server_side.authorize_invoke(tmp_path, ACCOUNT, header(credentials.access_key_id), "Shapes-EP") is None
        wrong_region = server_side.authorize_invoke(tmp_path, ACCOUNT, header(credentials.access_key_id, "eu-west-1"),
                                                    "Shapes-EP")
        assert wrong_region.code == "AccessDeniedException" and ":eu-west-1:" in wrong_region.message
        other = server_side.authorize_invoke(tmp_path, ACCOUNT, header(credentials.access_key_id), "Other-EP")
        assert other.status == 400 and other.message == (
            "User: arn:aws:sts::000000000000:assumed-role/classify-role/classify is not authorized to perform: "
            "sagemaker:InvokeEndpoint on resource: arn:aws:sagemaker:us-east-1:000000000000:endpoint/other-ep "
            "because no identity-based policy allows the sagemaker:InvokeEndpoint action")
        put_role(iam, allow_invoke=False)  # read again on every request: applies at once
        assert server_side.authorize_invoke(tmp_path, ACCOUNT, header(credentials.access_key_id), "Shapes-EP")
    ended = server_side.authorize_invoke(tmp_path, ACCOUNT, header(credentials.access_key_id), "Shapes-EP")
    assert (ended.status, ended.code) == (403, "UnrecognizedClientException")


def test_secrets_are_never_written(tmp_path: Path) -> None:
    iam = LocalIam(tmp_path, ACCOUNT)
    put_role(iam)
    with iam.session("classify-role", "classify") as credentials:
        written = "".join(p.read_text() for p in tmp_path.rglob("*.json"))
        assert credentials.access_key_id.startswith("ASIALOCAL") and credentials.access_key_id not in written
        assert credentials.secret_access_key not in written and credentials.session_token not in written
        assert credentials.secret_access_key not in repr(credentials)
    assert list((tmp_path / "credentials").iterdir()) == []


def test_bad_roles_and_policies_are_refused(tmp_path: Path) -> None:
    iam = LocalIam(tmp_path, ACCOUNT)
    with pytest.raises(InvalidInputError, match="role name"):
        iam.put_role("../escape", trust_policy(), "p", {"Version": "2012-10-17", "Statement": []})
    with pytest.raises(InvalidInputError, match="at least one statement"):
        iam.put_role("classify-role", trust_policy(), "p", {"Version": "2012-10-17", "Statement": []})
    with pytest.raises(NotFoundError):
        iam.get_role("missing-role")
    with pytest.raises(NotFoundError):
        with iam.session("missing-role", "s"):
            pass
