"""Each ProfilerReport rule on synthetic metrics: cases that must fire and cases that must not."""

from __future__ import annotations

import numpy as np
import pytest

from core.profiler import rules
from core.profiler.data import JobInfo
from core.profiler.entities import RuleStatus
from tests.core.profiler.conftest import T0, data, steps, system

# Past the rules' patience (1000 samples) with room for windows of 500.
N = 2600


# --- LowGPUUtilization ---------------------------------------------------------------------


def test_low_gpu_utilization_fires_on_an_underused_gpu(rng: np.random.Generator) -> None:
    finding = rules.low_gpu_utilization(data(system(N, gpu=rng.uniform(20, 40, N))))
    assert finding.status is RuleStatus.ISSUES_FOUND
    assert finding.details["low_windows"] == {"gpu0": 3}
    assert finding.triggered_at == pytest.approx(T0 + 1000 * 0.5)
    assert "batch size" in finding.recommendation


def test_low_gpu_utilization_fires_on_a_fluctuating_gpu(rng: np.random.Generator) -> None:
    gpu = rng.uniform(85, 99, N)
    gpu[::10] = 0.0  # every tenth sample idle: p95 high, p5 zero
    finding = rules.low_gpu_utilization(data(system(N, gpu=gpu)))
    assert finding.status is RuleStatus.ISSUES_FOUND
    assert finding.details["fluctuating_windows"] == {"gpu0": 3}


def test_low_gpu_utilization_quiet_on_a_busy_gpu(rng: np.random.Generator) -> None:
    finding = rules.low_gpu_utilization(data(system(N, gpu=rng.uniform(85, 99, N))))
    assert finding.status is RuleStatus.NO_ISSUES_FOUND
    assert finding.recommendation == ""


def test_low_gpu_utilization_ignores_the_patience_samples() -> None:
    gpu = np.full(N, 95.0)
    gpu[:1000] = 0.0  # start-up: idle GPU, skipped by patience
    assert rules.low_gpu_utilization(data(system(N, gpu=gpu))).status is RuleStatus.NO_ISSUES_FOUND


def test_gpu_rules_say_no_gpu_without_one() -> None:
    cpu_only = data(system(N, gpus=0))
    for rule in (rules.low_gpu_utilization, rules.cpu_bottleneck, rules.io_bottleneck, rules.batch_size,
                 rules.gpu_memory_increase, rules.load_balancing):
        finding = rule(cpu_only)
        assert finding.status is RuleStatus.NOT_APPLICABLE
        assert "no GPU" in finding.message


def test_a_short_run_is_insufficient_data_with_the_reason() -> None:
    finding = rules.low_gpu_utilization(data(system(300, gpu=5.0)))
    assert finding.status is RuleStatus.INSUFFICIENT_DATA
    assert "300 samples" in finding.message and "patience" in finding.message


# --- CPUBottleneck and IOBottleneck --------------------------------------------------------


def _share(n: int, share: float, high: float, low: float) -> np.ndarray:
    values = np.full(n, low)
    values[: int(n * share)] = high
    return values


def test_cpu_bottleneck_fires_when_busy_cpu_starves_the_gpu() -> None:
    n = 3000
    busy = _share(n, 0.8, 1.0, 0.0)  # after patience, 1600 of 2000 samples are bottlenecked
    finding = rules.cpu_bottleneck(data(system(n, cpu=np.where(busy > 0, 97.0, 40.0), gpu=np.where(busy > 0, 3.0, 90.0))))
    assert finding.status is RuleStatus.ISSUES_FOUND
    assert finding.details["share_percent"] == pytest.approx(70.0)


def test_cpu_bottleneck_quiet_below_half_the_time() -> None:
    n = 3000
    busy = _share(n, 0.5, 1.0, 0.0)  # after patience: 500 of 2000 samples
    finding = rules.cpu_bottleneck(data(system(n, cpu=np.where(busy > 0, 97.0, 40.0), gpu=np.where(busy > 0, 3.0, 90.0))))
    assert finding.status is RuleStatus.NO_ISSUES_FOUND
    assert finding.details["share_percent"] == pytest.approx(25.0)


def test_cpu_bottleneck_quiet_when_the_gpu_is_busy_too() -> None:
    assert rules.cpu_bottleneck(data(system(N, cpu=99.0, gpu=90.0))).status is RuleStatus.NO_ISSUES_FOUND


def test_io_bottleneck_fires_on_io_wait_with_an_idle_gpu() -> None:
    finding = rules.io_bottleneck(data(system(N, iowait=65.0, gpu=2.0)))
    assert finding.status is RuleStatus.ISSUES_FOUND
    assert "I/O wait" in finding.message


def test_io_bottleneck_quiet_on_io_wait_with_a_busy_gpu() -> None:
    assert rules.io_bottleneck(data(system(N, iowait=65.0, gpu=85.0))).status is RuleStatus.NO_ISSUES_FOUND
    assert rules.io_bottleneck(data(system(N, iowait=10.0, gpu=2.0))).status is RuleStatus.NO_ISSUES_FOUND


# --- BatchSize -------------------------------------------------------------------------------


def test_batch_size_fires_when_everything_is_underused() -> None:
    finding = rules.batch_size(data(system(N, cpu=30.0, gpu=40.0, gpu_memory=20.0)))
    assert finding.status is RuleStatus.ISSUES_FOUND
    assert finding.details["windows"] == 3


@pytest.mark.parametrize("busy", [{"cpu": 80.0}, {"gpu": 80.0}, {"gpu_memory": 80.0}])
def test_batch_size_quiet_when_one_resource_is_well_used(busy: dict[str, float]) -> None:
    values = {"cpu": 30.0, "gpu": 40.0, "gpu_memory": 20.0, **busy}
    assert rules.batch_size(data(system(N, **values))).status is RuleStatus.NO_ISSUES_FOUND


# --- StepOutlier -----------------------------------------------------------------------------


def test_step_outlier_fires_from_ten_outliers(rng: np.random.Generator) -> None:
    durations = rng.normal(0.1, 0.005, 400)
    durations[::40] = 1.0  # ten slow steps
    finding = rules.step_outlier(data(step_records=steps(durations)))
    assert finding.status is RuleStatus.ISSUES_FOUND
    assert finding.details["outliers"] == 10


def test_step_outlier_quiet_with_fewer_outliers(rng: np.random.Generator) -> None:
    durations = rng.normal(0.1, 0.005, 400)
    durations[::80] = 1.0  # five slow steps
    finding = rules.step_outlier(data(step_records=steps(durations)))
    assert finding.status is RuleStatus.NO_ISSUES_FOUND
    assert finding.details["outliers"] == 5


def test_step_outlier_leaves_out_the_profiled_steps(rng: np.random.Generator) -> None:
    durations = rng.normal(0.1, 0.005, 400)
    profiled = np.zeros(400, dtype=bool)
    durations[5:17], profiled[5:17] = 1.0, True  # twelve slow steps, all inside the profiler window
    finding = rules.step_outlier(data(step_records=steps(durations, profiled=profiled)))
    assert finding.status is RuleStatus.NO_ISSUES_FOUND
    assert finding.details["outliers"] == 0


def test_step_outlier_needs_steps() -> None:
    assert rules.step_outlier(data(step_records=steps([0.1]))).status is RuleStatus.INSUFFICIENT_DATA


# --- Dataloader ----------------------------------------------------------------------------


@pytest.mark.parametrize(("workers", "cpus", "fired"), [(0, 2, True), (1, 2, True), (2, 2, False), (4, 2, False),
                                                         (5, 2, True), (12, 16, False), (8, 16, True)])
def test_dataloader_fires_outside_70_to_200_percent_of_the_cores(workers: int, cpus: int, fired: bool) -> None:
    info = JobInfo(process_start=T0, cpus=cpus, num_workers=workers)
    finding = rules.dataloader(data(step_records=steps(np.full(10, 0.2), dataloader_share=0.4), info=info))
    assert finding.status.fired is fired
    assert finding.details["dataloading_percent"] == pytest.approx(40.0)
    if fired:
        assert ("more" if workers < cpus else "fewer") in finding.recommendation


def test_dataloader_without_job_facts_is_insufficient_data() -> None:
    finding = rules.dataloader(data(info=JobInfo(process_start=T0, cpus=2)))
    assert finding.status is RuleStatus.INSUFFICIENT_DATA


# --- GPUMemoryIncrease -----------------------------------------------------------------------


def test_gpu_memory_increase_fires_on_growing_memory() -> None:
    memory = np.full(N, 30.0)
    memory[1500:] = 45.0  # a jump of 15 points, after patience
    finding = rules.gpu_memory_increase(data(system(N, gpu_memory=memory)))
    assert finding.status is RuleStatus.ISSUES_FOUND
    assert finding.details["max_increase"] == pytest.approx(15.0)
    assert finding.triggered_at is not None and finding.triggered_at > T0 + 1500 * 0.5


def test_gpu_memory_increase_quiet_on_steady_memory(rng: np.random.Generator) -> None:
    memory = 50 + rng.uniform(-1, 1, N)
    assert rules.gpu_memory_increase(data(system(N, gpu_memory=memory))).status is RuleStatus.NO_ISSUES_FOUND


# --- MaxInitializationTime -------------------------------------------------------------------


def test_max_initialization_time_fires_after_twenty_minutes() -> None:
    finding = rules.max_initialization_time(data(step_records=steps(np.full(5, 0.1), start=T0 + 25 * 60)))
    assert finding.status is RuleStatus.ISSUES_FOUND
    assert finding.details["initialization_s"] == pytest.approx(1500.0)


def test_max_initialization_time_quiet_for_a_quick_start() -> None:
    finding = rules.max_initialization_time(data(step_records=steps(np.full(5, 0.1), start=T0 + 30)))
    assert finding.status is RuleStatus.NO_ISSUES_FOUND


def test_max_initialization_time_fires_while_still_initialising() -> None:
    no_steps = steps(np.zeros(0))
    assert rules.max_initialization_time(data(step_records=no_steps, now=T0 + 21 * 60)).status is RuleStatus.ISSUES_FOUND
    assert rules.max_initialization_time(data(step_records=no_steps, now=T0 + 60)).status is RuleStatus.INSUFFICIENT_DATA


# --- LoadBalancing ---------------------------------------------------------------------------


def test_load_balancing_fires_on_uneven_gpus(rng: np.random.Generator) -> None:
    gpu = np.column_stack([rng.uniform(85, 95, N), rng.uniform(5, 15, N)])
    finding = rules.load_balancing(data(system(N, gpus=2, gpu=gpu, gpu_memory=50.0)))
    assert finding.status is RuleStatus.ISSUES_FOUND
    assert finding.details["pair"] == ["gpu0", "gpu1"]
    assert finding.details["distance"] == pytest.approx(1.0)


def test_load_balancing_quiet_on_even_gpus(rng: np.random.Generator) -> None:
    gpu = np.column_stack([rng.uniform(80, 95, N), rng.uniform(80, 95, N)])
    assert rules.load_balancing(data(system(N, gpus=2, gpu=gpu, gpu_memory=50.0))).status is RuleStatus.NO_ISSUES_FOUND


def test_load_balancing_needs_two_gpus() -> None:
    finding = rules.load_balancing(data(system(N, gpus=1)))
    assert finding.status is RuleStatus.NOT_APPLICABLE and "one GPU" in finding.message


# --- OverallSystemUsage and the registry -----------------------------------------------------


def test_overall_system_usage_reports_percentiles_and_never_fires() -> None:
    cpu = np.linspace(0, 100, 101)
    finding = rules.overall_system_usage(data(system(101, cpu=cpu, gpu=100.0)))
    assert finding.status is RuleStatus.NO_ISSUES_FOUND
    usage = finding.details["usage"]
    assert usage["CPU"] == {"max": 100.0, "p99": 99.0, "p95": 95.0, "p50": 50.0, "min": 0.0}
    assert usage["GPU"]["p50"] == 100.0


def test_evaluate_rules_runs_every_rule_with_overrides() -> None:
    findings = rules.evaluate_rules(data(system(300, gpu=5.0)), {"LowGPUUtilization": {"patience": 0, "window": 100}})
    assert [f.rule for f in findings] == list(rules.RULES)
    low = findings[0]
    assert low.status is RuleStatus.ISSUES_FOUND and low.parameters["window"] == 100


def test_evaluate_rules_rejects_unknown_rules_and_parameters() -> None:
    with pytest.raises(ValueError, match="unknown profiler rule"):
        rules.evaluate_rules(data(), {"NoSuchRule": {}})
    with pytest.raises(ValueError, match="StepOutlier"):
        rules.evaluate_rules(data(), {"StepOutlier": {"sigma": 2}})


def test_default_parameters_are_sagemakers() -> None:
    assert rules.LowGPUUtilization() == rules.LowGPUUtilization(70, 10, 500, 1000)
    assert rules.CPUBottleneck() == rules.CPUBottleneck(50, 10, 90, 1000)
    assert rules.IOBottleneck() == rules.IOBottleneck(50, 10, 50, 1000)
    assert rules.BatchSize() == rules.BatchSize(70, 70, 70, 1000, 500)
    assert rules.StepOutlier() == rules.StepOutlier(3, 10)
    assert rules.Dataloader() == rules.Dataloader(70, 200)
    assert rules.GPUMemoryIncrease() == rules.GPUMemoryIncrease(5, 1000, 10)
    assert rules.MaxInitializationTime().threshold == 20
    assert rules.LoadBalancing() == rules.LoadBalancing(0.5, 1000)
