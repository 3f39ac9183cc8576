"""Metric scraping from job logs, with SageMaker metric-definition regexes."""

from __future__ import annotations

import math
import re
import time
from collections import defaultdict
from collections.abc import Iterable

from core.entities import MetricPoint
from core.training.spec import MetricDefinition


class MetricScraper:
    """Applies metric definitions to log lines as they arrive.

    Each definition's first capture group is the value; the n-th value of a metric gets
    step n (starting at 0). Values that are not finite numbers are skipped, as SageMaker does.
    """

    def __init__(self, definitions: Iterable[MetricDefinition]) -> None:
        self._patterns = [(d.name, re.compile(d.regex)) for d in definitions]
        self._counts: dict[str, int] = defaultdict(int)

    def feed(self, line: str, timestamp: float | None = None) -> list[MetricPoint]:
        """The metric values found in one log line."""
        when = time.time() if timestamp is None else timestamp
        points = []
        for name, pattern in self._patterns:
            match = pattern.search(line)
            if not match:
                continue
            try:
                value = float(match.group(1))
            except (TypeError, ValueError):
                continue
            if not math.isfinite(value):
                continue
            points.append(MetricPoint(name=name, value=value, step=self._counts[name], timestamp=when))
            self._counts[name] += 1
        return points


def final_metrics(points: Iterable[MetricPoint]) -> dict[str, float]:
    """The last value of each metric (SageMaker's FinalMetricDataList)."""
    last: dict[str, MetricPoint] = {}
    for point in points:
        if point.name not in last or point.step >= last[point.name].step:
            last[point.name] = point
    return {name: p.value for name, p in sorted(last.items())}
