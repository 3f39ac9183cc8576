"""The HTML report: self-contained, every section from the documents, text escaped."""

from __future__ import annotations

import numpy as np

from core.profiler.aggregate import build_documents
from core.profiler.data import JobInfo, Phase
from core.profiler.report import render_report
from core.profiler.rules import evaluate_rules
from tests.core.profiler.conftest import T0, data, steps, system

OPERATORS = {"windows": [{"trace": "1_algo-1.pt.trace.json.gz", "first_step": 5, "steps": 3, "activities": ["CPU"]}],
             "cpu": [{"name": "aten::convolution_backward", "calls": 147, "self_cpu_ms": 2299.2, "cpu_total_ms": 2315.0,
                      "cpu_memory_mb": 164.4}], "gpu": []}


def documents(**kwargs: object) -> dict:
    profile = data(system(400, gpus=0), steps(np.full(50, 0.2), dataloader_share=0.6),
                   info=JobInfo(process_start=T0, cpus=2, num_workers=0, batch_size=32, ended_at=T0 + 300),
                   phases=(Phase("training", T0 + 30, T0 + 40, 1),), **kwargs)  # type: ignore[arg-type]
    return build_documents(profile, evaluate_rules(profile), OPERATORS, state="complete")


def test_report_is_self_contained_with_every_section() -> None:
    html = render_report(documents(), "job-<1>")
    assert html.startswith("<!DOCTYPE html>") and "<script" not in html and "http" not in html
    for heading in ("Job summary", "Rules summary", "System usage statistics", "Time by phase", "Utilisation",
                    "Step durations", "Data loading against compute", "Top operators"):
        assert f"<h2>{heading}</h2>" in html
    assert "job-&lt;1&gt;" in html and "job-<1>" not in html
    assert "<svg" in html and "aten::convolution_backward" in html
    assert "Use more data-loader workers" in html  # the Dataloader rule fired (0 workers)
    assert "No GPU in this job" in html


def test_report_of_a_job_without_data_still_renders() -> None:
    html = render_report({"summary": {"state": "complete", "samples": 0, "errors": ["no profiler data under X"]}}, "j")
    assert "no profiler data under X" in html
    assert "No torch.profiler window was recorded" in html
