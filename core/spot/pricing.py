"""Spot price history from EC2, and a check for prices that cannot be real.

``describe_spot_price_history`` answers one row per change of price (zone, instance type,
product). A mock such as moto answers placeholders (one $0.00001 price stamped 2006); the page
says so instead of charting them as if they were market prices.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.aws import aws_errors
from core.errors import InvalidInputError

PRODUCT = "Linux/UNIX"
MIN_REAL_PRICE = 0.0005
"""Below this (USD/hour) no EC2 instance type has ever been priced; placeholders are."""
MAX_HISTORY_DAYS = 90  # what EC2 keeps


@dataclass(frozen=True)
class PricePoint:
    """The spot price of one instance type in one zone from ``timestamp`` on (USD/hour)."""

    instance_type: str
    zone: str
    price: float
    timestamp: float


def fetch_price_history(ec2: Any, instance_types: Sequence[str], *, days: float = 7,
                        now: dt.datetime | None = None, max_points: int = 5000) -> list[PricePoint]:
    """Spot price changes for ``instance_types`` over the last ``days`` (Linux/UNIX), oldest first.

    Raises:
        InvalidInputError: no instance type, or days outside 0-90.
        BackendError, CredentialsError: EC2 refused or could not be reached.
    """
    if not instance_types:
        raise InvalidInputError("choose at least one instance type")
    if not 0 < days <= MAX_HISTORY_DAYS:
        raise InvalidInputError(f"days: EC2 keeps {MAX_HISTORY_DAYS} days of spot prices; got {days}")
    end = now or dt.datetime.now(dt.UTC)
    start = end - dt.timedelta(days=days)
    points: list[PricePoint] = []
    with aws_errors("reading the spot price history"):
        paginator = ec2.get_paginator("describe_spot_price_history")
        pages = paginator.paginate(InstanceTypes=list(instance_types), ProductDescriptions=[PRODUCT],
                                   StartTime=start, EndTime=end)
        for page in pages:
            for row in page.get("SpotPriceHistory", []):
                points.append(PricePoint(row["InstanceType"], row["AvailabilityZone"], float(row["SpotPrice"]),
                                         row["Timestamp"].timestamp()))
                if len(points) >= max_points:
                    break
            if len(points) >= max_points:
                break
    return sorted(points, key=lambda p: (p.timestamp, p.instance_type, p.zone))


def synthetic_reasons(points: Sequence[PricePoint], *, window_start: float) -> list[str]:
    """Why these prices look like placeholders (a mock's), not EC2's market; empty when they look real."""
    if not points:
        return []
    reasons = []
    if all(p.price < MIN_REAL_PRICE for p in points):
        reasons.append(f"every price is below ${MIN_REAL_PRICE}/hour")
    if len(points) > 1 and len({p.price for p in points}) == 1:
        reasons.append(f"every zone and instance type has the same price (${points[0].price:g}/hour)")
    stale = [p for p in points if p.timestamp < window_start - MAX_HISTORY_DAYS * 86400]
    if stale:
        year = dt.datetime.fromtimestamp(min(p.timestamp for p in stale), dt.UTC).year
        reasons.append(f"prices are stamped {year}, long before the requested window")
    return reasons


def latest_prices(points: Sequence[PricePoint]) -> dict[tuple[str, str], PricePoint]:
    """The current price per (instance type, zone)."""
    latest: dict[tuple[str, str], PricePoint] = {}
    for point in points:
        key = (point.instance_type, point.zone)
        if key not in latest or point.timestamp >= latest[key].timestamp:
            latest[key] = point
    return latest


def time_weighted_mean(points: Sequence[PricePoint], *, end: float) -> dict[tuple[str, str], float]:
    """Each (type, zone)'s mean price over the history, weighted by how long each price held."""
    by_key: dict[tuple[str, str], list[PricePoint]] = {}
    for point in sorted(points, key=lambda p: p.timestamp):
        by_key.setdefault((point.instance_type, point.zone), []).append(point)
    means = {}
    for key, series in by_key.items():
        total = weight = 0.0
        for current, following in zip(series, [*series[1:], None]):
            held = (following.timestamp if following else end) - current.timestamp
            total += current.price * max(held, 0.0)
            weight += max(held, 0.0)
        means[key] = total / weight if weight > 0 and math.isfinite(total) else series[-1].price
    return means
