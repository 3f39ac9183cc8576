"""Metric scraping with the default SageMaker-style metric definitions."""

from __future__ import annotations

import pytest

from core.errors import InvalidInputError
from core.training.metrics import MetricScraper, final_metrics
from core.training.spec import DEFAULT_METRIC_DEFINITIONS, MetricDefinition


def test_epoch_and_test_lines_are_scraped() -> None:
    scraper = MetricScraper(DEFAULT_METRIC_DEFINITIONS)
    epoch = "epoch=1/2 train_loss=0.4123 train_acc=0.8812 valid_loss=0.2011 valid_acc=0.9300 images_per_s=101.2"
    points = scraper.feed(epoch, timestamp=1.0) + scraper.feed("test_loss=0.1 test_acc=9.61e-1", timestamp=2.0)
    assert {p.name: p.value for p in points} == {
        "train:loss": 0.4123, "train:accuracy": 0.8812, "validation:loss": 0.2011,
        "validation:accuracy": 0.93, "train:images_per_s": 101.2, "test:accuracy": 0.961,
    }
    second = scraper.feed("epoch=2/2 train_loss=0.3 train_acc=0.9 valid_loss=0.1 valid_acc=0.95", timestamp=3.0)
    assert {p.step for p in second} == {1}
    assert final_metrics(points + second)["validation:accuracy"] == 0.95


def test_progress_lines_and_non_numbers_are_ignored() -> None:
    scraper = MetricScraper(DEFAULT_METRIC_DEFINITIONS)
    assert scraper.feed("progress epoch=1 batch=10/40 loss=0.52") == []
    assert scraper.feed("train_loss=nan valid_acc=inf") == []


def test_metric_definitions_are_validated() -> None:
    with pytest.raises(InvalidInputError, match="capture group"):
        MetricDefinition("x", "loss=[0-9]+")
    with pytest.raises(InvalidInputError, match="invalid regex"):
        MetricDefinition("x", "loss=(")
