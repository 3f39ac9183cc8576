"""Labelled evaluation (core/evaluation/) held to the same assertions on both backends.

It uses nothing but the EndpointManager and Storage contracts, so each backend runs it unchanged:
locally against ``entrypoints/serve.py`` in the job environment, on aws against a SageMaker
endpoint (moto behind the SageMaker stand-in) invoked through SageMaker Runtime (the Runtime
stand-in, serving the same model with the same server). The model and its deployment are those
of the endpoints contract suite (its fixtures are reused).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from core.backend import Backend
from core.endpoints import Endpoint, EndpointManager, EndpointStatus
from core.endpoints.invoke import image_request
from core.entities import DatasetRecord
from core.errors import InvalidInputError, NotFoundError
from core.evaluation import DatasetTestSplit, EvaluationResult, LabelledZip, compare_results, evaluate_endpoints
from core.types import BackendKind
from tests.contracts.test_endpoints_contract import (  # noqa: F401  (fixtures)
    SETTLE_S,
    deploy,
    endpoints,
    local_job_python,
    model_uri,
)
from tests.core.endpoints.conftest import CLASS_NAMES, model_tar  # noqa: F401  (model_tar is a fixture)
from tests.core.evaluation.images import write_image_folder, zip_folder

PER_CLASS = 3
IMAGES_PER_REQUEST = 4


@pytest.fixture
def serving(endpoints: EndpointManager, deploy: Callable[..., Endpoint]) -> Callable[[str], str]:
    """Deploys the tiny model under a name and waits until it is InService."""

    def serve(name: str) -> str:
        deploy(name)
        endpoint = endpoints.wait(name, timeout_s=SETTLE_S, poll_s=0.2)
        assert endpoint.status is EndpointStatus.IN_SERVICE, endpoint.failure_reason
        return name

    return serve


@pytest.fixture
def shapes_zip(tmp_path: Path) -> LabelledZip:
    """``shapes/train`` and ``shapes/test`` with PER_CLASS images of each class in test/."""
    write_image_folder(tmp_path / "zip" / "shapes" / "train", dict.fromkeys(CLASS_NAMES, 1))
    write_image_folder(tmp_path / "zip" / "shapes" / "test", dict.fromkeys(CLASS_NAMES, PER_CLASS), fmt="JPEG")
    return LabelledZip("shapes.zip", zip_folder(tmp_path / "zip"))


def evaluate(backend: Backend, names: list[str], source: LabelledZip | DatasetTestSplit, scratch: Path
             ) -> list[EvaluationResult]:
    return evaluate_endpoints(backend.endpoints, names, source, storage=backend.storage,
                              object_prefixes=backend.object_prefixes, scratch_dir=scratch,
                              images_per_request=IMAGES_PER_REQUEST, concurrency=2)


def test_a_labelled_zip_is_evaluated_image_by_image(backend: Backend, serving: Callable[[str], str],
                                                    shapes_zip: LabelledZip, tmp_path: Path) -> None:
    serving("eval-ep")
    images = len(CLASS_NAMES) * PER_CLASS

    (result,) = evaluate(backend, ["eval-ep"], shapes_zip, tmp_path / "scratch")

    assert (result.endpoint, result.source, result.failures) == ("eval-ep", "zip shapes.zip, test/", ())
    assert result.classes.mapping == {c: c for c in CLASS_NAMES} and not result.classes.notes
    metrics = result.metrics
    assert metrics.images == images and metrics.labels == CLASS_NAMES  # every class is some image's truth
    assert [c.support for c in metrics.classes] == [PER_CLASS] * len(CLASS_NAMES)
    assert sum(map(sum, metrics.confusion)) == images
    assert metrics.correct == sum(metrics.confusion[i][i] for i in range(len(metrics.labels)))
    assert metrics.top_k_accuracy == 1.0  # 3 classes: every label is in the top 5
    assert metrics.latency.requests == math.ceil(images / IMAGES_PER_REQUEST) and metrics.latency.p50_ms > 0
    zipped = dict(_test_images(tmp_path / "zip" / "shapes" / "test"))
    for answer in result.records:
        assert answer.true_score == dict(answer.top_k)[answer.true_label]  # every label's probability was asked
        alone = backend.endpoints.invoke("eval-ep", *image_request(zipped[answer.path])).predictions[0]
        assert answer.top_k[0] == alone[0]  # in a batch of the evaluation or alone: the same answer
    assert list((tmp_path / "scratch").iterdir()) == []


def test_a_registered_datasets_test_split_comes_from_the_backends_storage(
    backend: Backend, serving: Callable[[str], str], tmp_path: Path
) -> None:
    serving("eval-ep")
    write_image_folder(tmp_path / "ds" / "train", dict.fromkeys(CLASS_NAMES, 1))
    write_image_folder(tmp_path / "ds" / "test", {"circle": 2, "square": 1})
    uri = backend.storage.put_folder(tmp_path / "ds", "datasets/shapes")
    dataset = DatasetRecord(name="shapes", uri=uri, source="test", created_at=time.time())

    (result,) = evaluate(backend, ["eval-ep"], DatasetTestSplit(dataset), tmp_path / "scratch")

    assert result.source == "dataset shapes, test/"
    assert sorted(r.path for r in result.records) == ["circle/0.png", "circle/1.png", "square/0.png"]
    assert result.classes.unused_labels == ("cross",)
    assert list((tmp_path / "scratch").iterdir()) == []


USER_BUCKET = "user-data"


@pytest.mark.parametrize("backend", [BackendKind.AWS], indirect=True, ids=["aws"])
def test_a_dataset_registered_in_place_is_read_where_it_lies(backend: Backend, serving: Callable[[str], str],
                                                             tmp_path: Path) -> None:
    """Another bucket than the console's (see test_datasets_contract.py); the local backend reaches
    none, which tests/core/evaluation/test_evaluation.py shows it says."""
    serving("eval-ep")
    root = write_image_folder(tmp_path / "dogs" / "test", {"circle": 1, "cross": 2}).parent
    write_image_folder(root / "train", {"circle": 1})
    (root / "test" / "cross" / "truncated.jpg").write_bytes(b"\xff\xd8\xff broken")  # left in the bucket
    s3 = backend.session.client("s3")  # type: ignore[attr-defined]
    s3.create_bucket(Bucket=USER_BUCKET)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        s3.put_object(Bucket=USER_BUCKET, Key=f"scraped/dogs/{path.relative_to(root).as_posix()}",
                      Body=path.read_bytes())
    dataset = DatasetRecord(name="dogs", uri=f"s3://{USER_BUCKET}/scraped/dogs/", source="in place",
                            created_at=time.time())

    (result,) = evaluate(backend, ["eval-ep"], DatasetTestSplit(dataset), tmp_path / "scratch")

    assert result.source == "dataset dogs, test/"
    assert [r.path for r in result.records] == ["circle/0.png", "cross/0.png", "cross/1.png"]
    assert [f.path for f in result.failures] == ["cross/truncated.jpg"]
    assert list((tmp_path / "scratch").iterdir()) == []


def test_two_endpoints_of_one_model_compare_equal(backend: Backend, serving: Callable[[str], str],
                                                  shapes_zip: LabelledZip, tmp_path: Path) -> None:
    serving("eval-ep-a")
    serving("eval-ep-b")

    first, second = evaluate(backend, ["eval-ep-a", "eval-ep-b"], shapes_zip, tmp_path / "scratch")

    assert [r.predicted for r in first.records] == [r.predicted for r in second.records]
    comparison = compare_results(first, second)
    assert comparison.images == len(CLASS_NAMES) * PER_CLASS
    assert (comparison.accuracy_delta, comparison.only_first_right, comparison.only_second_right) == (0, 0, 0)


def test_classes_the_model_was_not_trained_on_are_refused(backend: Backend, serving: Callable[[str], str],
                                                          tmp_path: Path) -> None:
    serving("eval-ep")
    source = LabelledZip("fruit.zip", zip_folder(write_image_folder(tmp_path / "fruit", {"apple": 1, "pear": 1})))

    with pytest.raises(InvalidInputError, match=r"none of the 2 class folders \(apple, pear\) is a label of endpoint "
                                                r"'eval-ep', whose model knows 3 labels \(circle, cross, square\)"):
        evaluate(backend, ["eval-ep"], source, tmp_path / "scratch")
    assert list((tmp_path / "scratch").iterdir()) == []


def test_an_unknown_endpoint_is_not_found(backend: Backend, shapes_zip: LabelledZip, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        evaluate(backend, ["no-such-endpoint"], shapes_zip, tmp_path / "scratch")


def _test_images(folder: Path) -> list[tuple[str, bytes]]:
    return [(p.relative_to(folder).as_posix(), p.read_bytes()) for p in sorted(folder.rglob("*.jpeg"))]
