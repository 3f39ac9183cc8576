"""Labelled evaluation (core/evaluation/): the metrics on hand-computed records, class names
matched to labels, the folders and zips images come from, request planning, the runner against a
fake endpoint (refusals, cancelling, an endpoint that stops) and against a real local endpoint
serving a tiny model."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from core.config import DEFAULT_JOB_PYTHON
from core.datasets.in_place import ListedObject, NoObjectPrefixes, ObjectPrefix, ObjectPrefixes
from core.endpoints import EndpointStatus, LocalEndpointManager
from core.endpoints._base import EndpointManager
from core.endpoints.entities import Endpoint, InvocationResult, ServingConfig
from core.endpoints.invoke import image_request
from core.entities import DatasetRecord
from core.errors import BackendError, InvalidInputError, NotFoundError
from core.evaluation import (
    DatasetTestSplit,
    EvaluationCancelled,
    EvaluationProgress,
    EvaluationRecord,
    EvaluationResult,
    LabelledZip,
    compare_results,
    compute_metrics,
    evaluate_endpoints,
    run_evaluation,
)
from core.evaluation.charts import confusion_heatmap, per_class_rows, top_confusion_rows
from core.evaluation.classes import ClassMatch, match_classes
from core.evaluation.images import LabelledImages, fetch_labelled_images, find_labelled_images
from core.evaluation.metrics import TOP_K, label_order, percentile
from core.evaluation.runner import evaluate_images, plan_requests
from core.jobstore import JobStore
from core.storage import LocalStorage
from tests.core.endpoints.conftest import CLASS_NAMES, model_tar  # noqa: F401  (model_tar is a fixture)
from tests.core.evaluation.images import COLOURS, write_image_folder, zip_folder


def local_places(tmp_path: Path) -> dict[str, Any]:
    """Where a local evaluation finds datasets (``tmp_path/store``) and puts its images (``tmp_path/scratch``)."""
    return {"storage": LocalStorage(tmp_path / "store"), "object_prefixes": NoObjectPrefixes(),
            "scratch_dir": tmp_path / "scratch"}


def record(path: str, true: str, top_k: Sequence[tuple[str, float]], latency: float = 10.0, *,
           true_score: float | None = None, request: int | None = None) -> EvaluationRecord:
    return EvaluationRecord(path, true, tuple(top_k), latency, true_score=true_score, request=request)


# Hand-computed: 6 images, 3 true classes (bird is never answered), 2 correct, 5 with the truth in the top 5.
RECORDS = [
    record("cat/1", "cat", [("cat", 0.9), ("dog", 0.05), ("bird", 0.05)], 10),
    record("cat/2", "cat", [("dog", 0.6), ("cat", 0.3), ("bird", 0.1)], 20),
    record("dog/1", "dog", [("dog", 0.8), ("cat", 0.2)], 30),
    record("dog/2", "dog", [("cat", 0.7), ("bird", 0.2), ("fish", 0.05), ("ant", 0.03), ("eel", 0.01)], 40,
           true_score=0.01),
    record("bird/1", "bird", [("cat", 0.6), ("bird", 0.35), ("dog", 0.05)], 50),
    record("dog/3", "dog", [("cat", 0.55), ("dog", 0.45)], 60),
]


# --- metrics ------------------------------------------------------------------------------------------


def test_accuracy_and_top_5_accuracy() -> None:
    metrics = compute_metrics(RECORDS)

    assert (metrics.images, metrics.correct, metrics.top_k_correct) == (6, 2, 5)
    assert metrics.accuracy == pytest.approx(2 / 6)
    assert metrics.top_k_accuracy == pytest.approx(5 / 6)


def test_top_5_counts_only_the_first_five_answers() -> None:
    sixth = record("a/1", "a", [("b", 0.3), ("c", 0.2), ("d", 0.2), ("e", 0.1), ("f", 0.1), ("a", 0.1)])

    assert TOP_K == 5
    assert compute_metrics([sixth]).top_k_correct == 0


def test_precision_and_recall_per_class_with_a_class_never_answered() -> None:
    by_label = {c.label: c for c in compute_metrics(RECORDS).classes}

    assert list(by_label) == ["bird", "cat", "dog"]  # truths and answers, in label order
    bird, cat, dog = by_label["bird"], by_label["cat"], by_label["dog"]
    assert (bird.support, bird.predicted, bird.correct) == (1, 0, 0)
    assert bird.precision is None and bird.recall == 0.0  # never answered: precision is undefined
    assert (cat.support, cat.predicted, cat.correct) == (2, 4, 1)
    assert (cat.precision, cat.recall) == (pytest.approx(1 / 4), pytest.approx(1 / 2))
    assert (dog.support, dog.predicted, dog.correct) == (3, 2, 1)
    assert (dog.precision, dog.recall) == (pytest.approx(1 / 2), pytest.approx(1 / 3))


def test_a_label_only_answered_has_no_recall() -> None:
    metrics = compute_metrics([record("a/1", "a", [("b", 0.9), ("a", 0.1)])])

    assert [(c.label, c.support, c.predicted, c.recall, c.precision) for c in metrics.classes] == [
        ("a", 1, 0, 0.0, None), ("b", 0, 1, None, 0.0)]


def test_confusion_matrix_and_the_most_frequent_confusions_first() -> None:
    metrics = compute_metrics(RECORDS)

    assert metrics.labels == ("bird", "cat", "dog")
    assert metrics.confusion == ((0, 1, 0), (0, 1, 1), (0, 2, 1))  # rows: truth; columns: answer
    assert [(c.true_label, c.predicted_label, c.count) for c in metrics.top_confusions] == [
        ("dog", "cat", 2), ("bird", "cat", 1), ("cat", "dog", 1)]  # by count, then by label
    assert len(compute_metrics(RECORDS, top_confusions=1).top_confusions) == 1


def test_labels_are_in_natural_order() -> None:
    records = [record(f"{n}/x", str(n), [(str(n), 1.0)]) for n in (10, 2, 1)]

    assert compute_metrics(records).labels == ("1", "2", "10")
    assert sorted(["b10", "B2", "a"], key=label_order) == ["a", "B2", "b10"]


def test_worst_mistakes_are_the_surest_wrong_answers() -> None:
    worst = compute_metrics(RECORDS).worst

    assert [(m.path, m.predicted_label, m.predicted_score, m.true_score) for m in worst] == [
        ("dog/2", "cat", 0.7, 0.01),  # margin 0.69: the true score was recorded apart from the top 5
        ("cat/2", "dog", 0.6, 0.3),
        ("bird/1", "cat", 0.6, 0.35),
        ("dog/3", "cat", 0.55, 0.45),
    ]
    assert [m.path for m in compute_metrics(RECORDS, worst=2).worst] == ["dog/2", "cat/2"]
    unknown = record("x/1", "x", [("y", 0.4)])  # true score unknown: counted as 0
    assert compute_metrics([unknown]).worst[0].true_score is None


def test_latency_percentiles() -> None:
    latency = compute_metrics(RECORDS).latency  # 10, 20, ... 60 ms, one request each

    assert latency.requests == 6
    assert latency.p50_ms == pytest.approx(35.0)
    assert latency.p95_ms == pytest.approx(57.5)  # rank 0.95 * 5 = 4.75: 50 + 0.75 * 10
    assert (latency.mean_ms, latency.max_ms) == (pytest.approx(35.0), 60.0)


def test_images_sent_together_count_as_one_request() -> None:
    records = [record("a/1", "a", [("a", 1.0)], 100, request=0), record("a/2", "a", [("a", 1.0)], 100, request=0),
               record("a/3", "a", [("a", 1.0)], 10, request=1)]

    latency = compute_metrics(records).latency

    assert (latency.requests, latency.p50_ms, latency.mean_ms) == (2, pytest.approx(55.0), pytest.approx(55.0))


def test_percentile() -> None:
    assert percentile([5.0], 95) == 5.0
    assert percentile([40, 10, 30, 20], 50) == 25.0
    assert percentile([10, 20, 30, 40], 95) == pytest.approx(38.5)
    assert percentile([10, 20], 0) == 10 and percentile([10, 20], 100) == 20
    with pytest.raises(InvalidInputError):
        percentile([], 50)
    with pytest.raises(InvalidInputError):
        percentile([1.0], 101)


def test_nothing_to_measure_is_an_error() -> None:
    with pytest.raises(InvalidInputError, match="no image was evaluated"):
        compute_metrics([])
    with pytest.raises(InvalidInputError, match="at least one prediction"):
        record("a/1", "a", [])


def test_tables_and_heatmap_of_the_metrics() -> None:
    metrics = compute_metrics(RECORDS)

    rows = per_class_rows(metrics)
    assert rows[0] == {"class": "bird", "images": 1, "answered as it": 0, "correct": 0, "precision": None,
                       "recall": 0.0}
    assert top_confusion_rows(metrics)[0] == {"true": "dog", "answered": "cat", "images": 2,
                                              "share of the class": pytest.approx(2 / 3)}
    heatmap = confusion_heatmap(metrics).data[0]
    assert list(heatmap.x) == list(heatmap.y) == ["bird", "cat", "dog"]
    assert [list(row) for row in heatmap.text] == [[0, 1, 0], [0, 1, 1], [0, 2, 1]]
    assert list(heatmap.z[2]) == [0.0, pytest.approx(2 / 3), pytest.approx(1 / 3)]  # shares of the true class


def test_the_heatmap_stays_readable_at_133_classes() -> None:
    labels = [f"{n:03d}.Breed_{n}" for n in range(1, 134)]
    records = [record(f"{label}/1", label, [(labels[(i + 1) % 133], 0.6), (label, 0.4)]) for i, label in
               enumerate(labels)]

    figure = confusion_heatmap(compute_metrics(records))

    assert list(figure.data[0].y) == labels
    assert figure.layout.height >= 133 * 14  # a row per class of at least 14 px
    assert figure.data[0].texttemplate is None  # no cell texts at this size


# --- class names ---------------------------------------------------------------------------------------


def test_class_folders_match_labels_exactly() -> None:
    match = match_classes(["cat", "dog"], ["dog", "cat", "bird"], endpoint="ep")

    assert match.mapping == {"cat": "cat", "dog": "dog"}
    assert (match.unmatched, match.loose, match.unused_labels) == ((), (), ("bird",))
    assert match.notes == ["the endpoint knows 1 labels that no class folder has (bird): it may still answer them"]


def test_class_folders_match_labels_ignoring_case_separators_and_numbered_prefixes() -> None:
    match = match_classes(["001.Affenpinscher", "002.Afghan_hound", "3"], ["affenpinscher", "Afghan hound", "3"],
                          endpoint="ep")

    assert match.mapping == {"001.Affenpinscher": "affenpinscher", "002.Afghan_hound": "Afghan hound", "3": "3"}
    assert match.loose == ("001.Affenpinscher", "002.Afghan_hound")
    assert "001.Affenpinscher → affenpinscher" in match.notes[0]


def test_a_loose_name_two_labels_share_matches_neither() -> None:
    match = match_classes(["CAT", "dog"], ["Cat", "cat_", "dog"], endpoint="ep")

    assert match.mapping == {"dog": "dog"} and match.unmatched == ("CAT",)


def test_folders_without_a_label_are_left_out_and_said() -> None:
    match = match_classes(["cat", "zebra"], ["cat", "dog"], endpoint="ep")

    assert match.mapping == {"cat": "cat"} and match.unmatched == ("zebra",)
    assert match.notes[0].startswith("1 of 2 class folders match no label of the endpoint and were left out (zebra)")


def test_no_class_folder_matching_any_label_says_the_model_knows_other_classes() -> None:
    with pytest.raises(InvalidInputError) as caught:
        match_classes(["apple", "pear"], ["circle", "cross", "square"], endpoint="shapes")

    assert str(caught.value) == (
        "none of the 2 class folders (apple, pear) is a label of endpoint 'shapes', whose model knows 3 labels "
        "(circle, cross, square): it was trained on other classes, or the folders are named differently")


# --- where the images come from -----------------------------------------------------------------------


def test_the_test_split_is_evaluated_when_there_is_one(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "dogs" / "train", {"a": 3, "b": 3})
    write_image_folder(tmp_path / "dogs" / "test", {"a": 1, "b": 2})
    (tmp_path / "dogs" / "README.txt").write_text("about")

    images = find_labelled_images(tmp_path, source="zip dogs.zip")

    assert images.root == tmp_path / "dogs" / "test"
    assert images.source == "zip dogs.zip, test/" and images.note is None
    assert images.images == (("a/0.png", "a"), ("b/0.png", "b"), ("b/1.png", "b"))
    assert images.classes == ("a", "b")


def test_without_a_test_split_the_valid_split_is_evaluated_and_said(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "train", {"a": 1})
    write_image_folder(tmp_path / "val", {"a": 2})

    images = find_labelled_images(tmp_path, source="zip x.zip")

    assert images.root == tmp_path / "val" and len(images.images) == 2
    assert images.note == "there is no test/ split: the val/ split is evaluated"


def test_class_folders_without_splits_are_evaluated_inside_a_wrapping_folder(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "shapes", {"circle": 2, "cross": 1})
    (tmp_path / "shapes" / "circle" / "notes.txt").write_text("not an image")
    (tmp_path / "shapes" / "loose.png").write_bytes(b"outside any class folder")
    (tmp_path / "__MACOSX" / "shapes" / "circle").mkdir(parents=True)
    (tmp_path / "__MACOSX" / "shapes" / "circle" / "._0.png").write_bytes(b"clutter")

    images = find_labelled_images(tmp_path, source="zip shapes.zip")

    assert images.root == tmp_path / "shapes"
    assert images.images == (("circle/0.png", "circle"), ("circle/1.png", "circle"), ("cross/0.png", "cross"))


def test_only_a_train_split_is_refused(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "train", {"a": 1})

    with pytest.raises(InvalidInputError, match="holds only a train/ split"):
        find_labelled_images(tmp_path, source="zip x.zip")


def test_a_folder_without_labelled_images_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "readme.txt").write_text("no images")

    with pytest.raises(InvalidInputError, match=r"zip x.zip holds no labelled images: expected <class>/<image>.jpg"):
        find_labelled_images(tmp_path, source="zip x.zip")


def test_a_zip_is_unpacked_into_scratch_and_removed_afterwards(tmp_path: Path) -> None:
    data = zip_folder(write_image_folder(tmp_path / "src" / "test", {"a": 2}).parent)
    scratch = tmp_path / "scratch"
    reports: list[tuple[int, int]] = []

    with fetch_labelled_images(LabelledZip("shapes.zip", data), **local_places(tmp_path),
                               progress=lambda d, t: reports.append((d, t))) as images:
        assert images.source == "zip shapes.zip, test/" and len(images.images) == 2
        assert all((images.root / path).is_file() for path, _ in images.images)
        assert images.root.is_relative_to(scratch)
    assert list(scratch.iterdir()) == []
    assert reports[-1] == (len(data), len(data))


def test_a_file_that_is_not_a_zip_says_so_and_leaves_nothing(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"

    with pytest.raises(InvalidInputError, match="zip"):
        with fetch_labelled_images(LabelledZip("photos.zip", b"not a zip at all"), **local_places(tmp_path)):
            pass
    assert list(scratch.iterdir()) == []


def test_a_registered_dataset_without_test_or_valid_split_is_refused(tmp_path: Path) -> None:
    places = local_places(tmp_path)
    uri = places["storage"].put_folder(write_image_folder(tmp_path / "ds" / "train", {"a": 1}).parent,
                                       "datasets/only-train")

    with pytest.raises(InvalidInputError, match="dataset only-train has no test/ or valid/ split"):
        with fetch_labelled_images(DatasetTestSplit(DatasetRecord("only-train", uri, "test", 0.0)), **places):
            pass


class MemoryPrefix(ObjectPrefix):
    """Objects in memory, as an object store's prefix lists and reads them."""

    def __init__(self, uri: str, objects: dict[str, bytes]) -> None:
        self.uri, self.objects = uri, objects

    def list(self, progress: Callable[[int], None] | None = None) -> list[ListedObject]:
        return [ListedObject(key, len(data)) for key, data in sorted(self.objects.items())]

    def read(self, key: str) -> bytes:
        return self.objects[key]


class MemoryPrefixes(ObjectPrefixes):
    def __init__(self, *prefixes: MemoryPrefix) -> None:
        self.prefixes = {prefix.uri: prefix for prefix in prefixes}

    def open(self, uri: str) -> ObjectPrefix:
        return self.prefixes[uri]


def in_place_dataset(tmp_path: Path, keys: Sequence[str]) -> tuple[DatasetRecord, MemoryPrefixes]:
    """A dataset registered in place at s3://elsewhere/dogs/, holding a small image under each key."""
    image = (write_image_folder(tmp_path / "one", {"a": 1}) / "a" / "0.png").read_bytes()
    prefix = MemoryPrefix("s3://elsewhere/dogs/", {key: b"" if key.endswith("/") else image for key in keys})
    return DatasetRecord("dogs", prefix.uri, f"in place: {prefix.uri}", 0.0), MemoryPrefixes(prefix)


def test_a_dataset_registered_in_place_is_read_where_it_lies(tmp_path: Path) -> None:
    dataset, prefixes = in_place_dataset(tmp_path, ["train/a/0.png", "test/", "test/a/0.png", "test/b/1.png"])
    reports: list[tuple[int, int]] = []

    with fetch_labelled_images(DatasetTestSplit(dataset), **{**local_places(tmp_path), "object_prefixes": prefixes},
                               progress=lambda done, total: reports.append((done, total))) as images:
        assert images.source == "dataset dogs, test/"
        assert images.images == (("a/0.png", "a"), ("b/1.png", "b"))
    assert reports[-1][0] == reports[-1][1] > 0
    assert list((tmp_path / "scratch").iterdir()) == []


def test_a_key_of_a_dataset_in_place_that_climbs_out_is_refused(tmp_path: Path) -> None:
    dataset, prefixes = in_place_dataset(tmp_path, ["test/a/0.png", "test/../../escaped.png"])
    places = {**local_places(tmp_path), "object_prefixes": prefixes}

    with pytest.raises(InvalidInputError, match=r"invalid storage key 'test/../../escaped.png'"):
        with fetch_labelled_images(DatasetTestSplit(dataset), **places):
            pass
    assert not (tmp_path / "escaped.png").exists() and list((tmp_path / "scratch").iterdir()) == []


def test_a_dataset_in_place_the_backend_cannot_reach_says_so(tmp_path: Path) -> None:
    dataset = DatasetRecord("dogs", "s3://elsewhere/dogs/", "in place: s3://elsewhere/dogs/", 0.0)

    with pytest.raises(InvalidInputError, match="the local backend reads no data in place"):
        with fetch_labelled_images(DatasetTestSplit(dataset), **local_places(tmp_path)):
            pass


def test_requests_are_planned_by_count_and_by_bytes() -> None:
    assert plan_requests([10] * 20, images_per_request=8) == [list(range(8)), list(range(8, 16)), list(range(16, 20))]
    # 4 * ceil(300 / 3) + 16 = 416 bytes each in JSON: two fit under 1000, and a large image goes alone
    assert plan_requests([300, 300, 300, 5000, 300], images_per_request=8, max_bytes=1000) == [
        [0, 1], [2], [3], [4]]


# --- the runner against a fake endpoint ------------------------------------------------------------------


class Interrupted(BaseException):
    """What a page's script thread gets when the user clicks during a run (Streamlit's StopException)."""


class FakeEndpoints(EndpointManager):
    """Endpoints answering as the inference handler does, each naming an image by its colour.

    ``answers[name]`` maps a colour (the first pixel) to the label answered with probability 0.7
    (the other labels share the rest); an image that does not decode makes the whole request a
    400, as the real handler does. ``requests`` records the number of images of each request.
    """

    backend_name = "fake"
    instance_types = ("local",)
    max_instance_count = 1
    instance_help = "a fake"

    def __init__(self, labels: Sequence[str], answers: dict[str, dict[tuple[int, int, int], str]], *,
                 delay_s: float = 0.0) -> None:
        self.labels, self.answers, self.delay_s = list(labels), answers, delay_s
        self.status = dict.fromkeys(answers, EndpointStatus.IN_SERVICE)
        self.requests: list[int] = []
        self.lock = threading.Lock()

    def _deploy(self, name: str, model_uri: str, *, instance_type: str, instance_count: int,
                serving: ServingConfig) -> Endpoint:
        raise NotImplementedError

    def runtime_client_code(self, endpoint: Endpoint) -> str:
        raise NotImplementedError

    def describe(self, name: str) -> Endpoint:
        if name not in self.answers:
            raise NotFoundError(f"endpoint {name}: not found")
        return Endpoint(name=name, status=self.status[name], backend="fake", model_uri="file:///m", created_at=0.0)

    def list_endpoints(self) -> list[Endpoint]:
        return [self.describe(name) for name in self.answers]

    def delete(self, name: str) -> None:
        raise NotImplementedError

    def invoke(self, name: str, body: bytes, content_type: str, *,
               accept: str = "application/json") -> InvocationResult:
        import base64

        if self.describe(name).status is not EndpointStatus.IN_SERVICE:
            raise InvalidInputError(f"endpoint {name!r} is {self.status[name].value}: it answers once InService")
        if content_type == "application/json":
            document = json.loads(body)
            images, top_k = [base64.b64decode(i["b64"]) for i in document["instances"]], document.get("top_k", 5)
        else:
            images, top_k = [body], 5
        with self.lock:
            self.requests.append(len(images))
        time.sleep(self.delay_s)
        predictions = []
        for position, data in enumerate(images):
            try:
                colour = Image.open(io.BytesIO(data)).convert("RGB").getpixel((0, 0))
            except OSError:
                raise InvalidInputError(f"endpoint {name!r} refused the request (400): instances[{position}] is not "
                                        "an image in a supported format") from None
            answer = self.answers[name].get(colour, self.labels[0])
            rest = [label for label in self.labels if label != answer]
            ranking = [(answer, 0.7)] + [(label, round(0.3 / len(rest), 6)) for label in rest]
            predictions.append({"top_k": [{"label": label, "probability": p} for label, p in ranking[:top_k]]})
        return InvocationResult(status_code=200, body={"predictions": predictions}, latency_ms=5.0 + len(images))


SHAPES = ["circle", "cross", "star", "heart", "moon", "square"]
"""More labels than the top 5, so that the true score must be asked for apart."""
RED, GREEN, BLUE, YELLOW = COLOURS[:4]


@pytest.fixture
def labelled(tmp_path: Path) -> LabelledImages:
    """circle: 2 images (red, green), cross: 2 (green, blue), square: 2 (blue, yellow)."""
    return find_labelled_images(write_image_folder(tmp_path / "images", {"circle": 2, "cross": 2, "square": 2}),
                                source="folder")


def fake(delay_s: float = 0.0) -> FakeEndpoints:
    """ep-a answers red circle, green cross, blue square, yellow star; ep-b answers everything circle."""
    return FakeEndpoints(SHAPES, {"ep-a": {RED: "circle", GREEN: "cross", BLUE: "square", YELLOW: "star"}, "ep-b": {}},
                         delay_s=delay_s)


def test_every_image_is_answered_in_requests_of_several_images(labelled: LabelledImages) -> None:
    endpoints = fake()
    reports: list[tuple[int, int]] = []

    result = evaluate_images(endpoints, "ep-a", labelled, images_per_request=4, concurrency=2,
                             progress=lambda done, total: reports.append((done, total)))

    assert endpoints.requests[0] == 1 and sorted(endpoints.requests[1:]) == [2, 4]  # the labels probe, then 4 + 2
    assert sorted(reports)[-1] == (6, 6)
    assert [r.path for r in result.records] == [path for path, _ in labelled.images]
    answered = {r.path: r.predicted for r in result.records}
    assert answered == {"circle/0.png": "circle", "circle/1.png": "cross", "cross/0.png": "cross",
                        "cross/1.png": "square", "square/0.png": "square", "square/1.png": "star"}
    assert result.metrics.correct == 3 and result.metrics.latency.requests == 2
    wrong = next(r for r in result.records if r.path == "square/1.png")
    assert len(wrong.top_k) == TOP_K and "square" not in dict(wrong.top_k)  # 6 labels: square is 6th
    assert wrong.true_score == pytest.approx(0.06)  # asked for every label, so known anyway
    assert result.classes.unused_labels == ("heart", "moon", "star")
    assert set(result.thumbnails) == {m.path for m in result.metrics.worst}
    assert Image.open(io.BytesIO(__import__("base64").b64decode(result.thumbnails["square/1.png"]))).size[0] <= 160
    assert (result.images_per_request, result.concurrency, result.source) == (4, 2, "folder")


def test_an_image_the_endpoint_refuses_fails_alone(labelled: LabelledImages) -> None:
    (labelled.root / "cross" / "2.png").write_bytes(b"not an image")
    images = find_labelled_images(labelled.root, source="folder")
    endpoints = fake()

    result = evaluate_images(endpoints, "ep-a", images, images_per_request=8)

    assert [(f.path, f.error) for f in result.failures] == [
        ("cross/2.png", "endpoint 'ep-a' refused the request (400): instances[0] is not an image in a supported "
                        "format")]
    assert result.metrics.images == 6  # its neighbours, asked again one by one, still count
    assert endpoints.requests == [1, 7, 1, 1, 1, 1, 1, 1, 1]


def test_images_of_classes_the_endpoint_does_not_know_are_left_out(tmp_path: Path) -> None:
    images = find_labelled_images(write_image_folder(tmp_path, {"circle": 1, "zebra": 2}), source="folder")

    result = evaluate_images(fake(), "ep-a", images)

    assert result.metrics.images == 1 and result.classes.unmatched == ("zebra",)
    assert "were left out (zebra)" in result.classes.notes[0]


def test_no_class_the_endpoint_knows_is_an_error_before_any_image_is_sent(tmp_path: Path) -> None:
    images = find_labelled_images(write_image_folder(tmp_path, {"apple": 1, "pear": 1}), source="folder")
    endpoints = fake()

    with pytest.raises(InvalidInputError, match=r"none of the 2 class folders .* is a label of endpoint 'ep-a'"):
        evaluate_images(endpoints, "ep-a", images)
    assert endpoints.requests == [1]  # only the labels probe


def test_an_endpoint_not_in_service_is_refused(labelled: LabelledImages) -> None:
    endpoints = fake()
    endpoints.status["ep-a"] = EndpointStatus.CREATING

    with pytest.raises(InvalidInputError, match="endpoint 'ep-a' is Creating: it can be evaluated once InService"):
        evaluate_images(endpoints, "ep-a", labelled)
    with pytest.raises(NotFoundError):
        evaluate_images(endpoints, "no-such-endpoint", labelled)
    assert endpoints.requests == []


def test_an_endpoint_that_stops_serving_stops_the_evaluation(labelled: LabelledImages) -> None:
    endpoints = fake()

    def stop_after_first(done: int, total: int) -> None:
        endpoints.status["ep-a"] = EndpointStatus.FAILED

    with pytest.raises(InvalidInputError, match="endpoint 'ep-a' is Failed now: the evaluation stopped"):
        evaluate_images(endpoints, "ep-a", labelled, images_per_request=2, concurrency=1, progress=stop_after_first)


def test_an_answer_that_does_not_fit_the_request_is_a_backend_error(labelled: LabelledImages) -> None:
    class Forgetful(FakeEndpoints):
        def invoke(self, name: str, body: bytes, content_type: str, *,
                   accept: str = "application/json") -> InvocationResult:
            answer = super().invoke(name, body, content_type, accept=accept)
            return InvocationResult(status_code=200, body={"predictions": answer.body["predictions"][:1]},
                                    latency_ms=answer.latency_ms)

    endpoints = Forgetful(SHAPES, {"ep-a": {}})

    with pytest.raises(BackendError, match="endpoint 'ep-a' answered 1 predictions, or empty ones, about 2 images"):
        evaluate_images(endpoints, "ep-a", labelled, images_per_request=2)


def test_bad_settings_are_invalid_input(labelled: LabelledImages) -> None:
    with pytest.raises(InvalidInputError, match="images_per_request: must be 1 to 64"):
        evaluate_images(fake(), "ep-a", labelled, images_per_request=65)
    with pytest.raises(InvalidInputError, match="concurrency: must be 1 to 32"):
        evaluate_images(fake(), "ep-a", labelled, concurrency=0)


def test_cancelling_sends_no_further_request(labelled: LabelledImages) -> None:
    endpoints = fake()
    cancel = threading.Event()

    with pytest.raises(EvaluationCancelled, match="cancelled after 2 of 6 images"):
        evaluate_images(endpoints, "ep-a", labelled, images_per_request=2, concurrency=1, cancel=cancel,
                        progress=lambda done, total: cancel.set())
    assert endpoints.requests == [1, 2]


def test_two_endpoints_are_compared_on_the_same_images(tmp_path: Path) -> None:
    data = zip_folder(write_image_folder(tmp_path / "src" / "test", {"circle": 2, "cross": 2, "square": 2}).parent)
    states: list[EvaluationProgress] = []

    first, second = evaluate_endpoints(fake(), ["ep-a", "ep-b"], LabelledZip("shapes.zip", data),
                                       **local_places(tmp_path), progress=states.append, images_per_request=2,
                                       concurrency=1)

    assert (first.endpoint, second.endpoint) == ("ep-a", "ep-b")
    assert first.source == second.source == "zip shapes.zip, test/"
    assert (first.metrics.correct, second.metrics.correct) == (3, 2)  # ep-b answers circle to everything
    comparison = compare_results(first, second)
    assert comparison.images == 6 and comparison.accuracy_delta == pytest.approx(-1 / 6)
    assert (comparison.both_right, comparison.only_first_right, comparison.only_second_right,
            comparison.both_wrong) == (1, 2, 1, 2)
    assert states[0].stage == "fetch" and states[0].message.startswith("Preparing the images… ")
    evaluating = [s for s in states if s.stage == "evaluate"]
    assert [(s.endpoint, s.done, s.total) for s in evaluating] == [
        ("ep-a", 0, 6), ("ep-a", 2, 6), ("ep-a", 4, 6), ("ep-a", 6, 6), ("ep-b", 2, 6), ("ep-b", 4, 6), ("ep-b", 6, 6)]
    assert evaluating[0].message == "Asking ep-a: 0 / 6 images"
    assert evaluating[1].seconds_left is not None and evaluating[-1].seconds_left == 0
    assert evaluating[1].message.startswith("Asking ep-a: 2 / 6 images, about ")
    assert list((tmp_path / "scratch").iterdir()) == []


def test_the_same_endpoint_twice_or_none_is_refused(tmp_path: Path) -> None:
    source = LabelledZip("x.zip", b"")
    for names, words in (([], "choose an endpoint"), (["ep-a", "ep-a"], "two different endpoints")):
        with pytest.raises(InvalidInputError, match=words):
            evaluate_endpoints(fake(), names, source, **local_places(tmp_path))


def test_a_result_survives_json(labelled: LabelledImages) -> None:
    result = evaluate_images(fake(), "ep-a", labelled)

    assert EvaluationResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result
    with pytest.raises(InvalidInputError, match="not an evaluation result"):
        EvaluationResult.from_dict({"endpoint": "x"})


def test_a_caller_that_stops_waiting_cancels_the_evaluation(tmp_path: Path) -> None:
    folder = write_image_folder(tmp_path / "src", {"circle": 10, "cross": 10})
    endpoints = fake(delay_s=0.2)
    scratch = tmp_path / "scratch"

    def interrupt(state: EvaluationProgress) -> None:
        if state.stage == "evaluate":
            raise Interrupted

    with pytest.raises(Interrupted):
        run_evaluation(endpoints, ["ep-a"], LabelledZip("s.zip", zip_folder(folder)), **local_places(tmp_path),
                       on_progress=interrupt, images_per_request=1, concurrency=1)
    deadline = time.monotonic() + 10
    while any(scratch.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(scratch.iterdir()) == []  # the worker stopped and removed the images
    assert len(endpoints.requests) <= 4  # the labels probe, a request or two under way; not the 20 images


def test_run_evaluation_returns_what_the_evaluation_found(tmp_path: Path) -> None:
    folder = write_image_folder(tmp_path / "src", {"circle": 2})
    states: list[EvaluationProgress] = []
    main = threading.get_ident()
    threads: set[int] = set()

    def on_progress(state: EvaluationProgress) -> None:
        threads.add(threading.get_ident())
        states.append(state)

    (result,) = run_evaluation(fake(), ["ep-a"], LabelledZip("s.zip", zip_folder(folder)), **local_places(tmp_path),
                               on_progress=on_progress)

    assert result.metrics.images == 2 and threads == {main} and states[-1].fraction == 1.0


# --- the runner against a real local endpoint ------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, model_tar: Path) -> Iterator[LocalEndpointManager]:
    """A local endpoint ``shapes`` serving the tiny 3-class model; deleted at the end."""
    workspace = tmp_path_factory.mktemp("workspace")
    manager = LocalEndpointManager(JobStore(workspace / "console.db"), workspace, DEFAULT_JOB_PYTHON)
    manager.deploy("shapes", model_tar.as_uri(), max_batch_size=8, max_wait_ms=5)
    endpoint = manager.wait("shapes", timeout_s=120, poll_s=0.1)
    assert endpoint.status is EndpointStatus.IN_SERVICE, endpoint.failure_reason
    yield manager
    manager.delete("shapes")


def test_a_local_endpoint_answers_every_labelled_image(served: LocalEndpointManager, tmp_path: Path) -> None:
    root = write_image_folder(tmp_path, {"circle": 4, "cross": 4, "square": 4, "triangle": 1}, fmt="JPEG")
    (root / "square" / "broken.jpg").write_bytes(b"these bytes are not an image")
    images = find_labelled_images(root, source="folder")
    reports: list[tuple[int, int]] = []

    result = evaluate_images(served, "shapes", images, images_per_request=5, concurrency=2,
                             progress=lambda done, total: reports.append((done, total)))

    assert result.classes == ClassMatch(mapping={c: c for c in CLASS_NAMES}, unmatched=("triangle",))
    assert result.metrics.images == 12 and max(reports) == (13, 13)
    (failure,) = result.failures
    assert failure.path == "square/broken.jpg" and "refused the request (400)" in failure.error
    # requests of 5: [circle 0-3, cross 0], [cross 1-3, square 0-1], [square 2-3, broken]: the last one is
    # refused, and its two images are asked again one by one
    assert result.metrics.latency.requests == 4
    for answer in result.records:
        assert len(answer.top_k) == len(CLASS_NAMES) and answer.true_score == dict(answer.top_k)[answer.true_label]
        alone = served.invoke("shapes", *image_request((root / answer.path).read_bytes())).predictions[0]
        assert answer.top_k[0] == alone[0]  # sent in a batch or alone, the same answer
    assert 0 <= result.metrics.accuracy <= 1 and result.metrics.top_k_accuracy == 1.0  # 3 classes: all in the top 5
    assert result.metrics.latency.p50_ms > 0 and result.wall_s > 0 and result.images_per_s > 0
    json.dumps(result.to_dict())
