"""Results of a labelled evaluation: one endpoint's :class:`EvaluationResult` (which survives
JSON), the thumbnails of its worst mistakes, and the :class:`Comparison` of two endpoints on the
images both answered."""

from __future__ import annotations

import base64
import io
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from core.errors import InvalidInputError
from core.evaluation.classes import ClassMatch
from core.evaluation.metrics import (
    ClassMetrics,
    Confusion,
    EvaluationMetrics,
    EvaluationRecord,
    LatencyStats,
    Mistake,
)

DEFAULT_IMAGES_PER_REQUEST = 8
DEFAULT_CONCURRENCY = 4
THUMBNAIL_PX = 160


@dataclass(frozen=True)
class FailedImage:
    """An image the endpoint refused (or that could not be read), with why."""

    path: str
    error: str


def thumbnail(path: Path) -> str | None:
    """A small JPEG of the image, base64-encoded; None when it cannot be read."""
    try:
        with Image.open(path) as image:
            image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, format="JPEG", quality=85)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, ValueError):
        return None
    return base64.b64encode(buffer.getvalue()).decode()


@dataclass(frozen=True)
class EvaluationResult:
    """One endpoint evaluated on labelled images; :meth:`to_dict` is JSON-serialisable.

    Attributes:
        endpoint: the endpoint's name.
        source: where the images came from (``dataset digits, test/``).
        classes: how the class folders matched the endpoint's labels.
        metrics: see :class:`EvaluationMetrics`.
        records: one per image answered.
        failures: images refused or unreadable (not in the metrics).
        thumbnails: base64 JPEGs of the worst mistakes, by path.
        wall_s: seconds from the first request to the last answer.
        images_per_request: most images per request.
        concurrency: most requests at once.
        note: what a user should know about the choice of images, if anything.
    """

    endpoint: str
    source: str
    classes: ClassMatch
    metrics: EvaluationMetrics
    records: tuple[EvaluationRecord, ...]
    failures: tuple[FailedImage, ...] = ()
    thumbnails: Mapping[str, str] = field(default_factory=dict)
    wall_s: float = 0.0
    images_per_request: int = DEFAULT_IMAGES_PER_REQUEST
    concurrency: int = DEFAULT_CONCURRENCY
    note: str | None = None

    @property
    def images_per_s(self) -> float:
        return (len(self.records) + len(self.failures)) / self.wall_s if self.wall_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain dicts, lists, strings and numbers (``json.dumps`` takes it; :meth:`from_dict` reads it)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvaluationResult:
        """Rebuilds a result from :meth:`to_dict` output (or its JSON).

        Raises:
            InvalidInputError: data is not such a result.
        """
        try:
            metrics = data["metrics"]
            return cls(
                endpoint=data["endpoint"], source=data["source"],
                classes=ClassMatch(**{**data["classes"], **{k: tuple(data["classes"][k])
                                                            for k in ("unmatched", "unused_labels", "loose")}}),
                metrics=EvaluationMetrics(
                    images=metrics["images"], correct=metrics["correct"], top_k_correct=metrics["top_k_correct"],
                    classes=tuple(ClassMetrics(**c) for c in metrics["classes"]), labels=tuple(metrics["labels"]),
                    confusion=tuple(tuple(row) for row in metrics["confusion"]),
                    top_confusions=tuple(Confusion(**c) for c in metrics["top_confusions"]),
                    worst=tuple(Mistake(**m) for m in metrics["worst"]), latency=LatencyStats(**metrics["latency"]),
                ),
                records=tuple(EvaluationRecord(**{**r, "top_k": tuple((str(lb), float(p)) for lb, p in r["top_k"])})
                              for r in data["records"]),
                failures=tuple(FailedImage(**f) for f in data["failures"]),
                thumbnails=dict(data["thumbnails"]), wall_s=data["wall_s"],
                images_per_request=data["images_per_request"], concurrency=data["concurrency"], note=data["note"],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"not an evaluation result ({type(exc).__name__}: {exc})") from None


@dataclass(frozen=True)
class Comparison:
    """Two endpoints on the images both answered: ``*_delta`` is second minus first."""

    first: str
    second: str
    images: int
    accuracy_delta: float
    top_k_delta: float
    p50_delta_ms: float
    both_right: int
    only_first_right: int
    only_second_right: int
    both_wrong: int


def compare_results(first: EvaluationResult, second: EvaluationResult) -> Comparison:
    """Compares two results image by image, on the images both answered.

    Raises:
        InvalidInputError: they share no image (the endpoints know different classes).
    """
    theirs = {r.path: r for r in second.records}
    common = [(r, theirs[r.path]) for r in first.records if r.path in theirs]
    if not common:
        raise InvalidInputError(f"{first.endpoint} and {second.endpoint} answered no image in common: "
                                "their models know different classes")
    right = Counter((a.is_correct, b.is_correct) for a, b in common)
    in_top = Counter((a.true_label in dict(a.top_k), b.true_label in dict(b.top_k)) for a, b in common)
    return Comparison(
        first=first.endpoint, second=second.endpoint, images=len(common),
        accuracy_delta=(right[(False, True)] - right[(True, False)]) / len(common),
        top_k_delta=(in_top[(False, True)] - in_top[(True, False)]) / len(common),
        p50_delta_ms=second.metrics.latency.p50_ms - first.metrics.latency.p50_ms,
        both_right=right[(True, True)], only_first_right=right[(True, False)],
        only_second_right=right[(False, True)], both_wrong=right[(False, False)],
    )
