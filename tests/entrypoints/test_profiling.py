"""entrypoints/profiling.py and system_monitor.py in the job environment: files, steps, the window, and
the upload to S3 as the job trains (s3_sync.py; moto's server on 127.0.0.1)."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import boto3
import pytest

from core.config import DEFAULT_JOB_PYTHON, ENTRYPOINTS_DIR
from entrypoints import s3_sync
from tests.entrypoints.test_profiler_sidecar import moto_endpoint_fixture  # noqa: F401  (registers moto_endpoint)
from tests.entrypoints.test_train import _job_env, _write_dataset

# A tiny training loop run the way train.py runs it: session, attach, steps, evaluation.
_SESSION = """
import argparse, json, sys, time
sys.path.insert(0, sys.argv[1])
import torch, profiling
from smdebug.profiler.system_metrics_reader import LocalSystemMetricsReader
from smdebug.profiler.utils import TimeUnits

class Loader:
    num_workers, pin_memory = 0, False
    def __iter__(self):
        for _ in range(5):
            time.sleep(0.03)  # data loading
            yield torch.randn(4, 8), torch.randint(0, 2, (4,))

out = sys.argv[2]
args = argparse.Namespace(profile=True, profile_interval_ms=100, profile_window=(2, 2), profiler_dir=None,
                          output_data_dir=out, batch_size=4, num_workers=0, model="linear", augment="none")
model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
with profiling.session(args) as active:
    profiling.attach(model, optimizer, torch.device("cpu"))
    for epoch in (1, 2):
        for x, y in profiling.steps(Loader(), epoch=epoch):
            loss = torch.nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.inference_mode():
            for x, _ in profiling.evaluation(Loader()):
                model(x)
    time.sleep(0.3)
reader = LocalSystemMetricsReader(out + "/profiler-output")
events = reader.get_events(0, time.time() + 60, unit=TimeUnits.SECONDS)
print(json.dumps({"events": len(events), "series": sorted({(e.type, e.name, e.dimension) for e in events}),
                  "nodes": sorted({e.node_id for e in events}), "active_after": profiling._ACTIVE is not None}))
"""

# The GPU path with a stand-in for nvidia-ml-py (this machine has no GPU).
_FAKE_GPU = """
import json, sys, types
sys.path.insert(0, sys.argv[1])
import profiling, system_monitor
from pathlib import Path

class FakeNvml:
    def nvmlInit(self): pass
    def nvmlShutdown(self): pass
    def nvmlDeviceGetCount(self): return 2
    def nvmlDeviceGetHandleByIndex(self, i): return i
    def nvmlDeviceGetName(self, h): return b"NVIDIA H100" if h == 0 else "NVIDIA H100"
    def nvmlDeviceGetUtilizationRates(self, h): return types.SimpleNamespace(gpu=[87, 12][h])
    def nvmlDeviceGetMemoryInfo(self, h): return types.SimpleNamespace(used=[40, 10][h], total=80)

class Broken:
    def nvmlInit(self): raise RuntimeError("NVML Shared Library Not Found")

gpus = system_monitor.GpuReader(FakeNvml())
files = system_monitor.MinuteFiles(Path(sys.argv[2]), "algo-1")
monitor = system_monitor.SystemMonitor(files, "algo-1", 0.5, gpus)
monitor.sample()
files.close()
windows = [profiling.parse_window(v) for v in ("5:3", "0:1", "off", "")]
try:
    profiling.parse_window("5")
    bad = None
except Exception as exc:
    bad = str(exc)
print(json.dumps({"names": gpus.names, "count": gpus.count, "broken": system_monitor.GpuReader(Broken()).count,
                  "windows": windows, "bad": bad, "node": system_monitor.node_id()}))
"""


def _completed(script: str, *args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(DEFAULT_JOB_PYTHON), "-c", script, str(ENTRYPOINTS_DIR), *args],
                            capture_output=True, text=True, timeout=300, env=env, cwd=cwd)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _run(script: str, *args: str, cwd: Path, env: dict[str, str] | None = None) -> Any:
    """The script's last line of output, a JSON document."""
    return json.loads(_completed(script, *args, cwd=cwd, env=env).stdout.strip().splitlines()[-1])


def _lines(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for path in sorted(folder.glob("*/*.json")) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def session_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], str]:
    """The profiler's output folder, what the script read back, and everything it logged."""
    out = tmp_path_factory.mktemp("session")
    result = _completed(_SESSION, str(out), cwd=out)
    return out / "profiler-output", json.loads(result.stdout.strip().splitlines()[-1]), result.stdout + result.stderr


def test_system_metrics_are_sagemaker_files_that_smdebug_reads(session_run: tuple[Path, dict[str, Any], str]) -> None:
    root, read, _ = session_run
    files = sorted((root / "system" / "incremental").glob("*/*.json"))
    assert files and all(len(f.parent.name) == 10 and f.name.endswith(".algo-1.json") for f in files)
    assert all(int(f.name.split(".")[0]) % 60 == 0 for f in files)  # one file per minute
    lines = _lines(root / "system" / "incremental")
    assert read["events"] == len(lines) > 0 and read["nodes"] == ["algo-1"]
    series = {tuple(s) for s in read["series"]}
    cores = os.cpu_count() or 1
    assert {("cpu", f"cpu{i}", d) for i in range(cores) for d in ("CPUUtilization", "I/OWaitPercentage")} <= series
    assert {("memory", "MemoryUsedPercent", "Memory"), ("i/o", "disks", "IOPS"),
            ("i/o", "disks", "ReadThroughputInBytesPerSecond"), ("i/o", "disks", "WriteThroughputInBytesPerSecond"),
            ("network", "interfaces", "ReceiveBytesPerSecond"),
            ("network", "interfaces", "TransmitBytesPerSecond")} <= series
    assert not any(s[0] == "gpu" for s in series)  # no GPU here
    assert all(set(line) == {"Type", "Name", "Dimension", "Value", "NodeId", "Timestamp"} for line in lines)
    assert all(0 <= line["Value"] <= 100 for line in lines if line["Type"] == "cpu")
    samples = sorted({line["Timestamp"] for line in lines})
    assert len(samples) >= 5  # 100 ms interval over a second or more
    assert not read["active_after"]


def test_steps_phases_and_job_facts_are_recorded(session_run: tuple[Path, dict[str, Any], str]) -> None:
    root, _, _ = session_run
    events = _lines(root / "framework" / "events")
    steps = [e for e in events if e["Type"] == "step"]
    assert [(s["Epoch"], s["Step"]) for s in steps] == [(1 + i // 5, i) for i in range(10)]
    assert [s["Profiled"] for s in steps] == [False, False, True, True] + [False] * 6
    for step in steps:
        phases = step["Phases"]
        assert set(phases) == {"dataloader", "forward", "backward", "optimizer", "other"}
        assert phases["dataloader"] >= 0.025 and phases["forward"] > 0 and phases["backward"] > 0
        assert phases["optimizer"] > 0 and step["Batch"] == 4
        assert sum(phases.values()) == pytest.approx(step["Duration"], rel=1e-6)
        assert step["Start"] == pytest.approx(steps[0]["Start"], abs=60)
    phases = [(e["Name"], e.get("Epoch")) for e in events if e["Type"] == "phase"]
    assert phases == [("profiler window", None), ("training", 1), ("evaluation", None), ("training", 2),
                      ("evaluation", None)]
    job = {k: v for e in events if e["Type"] == "job" for k, v in e.items()}
    assert job["Cpus"] == os.cpu_count() and job["Gpus"] == 0 and job["NumWorkers"] == 0
    assert job["BatchSize"] == 4 and job["Device"] == "cpu" and job["Window"] == "2:2" and job["IntervalMs"] == 100
    assert events[-1]["Type"] == "end"


def test_the_window_writes_a_trace_and_an_operator_summary(session_run: tuple[Path, dict[str, Any], str]) -> None:
    root, _, _ = session_run
    folder = root / "framework" / "pytorch"
    traces = list(folder.glob("*.pt.trace.json.gz"))
    summaries = list(folder.glob("*_operators.json"))
    assert len(traces) == 1 and len(summaries) == 1
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no partial files left
    trace = json.loads(gzip.decompress(traces[0].read_bytes()))
    names = {e.get("name") for e in trace["traceEvents"]}
    assert {"phase:dataloader", "phase:forward", "phase:backward", "phase:optimizer"} <= names
    assert "aten::addmm" in names
    summary = json.loads(summaries[0].read_text())
    assert summary["trace"] == traces[0].name and summary["first_step"] == 2 and summary["steps"] == 2
    operators = {row["name"]: row for row in summary["operators"]}
    assert operators["aten::addmm"]["calls"] >= 4 and operators["aten::addmm"]["self_cpu_ms"] > 0
    assert operators["phase:forward"]["kind"] == "phase"
    assert {"self_device_ms", "cpu_memory_mb", "device_memory_mb"} <= set(operators["aten::addmm"])


def test_a_window_without_a_gpu_logs_no_gpu_error(session_run: tuple[Path, dict[str, Any], str]) -> None:
    _, _, log = session_run  # the same run whose window wrote a trace (the test above)
    assert "gpuGetDeviceCount" not in log and "ERROR" not in log


def test_gpu_metrics_through_nvml_and_window_parsing(tmp_path: Path) -> None:
    env = {**os.environ, "SM_CURRENT_HOST": "algo-3"}
    result = _run(_FAKE_GPU, str(tmp_path), cwd=tmp_path, env=env)
    assert result["names"] == ["NVIDIA H100", "NVIDIA H100"] and result["count"] == 2 and result["broken"] == 0
    assert result["windows"] == [[5, 3], [0, 1], None, None]
    assert "START:STEPS" in result["bad"] and result["node"] == "algo-3"
    lines = _lines(tmp_path)
    gpu = {(line["Name"], line["Dimension"]): line["Value"] for line in lines if line["Type"] == "gpu"}
    assert gpu == {("gpu0", "GPUUtilization"): 87.0, ("gpu0", "GPUMemoryUtilization"): 50.0,
                   ("gpu1", "GPUUtilization"): 12.0, ("gpu1", "GPUMemoryUtilization"): 12.5}
    assert {line["NodeId"] for line in lines} == {"algo-1"}


_TRAIN_CASES = """
import contextlib, io, json, os, sys
sys.path.insert(0, sys.argv[1])
import train
results = []
for argv, env in json.loads(sys.argv[2]):
    os.environ.update(env)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = train.main(argv)
    results.append({"code": code, "output": out.getvalue()})
print(json.dumps(results))
"""


def test_train_py_profiles_itself_unless_told_not_to(tmp_path: Path) -> None:
    data = _write_dataset(tmp_path / "shapes", {"train": 4, "valid": 2})
    common = ["--epochs", "1", "--batch-size", "2", "--image-size", "16", "--num-workers", "0", "--pretrained",
              "false", "--debug", "false"]
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cases = [
        ([*common, "--profile-window", "1:1", "--profile-interval-ms", "100"], _job_env(tmp_path / "on", data)),
        ([*common, "--profile", "false"], _job_env(tmp_path / "off", data)),
        ([*common, "--profiler-dir", str(blocker / "profiler-output")], _job_env(tmp_path / "blocked", data)),
    ]
    on, off, blocked = _run(_TRAIN_CASES, json.dumps(cases), cwd=tmp_path)
    assert on["code"] == off["code"] == blocked["code"] == 0, (on, off, blocked)
    root = tmp_path / "on" / "output" / "data" / "profiler-output"
    assert list((root / "system" / "incremental").glob("*/*.algo-1.json"))
    steps = [e for e in _lines(root / "framework" / "events") if e["Type"] == "step"]
    assert len(steps) == 6 and sum(s["Profiled"] for s in steps) == 1
    assert list((root / "framework" / "pytorch").glob("*_operators.json"))
    assert not (tmp_path / "off" / "output" / "data" / "profiler-output").exists()
    assert "profiler: not profiling this run" in blocked["output"]  # and the run still trained
    assert "epoch=1/1 " in blocked["output"]


def _objects(prefix: str) -> dict[str, bytes]:
    """The bodies of the test bucket's objects under prefix, by key relative to it."""
    s3 = boto3.client("s3")
    listed = s3.list_objects_v2(Bucket="bucket", Prefix=prefix).get("Contents", [])
    return {o["Key"][len(prefix):]: s3.get_object(Bucket="bucket", Key=o["Key"])["Body"].read() for o in listed}


def test_the_uploader_sends_new_and_changed_files_and_outlives_failures(
        moto_endpoint: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "profiler-output"
    (folder / "system" / "2026120418").mkdir(parents=True)
    minute = folder / "system" / "2026120418" / "1796407200.algo-1.json"
    minute.write_text("one\n")
    (folder / "system" / ".being-written.json.partial").write_text("half")
    uploader = s3_sync.FolderUploader(folder, "s3://missing-bucket/jobs/j/profiler-output", interval_s=3600)
    assert uploader.sync() == 0 and uploader.sync() == 0  # no such bucket: logged once, nothing raised
    assert len([r for r in caplog.records if "uploading to s3://missing-bucket" in r.getMessage()]) == 1

    uploader = s3_sync.FolderUploader(folder, "s3://bucket/jobs/j/profiler-output", interval_s=3600)
    assert uploader.sync() == 1 and _objects("jobs/j/profiler-output/") == {
        "system/2026120418/1796407200.algo-1.json": b"one\n"}
    assert uploader.sync() == 0  # nothing changed, nothing sent
    with open(minute, "a") as handle:
        handle.write("two\n")
    assert uploader.sync() == 1 and _objects("jobs/j/")["profiler-output/system/2026120418/1796407200.algo-1.json"] \
        == b"one\ntwo\n"
    uploader.start()  # the thread waits an hour between passes: close() makes the last one
    (folder / "framework" / "pytorch").mkdir(parents=True)
    (folder / "framework" / "pytorch" / "1_algo-1_operators.json").write_text("{}")
    uploader.close()
    assert set(_objects("jobs/j/profiler-output/")) == {"system/2026120418/1796407200.algo-1.json",
                                                         "framework/pytorch/1_algo-1_operators.json"}


def test_train_py_uploads_its_profiler_output(moto_endpoint: str, tmp_path: Path) -> None:
    data = _write_dataset(tmp_path / "shapes", {"train": 4, "valid": 2})
    common = ["--epochs", "1", "--batch-size", "2", "--image-size", "16", "--num-workers", "0", "--pretrained",
              "false", "--debug", "false", "--max-steps-per-epoch", "2", "--profile-window", "1:1",
              "--profile-interval-ms", "100", "--profile-out-dir", "s3://bucket/jobs/{job_name}/profiler-output"]
    cases = [
        (common, {**_job_env(tmp_path / "first", data), "TRAINING_JOB_NAME": "job-1", "SM_CURRENT_HOST": "algo-1"}),
        (common, {**_job_env(tmp_path / "second", data), "TRAINING_JOB_NAME": "job-2", "SM_CURRENT_HOST": "algo-2"}),
        (common, {**_job_env(tmp_path / "nameless", data), "TRAINING_JOB_NAME": "", "SM_CURRENT_HOST": "algo-1"}),
    ]
    first, second, nameless = _run(_TRAIN_CASES, json.dumps(cases), cwd=tmp_path)
    assert first["code"] == second["code"] == nameless["code"] == 0, (first, second, nameless)
    local = tmp_path / "first" / "output" / "data" / "profiler-output"
    files = {p.relative_to(local).as_posix(): p.read_bytes() for p in local.rglob("*") if p.is_file()}
    assert _objects("jobs/job-1/profiler-output/") == files  # every file, as it was at the end
    assert {name.split("/")[0] + "/" + name.split("/")[1] for name in files} == {
        "system/incremental", "framework/events", "framework/pytorch"}
    assert any(name.endswith(".pt.trace.json.gz") for name in files)
    assert set(_objects("jobs/")) == {f"job-1/profiler-output/{name}" for name in files}  # only algo-1 uploads
    assert "algo-2 keeps its profiler output" in second["output"]
    assert "TRAINING_JOB_NAME is unset" in nameless["output"] and "epoch=1/1 " in nameless["output"]
