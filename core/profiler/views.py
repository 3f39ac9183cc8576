"""What the Profiler page reads: one job's documents as a view, tables ready for display.

Reads only the pre-aggregated documents (a few hundred kilobytes for an hour-long job),
never the raw profiler files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.entities import TrainingJob
from core.profiler._store import ProfilerStore
from core.profiler.data import PHASES
from core.profiler.entities import Finding, RuleStatus

STATUS_ICONS = {RuleStatus.ISSUES_FOUND: "⚠", RuleStatus.NO_ISSUES_FOUND: "✓", RuleStatus.NOT_APPLICABLE: "–",
                RuleStatus.INSUFFICIENT_DATA: "…"}  # plain symbols: emoji fonts are often missing


@dataclass(frozen=True)
class ProfileView:
    """A job's profiler results as the last analysis pass stored them."""

    job_name: str
    summary: Mapping[str, Any]
    timeline: Mapping[str, Any] = field(default_factory=dict)
    steps: Mapping[str, Any] = field(default_factory=dict)
    phases: tuple[Mapping[str, Any], ...] = ()
    findings: tuple[Finding, ...] = ()
    operators: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_collecting(self) -> bool:
        """True while the sidecar still passes over a running job."""
        return self.summary.get("state") == "collecting"

    @property
    def has_data(self) -> bool:
        return bool(self.summary.get("samples") or self.summary.get("steps"))

    @property
    def has_gpu(self) -> bool:
        return bool(self.timeline.get("gpu"))

    @property
    def errors(self) -> list[str]:
        return list(self.summary.get("errors", []))

    @property
    def fired(self) -> list[Finding]:
        return [f for f in self.findings if f.status.fired]

    def findings_rows(self) -> list[dict[str, Any]]:
        """Findings, the ones that fired first."""
        ordered = sorted(self.findings, key=lambda f: not f.status.fired)
        return [{"": STATUS_ICONS[f.status], "rule": f.rule, "status": f.status.value, "what it saw": f.message,
                 "recommendation": f.recommendation} for f in ordered]

    def usage_rows(self) -> list[dict[str, Any]]:
        """Max, p99, p95, p50, min per resource (percent; disk and network per second)."""
        return [{"metric": name, **{k: round(v, 1) for k, v in values.items()}}
                for name, values in self.summary.get("usage", {}).items()]

    def operator_rows(self, device: str) -> list[dict[str, Any]]:
        """Top operators by self time on ``cpu`` or ``gpu``."""
        if device == "cpu":
            keys = ("self_cpu_ms", "cpu_total_ms", "self_cpu_memory_mb", "cpu_memory_mb")
        else:
            keys = ("self_device_ms", "device_total_ms", "self_device_memory_mb", "device_memory_mb")
        return [{"operator": r["name"], "kind": r.get("kind", "operator"), "calls": r["calls"],
                 **{k: round(float(r.get(k, 0.0)), 3) for k in keys}} for r in self.operators.get(device, [])]

    def epoch_rows(self) -> list[dict[str, Any]]:
        """Per epoch: steps, mean ms of each phase and of the step, images/s."""
        return [{"epoch": e["epoch"], "steps": e["steps"], **{f"{p} ms": round(1000 * e[p], 1) for p in PHASES},
                 "step ms": round(1000 * e["duration"], 1), "images/s": round(e["images_per_s"], 1)}
                for e in self.steps.get("per_epoch", [])]


def load_profile(store: ProfilerStore, job_name: str) -> ProfileView | None:
    """The job's profiler view, or None when nothing was stored for it."""
    documents = store.documents(job_name)
    if "summary" not in documents:
        return None
    return ProfileView(
        job_name=job_name,
        summary=documents["summary"],
        timeline=documents.get("timeline", {}),
        steps=documents.get("steps", {}),
        phases=tuple(documents.get("phases", {}).get("phases", [])),
        findings=tuple(Finding.from_dict(f) for f in documents.get("findings", {}).get("findings", [])),
        operators=documents.get("operators", {}),
    )


def no_data_message(job: TrainingJob, view: ProfileView | None, *, reading: bool = False) -> str | None:
    """Why there is nothing to show for job, or None when there is profiler data.

    reading: an analysis follows the job from this machine and has not concluded yet.
    """
    if view is not None and view.has_data:
        return None
    if view is not None and view.errors:
        return "No profiler data: " + " ".join(view.errors)
    if job.hyperparameters.get("profile", "true").lower() in ("false", "0", "no"):
        return "No profiler data: this job ran with profile=false."
    if reading and job.status.is_terminal:
        return "No profiler data yet: the profiler analysis is reading the job's output."
    if not job.status.is_terminal:
        return ("No profiler data yet: the first samples appear within a few seconds of the training "
                "script's start, once the profiler analysis has made its first pass.")
    return ("No profiler data for this job: it was not profiled (it ran before the profiler existed, or on a "
            "backend without the profiler analysis).")
