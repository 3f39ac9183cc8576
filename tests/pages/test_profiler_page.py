"""The Profiler page with AppTest against the real local backend: findings, charts, report, no-data messages."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from app_pages._timeline import clicked_time
from core.analysis import AnalysisNotes
from core.backend import Backend
from core.entities import TrainingJob
from core.profiler import ProfilerStore
from core.profiler.aggregate import build_documents
from core.profiler.data import JobInfo, Phase
from core.profiler.report import render_report
from core.profiler.rules import evaluate_rules
from core.profiler.timeline import build_index, index_path, save_index
from core.types import JobStatus
from tests.core.profiler.conftest import T0, data, steps, system
from tests.core.profiler.traces import trace_events, write_trace
from tests.pages.conftest import open_page


def add_job(backend: Backend, name: str, status: JobStatus = JobStatus.COMPLETED, **hyperparameters: str) -> None:
    backend.store.insert_job(TrainingJob(name=name, status=status, backend="local", created_at=time.time(),
                                         hyperparameters=hyperparameters))


def add_profile(backend: Backend, name: str, *, workers: int, state: str = "complete") -> None:
    durations = np.full(300, 0.3)
    durations[::30] = 3.0  # ten slow steps: StepOutlier fires too
    profile = data(system(240, cores=4, gpus=0, cpu=np.linspace(20, 100, 240)), steps(durations, epoch_every=150),
                   info=JobInfo(process_start=T0, cpus=4, num_workers=workers, batch_size=32),
                   phases=(Phase("training", T0 + 30, T0 + 60, 1), Phase("evaluation", T0 + 60, T0 + 65),
                           Phase("profiler window", T0 + 32, T0 + 34)))
    operators = {"windows": [{"trace": "1_algo-1.pt.trace.json.gz", "first_step": 5, "steps": 3,
                              "activities": ["CPU"]}],
                 "cpu": [{"name": "aten::convolution_backward", "kind": "operator", "calls": 147,
                          "self_cpu_ms": 2299.2}], "gpu": []}
    documents = build_documents(profile, evaluate_rules(profile), operators, state=state)
    documents["report"] = {"html": render_report(documents, name)}
    ProfilerStore(backend.store).put_documents(name, documents)


def test_no_job_points_to_the_training_page(local_backend: Backend) -> None:
    at = open_page("profiler")
    assert not at.exception
    assert any("No training job yet" in i.value for i in at.info)


def test_a_profiled_job_shows_findings_charts_operators_and_the_report(local_backend: Backend) -> None:
    add_job(local_backend, "slow-loader")
    add_profile(local_backend, "slow-loader", workers=0)
    at = open_page("profiler")
    assert not at.exception, at.exception
    warnings = [w.value for w in at.warning]
    assert any(w.startswith("**Dataloader**") and "num-workers=4" in w for w in warnings)
    assert any(w.startswith("**StepOutlier**") for w in warnings)
    assert [m.value for m in at.metric][:3] == ["final", "240", "300"]
    assert [t.label for t in at.tabs] == ["Utilisation", "Cores", "I/O", "Steps", "Data vs compute", "Operators",
                                          "Kernels", "System usage"]
    assert len(at.get("plotly_chart")) == 7
    assert at.get("download_button")[0].proto.label == "Download the profiler report (HTML)"
    tables = {tuple(d.value.columns)[:2]: d.value for d in at.dataframe}
    assert tables[("operator", "kind")]["operator"].tolist() == ["aten::convolution_backward"]
    findings = tables[("", "rule")]
    assert len(findings) == 10 and findings["rule"].iloc[0] in ("StepOutlier", "Dataloader")
    assert "no GPU" in findings.set_index("rule").loc["LowGPUUtilization", "what it saw"]


def test_a_healthy_job_has_no_findings(local_backend: Backend) -> None:
    add_job(local_backend, "healthy")
    profile = data(system(240, cores=4, gpus=0), steps(np.full(60, 0.3)),
                   info=JobInfo(process_start=T0, cpus=4, num_workers=4, batch_size=32))
    ProfilerStore(local_backend.store).put_documents(
        "healthy", build_documents(profile, evaluate_rules(profile), None, state="complete"))
    at = open_page("profiler")
    assert not at.exception
    assert not at.warning and any("No rule found an issue" in s.value for s in at.success)
    assert any("No torch.profiler window recorded" in i.value for i in at.info)


def test_the_selected_training_job_is_preselected(local_backend: Backend) -> None:
    add_job(local_backend, "first")
    add_job(local_backend, "second")
    add_profile(local_backend, "first", workers=4)
    from streamlit.testing.v1 import AppTest

    from tests.pages.conftest import APP

    at = AppTest.from_file(APP, default_timeout=30)
    at.session_state["selected_job"] = "first"
    at.run()
    at.switch_page("app_pages/profiler.py").run()
    assert not at.exception
    assert at.selectbox(key="profiler_job").value == "first"


def test_jobs_without_profiler_data_say_why(local_backend: Backend) -> None:
    add_job(local_backend, "unprofiled", profile="false")
    at = open_page("profiler")
    assert any("ran with profile=false" in i.value for i in at.info)
    add_job(local_backend, "empty")
    ProfilerStore(local_backend.store).put_documents("empty", {"summary": {
        "state": "complete", "samples": 0, "steps": 0, "errors": ["no profiler data under /jobs/empty/profiler-output"]}})
    at.run()
    at.selectbox(key="profiler_job").select("empty").run()
    assert any("no profiler data under /jobs/empty" in i.value for i in at.info)
    add_job(local_backend, "old")
    at.run()
    at.selectbox(key="profiler_job").select("old").run()
    assert any("not profiled" in i.value for i in at.info)


def test_a_running_job_is_shown_live(local_backend: Backend) -> None:
    add_job(local_backend, "running", JobStatus.IN_PROGRESS)
    at = open_page("profiler")
    assert any("No profiler data yet" in i.value for i in at.info)
    add_profile(local_backend, "running", workers=4, state="collecting")
    at.run()
    assert not at.exception
    assert at.metric[0].value == "live"
    at.button(key="profiler_stop_running").click().run()
    assert not at.exception
    assert local_backend.runner.describe("running").status is JobStatus.STOPPED


def test_an_ended_job_whose_analysis_still_reads_is_followed(local_backend: Backend, analysis_says) -> None:
    """A SageMaker job analysed after it ended: the page says its output is being read, not that it was not profiled."""
    analysis_says(AnalysisNotes(profiler="The profiler analysis runs on this machine.", profiler_reading=True))
    add_job(local_backend, "ended-job")
    at = open_page("profiler")
    assert not at.exception, at.exception
    assert any("reading the job's output" in i.value for i in at.info)
    assert not any("not profiled" in i.value for i in at.info)


def _profile_with_window(backend: Backend, name: str, window: dict[str, object]) -> None:
    profile = data(system(60, cores=2, gpus=1), steps(np.full(20, 0.3)),
                   info=JobInfo(process_start=T0, cpus=2, num_workers=2, batch_size=32))
    operators = {"windows": [{"trace": "1_algo-1.pt.trace.json.gz", "first_step": 5, "steps": 3,
                              "activities": ["CPU", "CUDA"], **window}], "cpu": [], "gpu": []}
    ProfilerStore(backend.store).put_documents(
        name, build_documents(profile, evaluate_rules(profile), operators, state="complete"))


def test_the_timeline_opens_at_a_step_and_offers_the_raw_trace(local_backend: Backend, tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "1_algo-1.pt.trace.json.gz", trace_events(3))
    index = index_path(trace)
    save_index(build_index(trace), index)
    add_job(local_backend, "traced")
    _profile_with_window(local_backend, "traced", {"timeline": str(index)})
    at = open_page("profiler")
    assert not at.exception, at.exception
    step = at.selectbox(key="timeline_step_traced_5")
    assert step.options == ["the whole window", "step 5", "step 6", "step 7"]
    assert at.slider(key="timeline_zoom_traced_5_the whole window").value == (0.0, 30.0)
    step.select(6).run()
    assert not at.exception, at.exception
    assert at.slider(key="timeline_zoom_traced_5_6").value == (10.0, 20.0)  # ms: the second step of the window
    (chart,) = [c.proto.spec for c in at.get("plotly_chart") if '"GPU 0 stream 7"' in c.proto.spec]
    assert '"phases"' in chart and '"sm80_xmma_fprop_0"' in chart
    assert any("events drawn" in c.value for c in at.caption)
    assert any(b.proto.label.startswith("Download the raw trace") for b in at.get("download_button"))


def test_the_kernel_view_of_a_gpu_trace_names_the_bottleneck(local_backend: Backend, tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "1_algo-1.pt.trace.json.gz", trace_events(3))
    save_index(build_index(trace), index_path(trace))
    add_job(local_backend, "gpu-job")
    _profile_with_window(local_backend, "gpu-job", {"timeline": str(index_path(trace))})
    at = open_page("profiler")
    assert not at.exception, at.exception
    assert any(w.value.startswith("**GPU waits for data**: GPU idle 94% of the step waiting for data")
               and "Change: num-workers: raise it" in w.value for w in at.warning)
    tables = {tuple(d.value.columns)[:2]: d.value for d in at.dataframe}
    assert tables[("kernel", "calls")]["kernel"].tolist()[:1] == ["sm80_xmma_fprop_0"]
    assert tables[("operator", "calls")]["operator"].tolist() == ["aten::conv2d"]
    assert tables[("step", "step ms")]["step"].tolist() == [5, 6, 7]
    assert tables[("direction", "copies")]["direction"].tolist() == ["HtoD"]
    assert {m.label: m.value for m in at.metric}["Median launch-to-run"] == "30 µs"


def test_a_cpu_trace_has_no_kernel_view(local_backend: Backend, tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "1_algo-1.pt.trace.json.gz", trace_events(3, gpu=False))
    save_index(build_index(trace), index_path(trace))
    add_job(local_backend, "cpu-job")
    _profile_with_window(local_backend, "cpu-job", {"timeline": str(index_path(trace))})
    at = open_page("profiler")
    assert not at.exception, at.exception
    assert any(i.value.startswith("No GPU events in this trace window: the job ran on a CPU") for i in at.info)


def test_a_trace_that_could_not_be_indexed_says_why(local_backend: Backend) -> None:
    add_job(local_backend, "cut")
    _profile_with_window(local_backend, "cut", {"timeline_error": "trace 1_algo-1.pt.trace.json.gz is not a whole "
                                                                  "Chrome trace (cut short or corrupt): parse error"})
    at = open_page("profiler")
    assert not at.exception, at.exception
    assert any("The trace cannot be read: trace 1_algo-1.pt.trace.json.gz is not a whole Chrome trace" in e.value
               for e in at.error)


def test_a_click_on_the_step_time_chart_is_read_as_a_time() -> None:
    def event(*points: dict[str, object]) -> SimpleNamespace:
        return SimpleNamespace(selection=SimpleNamespace(points=list(points)))

    assert clicked_time(None) is None and clicked_time(event()) is None
    assert clicked_time(event({"x": "2026-12-07 11:00:01.5"})) == 1796641201.5  # a date axis's label, UTC
    assert clicked_time(event({"x": 1796641201500})) == 1796641201.5  # ms since the epoch
