"""The Data page on the aws backend (moto in process): an S3 prefix registered where it lies."""

from __future__ import annotations

from pathlib import Path

from core.aws import AwsSession
from core.backend import Backend
from tests.contracts.test_datasets_contract import GOOD, dataset_with_bad_files
from tests.core.aws_faults import (
    Fault,
    faults_fixture,  # noqa: F401  (fixture)
)
from tests.core.aws_fixtures import (  # noqa: F401  (fixtures register on import)
    aws_credentials_fixture,
    aws_fixture,
    aws_settings_fixture,
    no_network_fixture,
)
from tests.pages.conftest import open_page
from tests.pages.test_aws_faults_pages import _shows_only_words, aws_backend  # noqa: F401  (fixture)

USER_BUCKET = "user-data"


def _user_prefix(aws: AwsSession, tmp_path: Path) -> str:
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=USER_BUCKET)
    root = dataset_with_bad_files(tmp_path / "dogs")
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        s3.put_object(Bucket=USER_BUCKET, Key=f"scraped/dogImages/{path.relative_to(root).as_posix()}",
                      Body=path.read_bytes())
    return f"s3://{USER_BUCKET}/scraped/dogImages/"


def test_an_s3_prefix_is_checked_and_registered_without_copying(aws_backend: Backend, aws: AwsSession,
                                                                tmp_path: Path) -> None:
    uri = _user_prefix(aws, tmp_path)
    at = open_page("data")
    at.radio(key="data_source").set_value("S3 prefix (in place)").run()
    at.text_input(key="data_s3").input(uri).run()
    at.button(key="data_check").click().run()
    assert not at.exception and not at.error
    assert {m.label: m.value for m in at.metric}["Images"] == str(len(GOOD))
    assert at.text_input(key="data_name").value == "dog-images"
    at.button(key="data_register").click().run()
    assert not at.exception
    assert any(f"Dataset dog-images is ready at {uri}" in s.value for s in at.success)
    assert [d.uri for d in aws_backend.store.list_datasets()] == [uri]
    assert aws_backend.storage.list() == []  # nothing was copied into the console's bucket


def test_an_s3_prefix_that_is_denied_is_said_in_words(aws_backend: Backend, aws: AwsSession, tmp_path: Path,
                                                     faults: dict[str, list[Fault]]) -> None:
    uri = _user_prefix(aws, tmp_path)
    faults["s3"].append(Fault("ListObjectsV2", "AccessDenied", "Access Denied", status=403))
    at = open_page("data")
    at.radio(key="data_source").set_value("S3 prefix (in place)").run()
    at.text_input(key="data_s3").input(uri).run()
    at.button(key="data_check").click().run()
    _shows_only_words(at, "s3:ListBucket")
    assert aws_backend.store.list_datasets() == []
