"""Figures and tables of a labelled evaluation (see :mod:`core.evaluation`), for the Deploy page."""

from __future__ import annotations

import plotly.graph_objects as go

from core.evaluation.metrics import EvaluationMetrics
from core.evaluation.results import EvaluationResult

MANY_LABELS = 30
"""Above this many labels the heatmap drops its cell texts and shrinks its tick labels."""


def confusion_heatmap(metrics: EvaluationMetrics) -> go.Figure:
    """The confusion matrix, labels in order on both axes, true labels down and answers across.

    Each cell's colour is the share of its true label's images (so a small class reads as well
    as a large one; a label only ever answered has a blank row); hovering gives the count. Tall
    enough for every label to keep its row: 133 classes stay readable.
    """
    labels = list(metrics.labels)
    shares = [[count / sum(row) if sum(row) else None for count in row] for row in metrics.confusion]
    many = len(labels) > MANY_LABELS
    figure = go.Figure(go.Heatmap(
        z=shares, x=labels, y=labels, text=[list(row) for row in metrics.confusion],
        colorscale="Blues", zmin=0, zmax=1, xgap=1 if not many else 0, ygap=1 if not many else 0,
        colorbar={"title": {"text": "share of<br>true class"}, "tickformat": ".0%"},
        texttemplate=None if many else "%{text}",
        hovertemplate="true %{y}<br>answered %{x}<br>%{text} images (%{z:.0%} of the class)<extra></extra>",
    ))
    size = min(max(14 * len(labels) + 160, 360), 2200)
    tick_font = {"size": 9} if many else {}
    figure.update_layout(
        height=size, margin={"l": 10, "r": 10, "t": 30, "b": 10},
        xaxis={"title": "answered", "type": "category", "side": "top", "tickfont": tick_font,
               "tickangle": -90 if many else 0, "automargin": True},
        yaxis={"title": "true class", "type": "category", "autorange": "reversed", "tickfont": tick_font,
               "automargin": True},
    )
    return figure


def per_class_rows(metrics: EvaluationMetrics) -> list[dict[str, object]]:
    """One row per label: images, answers, precision and recall (None where undefined)."""
    return [
        {"class": c.label, "images": c.support, "answered as it": c.predicted, "correct": c.correct,
         "precision": c.precision, "recall": c.recall}
        for c in metrics.classes
    ]


def top_confusion_rows(metrics: EvaluationMetrics) -> list[dict[str, object]]:
    """The most frequent mistakes as (true → answered, count) rows."""
    return [{"true": c.true_label, "answered": c.predicted_label, "images": c.count,
             "share of the class": c.count / next(m.support for m in metrics.classes if m.label == c.true_label)}
            for c in metrics.top_confusions]


def failure_rows(result: EvaluationResult) -> list[dict[str, object]]:
    """The images that got no answer, with why."""
    return [{"image": f.path, "why": f.error} for f in result.failures]
