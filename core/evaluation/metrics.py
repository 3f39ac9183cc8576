"""Records and metrics of a labelled evaluation, the pure part: one :class:`EvaluationRecord` per
image answered (true label, top-k predictions with scores, latency) in, :class:`EvaluationMetrics`
(accuracy, top-5, per-class precision and recall, confusions, worst mistakes, latency) out."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.errors import InvalidInputError

TOP_K = 5
"""Predictions kept per image, and the k of top-k accuracy."""
WORST_MISTAKES = 12
TOP_CONFUSIONS = 20


def label_order(label: str) -> tuple[Any, ...]:
    """Sort key putting labels in natural order: ``2`` before ``10``, case ignored."""
    return tuple(int(part) if part.isdigit() else part.casefold() for part in re.split(r"(\d+)", label))


@dataclass(frozen=True)
class EvaluationRecord:
    """The endpoint's answer about one labelled image.

    Attributes:
        path: the image, relative to the evaluated folder (``<class folder>/<file>``).
        true_label: the endpoint label its class folder matched.
        top_k: the most probable ``(label, probability)`` pairs, most probable first (at least one).
        latency_ms: round trip of the request that carried the image.
        true_score: the probability of ``true_label``; None when unknown (outside ``top_k``).
        request: the request that carried the image: images sent together share it, and latency
            percentiles count each request once. None: a request of its own.
    """

    path: str
    true_label: str
    top_k: tuple[tuple[str, float], ...]
    latency_ms: float
    true_score: float | None = None
    request: int | None = None

    def __post_init__(self) -> None:
        if not self.top_k:
            raise InvalidInputError(f"{self.path}: a record needs at least one prediction")

    @property
    def predicted(self) -> str:
        return self.top_k[0][0]

    @property
    def is_correct(self) -> bool:
        return self.predicted == self.true_label

    @property
    def score_of_true(self) -> float | None:
        """The true label's probability: recorded, else found in ``top_k``, else None."""
        if self.true_score is not None:
            return self.true_score
        return dict(self.top_k).get(self.true_label)


@dataclass(frozen=True)
class ClassMetrics:
    """One label's counts: ``support`` images are of it, ``predicted`` were answered as it."""

    label: str
    support: int
    predicted: int
    correct: int

    @property
    def precision(self) -> float | None:
        """Correct among the images predicted as this label; None when it was never predicted."""
        return self.correct / self.predicted if self.predicted else None

    @property
    def recall(self) -> float | None:
        """Correct among the images of this label; None when no image is of it."""
        return self.correct / self.support if self.support else None


@dataclass(frozen=True)
class Confusion:
    """Images of ``true_label`` predicted as ``predicted_label``."""

    true_label: str
    predicted_label: str
    count: int


@dataclass(frozen=True)
class Mistake:
    """A wrong top-1 answer: how sure the endpoint was of its answer, and of the truth."""

    path: str
    true_label: str
    predicted_label: str
    predicted_score: float
    true_score: float | None


@dataclass(frozen=True)
class LatencyStats:
    """Round trips of the requests, each counted once, in milliseconds."""

    requests: int
    p50_ms: float
    p95_ms: float
    mean_ms: float
    max_ms: float


@dataclass(frozen=True)
class EvaluationMetrics:
    """What :func:`compute_metrics` found.

    Attributes:
        images: images evaluated.
        correct: images whose top-1 answer is their label.
        top_k_correct: images whose label is among the first ``TOP_K`` answers.
        classes: every label that is an image's truth or an answer, in :func:`label_order`.
        labels: the confusion matrix's axes (the labels of ``classes``).
        confusion: ``confusion[i][j]``: images of ``labels[i]`` answered as ``labels[j]``.
        top_confusions: the most frequent wrong (true, predicted) pairs, most frequent first.
        worst: the wrong answers given with the most confidence over the truth, worst first.
        latency: request round trips.
    """

    images: int
    correct: int
    top_k_correct: int
    classes: tuple[ClassMetrics, ...]
    labels: tuple[str, ...]
    confusion: tuple[tuple[int, ...], ...]
    top_confusions: tuple[Confusion, ...]
    worst: tuple[Mistake, ...]
    latency: LatencyStats

    @property
    def accuracy(self) -> float:
        return self.correct / self.images

    @property
    def top_k_accuracy(self) -> float:
        return self.top_k_correct / self.images


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0 to 100) with linear interpolation between ranks (numpy's default).

    Raises:
        InvalidInputError: no values, or q outside 0 to 100.
    """
    if not values:
        raise InvalidInputError("a percentile needs at least one value")
    if not 0 <= q <= 100:
        raise InvalidInputError(f"percentile: q must be 0 to 100, not {q}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def compute_metrics(records: Sequence[EvaluationRecord], *, worst: int = WORST_MISTAKES,
                    top_confusions: int = TOP_CONFUSIONS) -> EvaluationMetrics:
    """Accuracy, top-k accuracy, per-label counts, confusions, worst mistakes and latency of records.

    Args:
        records: one per image.
        worst: how many mistakes to keep, ranked by predicted score minus the true label's score
            (an unknown true score counts as 0: it was below the top-k).
        top_confusions: how many (true, predicted) pairs to keep, by count, then in label order.

    Raises:
        InvalidInputError: no records.
    """
    if not records:
        raise InvalidInputError("no image was evaluated: there is nothing to measure")
    labels = tuple(sorted({r.true_label for r in records} | {r.predicted for r in records}, key=label_order))
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for record in records:
        matrix[index[record.true_label]][index[record.predicted]] += 1
    classes = tuple(
        ClassMetrics(label=label, support=sum(matrix[i]), predicted=sum(row[i] for row in matrix), correct=matrix[i][i])
        for i, label in enumerate(labels)
    )
    pairs = sorted(
        ((labels[i], labels[j], matrix[i][j]) for i in range(len(labels)) for j in range(len(labels))
         if i != j and matrix[i][j]),
        key=lambda pair: (-pair[2], label_order(pair[0]), label_order(pair[1])),
    )
    mistakes = sorted(
        (r for r in records if not r.is_correct),
        key=lambda r: (-(r.top_k[0][1] - (r.score_of_true or 0.0)), r.path),
    )
    by_request = {("request", r.request) if r.request is not None else ("image", n): r.latency_ms
                  for n, r in enumerate(records)}
    latencies = list(by_request.values())
    return EvaluationMetrics(
        images=len(records),
        correct=sum(r.is_correct for r in records),
        top_k_correct=sum(r.true_label in (label for label, _ in r.top_k[:TOP_K]) for r in records),
        classes=classes,
        labels=labels,
        confusion=tuple(tuple(row) for row in matrix),
        top_confusions=tuple(Confusion(t, p, n) for t, p, n in pairs[:top_confusions]),
        worst=tuple(Mistake(r.path, r.true_label, r.predicted, r.top_k[0][1], r.score_of_true)
                    for r in mistakes[:worst]),
        latency=LatencyStats(requests=len(latencies), p50_ms=percentile(latencies, 50),
                             p95_ms=percentile(latencies, 95), mean_ms=sum(latencies) / len(latencies),
                             max_ms=max(latencies)),
    )
