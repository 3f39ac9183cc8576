"""Asking endpoints about labelled images, and running an evaluation.

:func:`evaluate_endpoints` fetches the images into a scratch folder (see
:func:`core.evaluation.images.fetch_labelled_images`), asks one or two endpoints about every image
through :meth:`EndpointManager.invoke`, the same on both backends, and removes the folder.
:func:`run_evaluation` runs it for a page: in a worker thread, progress handed to the caller's
thread, cancelled when the caller stops waiting.

How an endpoint is asked: first one image with a ``top_k`` larger than any model's class count,
whose answer lists every label the model knows; the class folders are matched to those labels by
name (see :func:`core.evaluation.classes.match_classes`). Then the images go as JSON requests of
up to ``images_per_request`` images (under SageMaker's 6 MB payload limit), ``concurrency``
requests at a time, each asking every label's probability so that the true class's score is known
even when it is outside the top 5; only the top 5 and that score are kept. An image the endpoint
refuses (a corrupt file) is recorded as failed, not fatal.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from core.datasets.in_place import ObjectPrefixes
from core.endpoints._base import EndpointManager
from core.endpoints.entities import EndpointStatus
from core.endpoints.invoke import image_request, json_request
from core.errors import BackendError, ConsoleError, InvalidInputError
from core.evaluation.classes import match_classes
from core.evaluation.images import EvaluationSource, LabelledImages, fetch_labelled_images
from core.evaluation.metrics import TOP_K, EvaluationRecord, compute_metrics
from core.evaluation.results import (
    DEFAULT_CONCURRENCY,
    DEFAULT_IMAGES_PER_REQUEST,
    EvaluationResult,
    FailedImage,
    thumbnail,
)
from core.progress import run_with_progress
from core.storage import Storage

PROBE_TOP_K = 1_000_000
"""More labels than any model has: the answer to the first request lists every label."""
MAX_REQUEST_BYTES = 6 * 1024 * 1024 - 16 * 1024
"""SageMaker's real-time payload limit (6 MB, the local server's too), less room for the JSON around the images."""
MAX_IMAGES_PER_REQUEST = 64
"""The inference handler's limit per JSON request."""
MAX_CONCURRENCY = 32


class EvaluationCancelled(ConsoleError):
    """The evaluation was cancelled before every image was answered."""


def _request_bytes(size: int) -> int:
    """Room one image takes in a JSON request: its base64 and ``{"b64": ""}, ``."""
    return 4 * ((size + 2) // 3) + 16


def plan_requests(sizes: Sequence[int], *, images_per_request: int, max_bytes: int = MAX_REQUEST_BYTES
                  ) -> list[list[int]]:
    """Groups images (by index, in order) into requests of at most ``images_per_request`` images
    and ``max_bytes`` of JSON; an image too large for a JSON request goes alone (raw)."""
    requests: list[list[int]] = []
    current: list[int] = []
    used = 0
    for position, size in enumerate(sizes):
        need = _request_bytes(size)
        if current and (len(current) >= images_per_request or used + need > max_bytes):
            requests.append(current)
            current, used = [], 0
        current.append(position)
        used += need
    if current:
        requests.append(current)
    return requests


def _check_in_service(manager: EndpointManager, name: str) -> None:
    """Raises InvalidInputError when the endpoint stopped serving: its refusals are then not the images'."""
    status = manager.describe(name).status
    if status is not EndpointStatus.IN_SERVICE:
        raise InvalidInputError(f"endpoint {name!r} is {status.value} now: the evaluation stopped")


def endpoint_labels(manager: EndpointManager, name: str, images: LabelledImages, *, attempts: int = 3
                    ) -> tuple[str, ...]:
    """Every label the endpoint's model knows, most probable first, from one answer with a ``top_k``
    above its class count about one of the images.

    Raises:
        InvalidInputError: the first ``attempts`` images were all refused (the last refusal says why).
        NotFoundError, BackendError: see :meth:`EndpointManager.invoke`.
    """
    error: InvalidInputError | None = None
    for path, _ in images.images[:attempts]:
        try:
            body, content_type = json_request([(images.root / path).read_bytes()], top_k=PROBE_TOP_K)
            predictions = manager.invoke(name, body, content_type).predictions
        except OSError as exc:
            error = InvalidInputError(f"{path} could not be read: {exc.strerror or exc}")
            continue
        except InvalidInputError as exc:
            _check_in_service(manager, name)
            error = exc
            continue
        if not predictions or not predictions[0]:
            raise BackendError(f"endpoint {name!r} answered no prediction for {path}")
        return tuple(label for label, _ in predictions[0])
    raise InvalidInputError(f"could not ask endpoint {name!r} for its labels: {error}")


class _Asker:
    """Asks one endpoint about labelled images, every label's probability each; thread-safe."""

    def __init__(self, manager: EndpointManager, name: str, root: Path, labels: int) -> None:
        self.manager, self.name, self.root, self.labels = manager, name, root, labels
        self._ids = itertools.count()
        self._lock = threading.Lock()

    def ask(self, items: Sequence[tuple[str, str]]) -> tuple[list[EvaluationRecord], list[FailedImage]]:
        """Records of the images ``(path, true label)`` answered, and the images that failed.

        Raises:
            NotFoundError, InvalidInputError: the endpoint is gone or out of service.
            BackendError: the endpoint failed or answered nonsense.
        """
        readable: list[tuple[str, str]] = []
        data: list[bytes] = []
        failures: list[FailedImage] = []
        for path, label in items:
            try:
                data.append((self.root / path).read_bytes())
                readable.append((path, label))
            except OSError as exc:
                failures.append(FailedImage(path, f"could not read it: {exc.strerror or exc}"))
        if not readable:
            return [], failures
        if len(readable) == 1 and _request_bytes(len(data[0])) > MAX_REQUEST_BYTES:
            body, content_type = image_request(data[0])  # too large for JSON: raw, and only the top 5 come back
        else:
            body, content_type = json_request(data, top_k=self.labels)
        try:
            result = self.manager.invoke(self.name, body, content_type)
        except InvalidInputError as exc:
            _check_in_service(self.manager, self.name)
            if len(readable) == 1:
                return [], [*failures, FailedImage(readable[0][0], str(exc))]
            records: list[EvaluationRecord] = []
            for item in readable:  # find the image it refused: the others still count
                answered, failed = self.ask([item])
                records += answered
                failures += failed
            return records, failures
        predictions = result.predictions
        if len(predictions) != len(readable) or not all(predictions):
            raise BackendError(f"endpoint {self.name!r} answered {len(predictions)} predictions, or empty ones, "
                               f"about {len(readable)} images")
        with self._lock:
            request = next(self._ids)
        return [
            EvaluationRecord(path=path, true_label=label, top_k=tuple(ranking[:TOP_K]), latency_ms=result.latency_ms,
                             true_score=dict(ranking).get(label), request=request)
            for (path, label), ranking in zip(readable, predictions, strict=True)
        ], failures


@dataclass(frozen=True)
class EvaluationProgress:
    """Where an evaluation stands.

    Attributes:
        stage: ``fetch`` (unpacking or downloading the images: ``done``/``total`` are bytes) or
            ``evaluate`` (``done``/``total`` are images of ``endpoint``).
        endpoint: the endpoint being asked (evaluate only).
        seconds_left: estimated time to the end of the whole evaluation (evaluate only, once known).
    """

    stage: str
    done: int
    total: int
    endpoint: str | None = None
    seconds_left: float | None = None

    @property
    def fraction(self) -> float:
        return min(self.done / self.total, 1.0) if self.total else 0.0

    @property
    def message(self) -> str:
        if self.stage == "fetch":
            return f"Preparing the images… {self.done / 1e6:.1f} / {self.total / 1e6:.1f} MB"
        text = f"Asking {self.endpoint}: {self.done:,} / {self.total:,} images"
        if self.seconds_left is not None:
            minutes, seconds = divmod(round(self.seconds_left), 60)
            text += f", about {minutes} min {seconds:02d} s left" if minutes else f", about {seconds} s left"
        return text


def evaluate_images(
    manager: EndpointManager,
    name: str,
    images: LabelledImages,
    *,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
    images_per_request: int = DEFAULT_IMAGES_PER_REQUEST,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> EvaluationResult:
    """Asks one InService endpoint about every labelled image whose class matches one of its labels.

    Args:
        manager: the backend's endpoints.
        name: the endpoint.
        images: see :func:`core.evaluation.images.find_labelled_images`.
        progress: ``progress(images_done, images_total)`` after each answer, on the calling thread.
        cancel: once set, no new request is sent; those under way are awaited.
        images_per_request: most images per request (1 to 64).
        concurrency: most requests at once (1 to 32).

    Raises:
        InvalidInputError: bad settings, the endpoint is not InService, no class folder matches a
            label, or it refused every image.
        NotFoundError: no endpoint of that name.
        BackendError: the endpoint failed or is unreachable.
        EvaluationCancelled: ``cancel`` was set.
    """
    if not 1 <= images_per_request <= MAX_IMAGES_PER_REQUEST:
        raise InvalidInputError(f"images_per_request: must be 1 to {MAX_IMAGES_PER_REQUEST}, not {images_per_request}")
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise InvalidInputError(f"concurrency: must be 1 to {MAX_CONCURRENCY}, not {concurrency}")
    status = manager.describe(name).status
    if status is not EndpointStatus.IN_SERVICE:
        raise InvalidInputError(f"endpoint {name!r} is {status.value}: it can be evaluated once InService")
    labels = endpoint_labels(manager, name, images)
    asker = _Asker(manager, name, images.root, len(labels))
    match = match_classes(images.classes, labels, endpoint=name)
    work = [(path, match.mapping[cls]) for path, cls in images.images if cls in match.mapping]
    sizes = []
    for path, _ in work:
        try:
            sizes.append((images.root / path).stat().st_size)
        except OSError:
            sizes.append(0)  # the request says it cannot be read
    batches = [[work[i] for i in request] for request in plan_requests(sizes, images_per_request=images_per_request)]
    started = time.perf_counter()
    records, failures = _ask_all(asker, batches, len(work), progress or (lambda done, total: None),
                                 cancel or threading.Event(), concurrency)
    wall_s = time.perf_counter() - started
    if not records:
        raise InvalidInputError(f"endpoint {name!r} answered none of the {len(work)} images: {failures[0].error}")
    records.sort(key=lambda r: r.path)
    metrics = compute_metrics(records)
    thumbnails = {m.path: t for m in metrics.worst if (t := thumbnail(images.root / m.path)) is not None}
    return EvaluationResult(
        endpoint=name, source=images.source, classes=match, metrics=metrics, records=tuple(records),
        failures=tuple(sorted(failures, key=lambda f: f.path)), thumbnails=thumbnails, wall_s=wall_s,
        images_per_request=images_per_request, concurrency=concurrency, note=images.note,
    )


def _ask_all(asker: _Asker, batches: Sequence[Sequence[tuple[str, str]]], total: int,
             progress: Callable[[int, int], None], cancel: threading.Event, concurrency: int
             ) -> tuple[list[EvaluationRecord], list[FailedImage]]:
    """Sends the batches, at most ``concurrency`` at once, until done, cancelled or failed."""
    records: list[EvaluationRecord] = []
    failures: list[FailedImage] = []
    queue = iter(batches)
    pending: set[Future[tuple[list[EvaluationRecord], list[FailedImage]]]] = set()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=f"evaluate-{asker.name}") as pool:
        try:
            while True:
                while len(pending) < concurrency and not cancel.is_set():
                    batch = next(queue, None)
                    if batch is None:
                        break
                    pending.add(pool.submit(asker.ask, batch))
                if not pending:
                    break
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    answered, failed = future.result()
                    records += answered
                    failures += failed
                progress(len(records) + len(failures), total)
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    if cancel.is_set() and len(records) + len(failures) < total:
        raise EvaluationCancelled(f"the evaluation of {asker.name} was cancelled after "
                                  f"{len(records) + len(failures):,} of {total:,} images")
    return records, failures


def evaluate_endpoints(
    manager: EndpointManager,
    names: Sequence[str],
    source: EvaluationSource,
    *,
    storage: Storage,
    object_prefixes: ObjectPrefixes,
    scratch_dir: Path,
    progress: Callable[[EvaluationProgress], None] | None = None,
    cancel: threading.Event | None = None,
    images_per_request: int = DEFAULT_IMAGES_PER_REQUEST,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> list[EvaluationResult]:
    """Fetches the source's images once, evaluates each endpoint on them in turn (see
    :func:`evaluate_images`), and removes the images.

    Args:
        manager: the backend's endpoints.
        names: one endpoint, or two to compare.
        source: a dropped zip or a registered dataset's test split.
        storage: the backend's storage.
        object_prefixes: the backend's object prefixes (see :func:`fetch_labelled_images`).
        scratch_dir: where the images are put while they are evaluated.
        progress: called with an :class:`EvaluationProgress`: on this thread, except while a
            registered dataset is fetched (then from whichever thread the storage transfers on).
        cancel: see :func:`evaluate_images`.
        images_per_request: see :func:`evaluate_images`.
        concurrency: see :func:`evaluate_images`.

    Returns:
        One result per name, in order.

    Raises:
        InvalidInputError: no name, the same name twice, or see :func:`fetch_labelled_images`
            and :func:`evaluate_images`.
        NotFoundError, BackendError, EvaluationCancelled: see :func:`evaluate_images`.
    """
    if not names:
        raise InvalidInputError("choose an endpoint to evaluate")
    if len(set(names)) != len(names):
        raise InvalidInputError("choose two different endpoints to compare")
    report = progress or (lambda state: None)
    with fetch_labelled_images(source, storage=storage, object_prefixes=object_prefixes, scratch_dir=scratch_dir,
                               progress=lambda done, total: report(EvaluationProgress("fetch", done, total))) as images:
        # reported on this thread, whichever threads reported the transfer (see run_evaluation)
        report(EvaluationProgress("evaluate", 0, len(images.images), endpoint=names[0]))
        started = time.perf_counter()
        results: list[EvaluationResult] = []
        for position, name in enumerate(names):
            earlier = sum(len(r.records) + len(r.failures) for r in results)
            later = (len(names) - position - 1) * len(images.images)

            def on_images(done: int, total: int, name: str = name, earlier: int = earlier, later: int = later) -> None:
                rate = (earlier + done) / (time.perf_counter() - started)
                report(EvaluationProgress("evaluate", done, total, endpoint=name,
                                          seconds_left=(total - done + later) / rate if rate > 0 else None))

            if cancel is not None and cancel.is_set():
                raise EvaluationCancelled("the evaluation was cancelled")
            results.append(evaluate_images(manager, name, images, progress=on_images, cancel=cancel,
                                           images_per_request=images_per_request, concurrency=concurrency))
    return results


def run_evaluation(
    manager: EndpointManager,
    names: Sequence[str],
    source: EvaluationSource,
    *,
    storage: Storage,
    object_prefixes: ObjectPrefixes,
    scratch_dir: Path,
    on_progress: Callable[[EvaluationProgress], None],
    images_per_request: int = DEFAULT_IMAGES_PER_REQUEST,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> list[EvaluationResult]:
    """:func:`evaluate_endpoints` in a worker thread, for a caller that may only act on its own
    thread (a Streamlit page): ``on_progress`` is called on this thread. If this thread stops
    waiting (a rerun, a stop), the evaluation's next progress report raises
    :class:`core.progress.Cancelled` in it: it sends no new request and removes its images
    (see :func:`core.progress.run_with_progress`).

    Raises:
        What :func:`evaluate_endpoints` raises, and whatever interrupted this thread.
    """
    return run_with_progress(
        lambda progress: evaluate_endpoints(manager, names, source, storage=storage, object_prefixes=object_prefixes,
                                            scratch_dir=scratch_dir, progress=progress,
                                            images_per_request=images_per_request, concurrency=concurrency),
        on_progress,
        name=f"evaluation of {', '.join(names)}",
    )
