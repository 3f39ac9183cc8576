"""What a run's events mean: interruptions and the work each lost, instance time and cost."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.spot.entities import SpotEvent, SpotRun


@dataclass(frozen=True)
class Interruption:
    """One reclaimed instance: when the notice came, when it died, what was lost and redone.

    ``lost_steps`` are training steps done after the last checkpoint (they are trained again
    after the resume); ``lost_epochs`` is the same in epochs (at most one, by the per-epoch
    checkpoint, and about zero when the script checkpoints on the notice).
    """

    instance: str
    notice_at: float | None
    interrupted_at: float
    progress_step: int
    checkpoint_step: int
    lost_steps: int
    steps_per_epoch: int
    alive_at_kill: bool
    checkpoint_after_notice_s: float | None
    resumed_step: int | None

    @property
    def lost_epochs(self) -> float:
        return self.lost_steps / max(self.steps_per_epoch, 1)


def interruptions(events: Sequence[SpotEvent]) -> list[Interruption]:
    """The run's interruptions in order, each paired with the resume that followed it."""
    found: list[Interruption] = []
    for index, event in enumerate(events):
        if event.kind != "interrupted":
            continue
        detail = event.detail
        resumed = next((e for e in events[index + 1:] if e.kind in ("resume", "start")), None)
        found.append(Interruption(
            instance=event.instance,
            notice_at=detail.get("notice_at"),
            interrupted_at=event.time,
            progress_step=int(detail.get("progress_step", 0)),
            checkpoint_step=int(detail.get("checkpoint_step", 0)),
            lost_steps=int(detail.get("lost_steps", 0)),
            steps_per_epoch=int(detail.get("steps_per_epoch", 1) or 1),
            alive_at_kill=bool(detail.get("alive_at_kill", False)),
            checkpoint_after_notice_s=detail.get("checkpoint_after_notice_s"),
            resumed_step=int(resumed.detail.get("step", 0)) if resumed is not None else None,
        ))
    return found


def instance_intervals(events: Sequence[SpotEvent], *, now: float) -> list[tuple[str, float, float]]:
    """``(instance, launched, ended)`` for each instance (ended = now while it runs)."""
    intervals: list[tuple[str, float, float]] = []
    current: tuple[str, float] | None = None
    for event in events:
        if event.kind == "launch":
            if current is not None:
                intervals.append((current[0], current[1], event.time))
            current = (event.instance, event.time)
        elif event.kind in ("interrupted", "completed", "failed", "terminated") and current is not None:
            intervals.append((current[0], current[1], event.time))
            current = None
    if current is not None:
        intervals.append((current[0], current[1], now))
    return intervals


@dataclass(frozen=True)
class CostEstimate:
    """Spot against on-demand for the same hours (USD); prices say where they came from."""

    hours: float
    spot_price_per_h: float
    on_demand_price_per_h: float
    source: str

    @property
    def spot_cost(self) -> float:
        return self.hours * self.spot_price_per_h

    @property
    def on_demand_cost(self) -> float:
        return self.hours * self.on_demand_price_per_h

    @property
    def savings(self) -> float:
        return self.on_demand_cost - self.spot_cost

    @property
    def savings_fraction(self) -> float:
        return self.savings / self.on_demand_cost if self.on_demand_cost > 0 else 0.0


def estimate_cost(hours: float, spot_price_per_h: float, on_demand_price_per_h: float, *, source: str) -> CostEstimate:
    """The cost of ``hours`` at both prices.

    Raises:
        ValueError: a negative or non-finite number.
    """
    for label, value in (("hours", hours), ("spot price", spot_price_per_h), ("on-demand price", on_demand_price_per_h)):
        if not (value >= 0 and value != float("inf")):
            raise ValueError(f"{label}: must be a non-negative number, got {value}")
    return CostEstimate(hours, spot_price_per_h, on_demand_price_per_h, source)


def run_cost(run: SpotRun, events: Sequence[SpotEvent], *, now: float) -> CostEstimate | None:
    """What the run's instance time cost at its prices (None without both prices)."""
    spec = run.spec
    if spec.spot_price_per_h is None or spec.on_demand_price_per_h is None:
        return None
    hours = sum(end - start for _, start, end in instance_intervals(events, now=now)) / 3600
    return estimate_cost(hours, spec.spot_price_per_h, spec.on_demand_price_per_h, source="entered by the user")


def find_reference(run: SpotRun, runs: Sequence[SpotRun], events_of: Any) -> SpotRun | None:
    """The newest completed run on the same data with the same hyperparameters (seed included)
    that was never interrupted: the baseline for "within one point of an uninterrupted run".

    Args:
        run: the run to compare.
        runs: candidate runs.
        events_of: ``name -> events`` (a manager's ``events``).
    """
    from core.spot.entities import SpotRunStatus

    for other in runs:
        if other.name == run.name or other.status is not SpotRunStatus.COMPLETED:
            continue
        if other.spec.data_uri != run.spec.data_uri:
            continue
        if other.spec.hyperparameters_as_strings != run.spec.hyperparameters_as_strings:
            continue
        if not any(e.kind == "interrupted" for e in events_of(other.name)):
            return other
    return None
