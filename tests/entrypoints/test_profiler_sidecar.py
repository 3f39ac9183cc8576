"""analysers/profiler_sidecar.py in the job environment: partial files, live passes, no data, and SageMaker
jobs whose output is in S3 (moto's server on 127.0.0.1; a stand-in for DescribeTrainingJob of a running job)."""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from core.config import DEFAULT_JOB_PYTHON, REPO_ROOT
from core.jobstore import JobStore
from core.profiler import ProfilerStore
from core.profiler.timeline import load_index
from core.profiler.views import load_profile
from entrypoints import s3_sync
from tests.core.aws_fixtures import FAKE_ACCESS_KEY, FAKE_SECRET, REGION, clear_aws_environment, moto_server
from tests.core.profiler.traces import trace_events, write_trace

SIDECAR = "analysers.profiler_sidecar"
MAX_FAILED_DESCRIBES = 20  # analysers.sagemaker_job.MAX_FAILED_DESCRIBES (the sidecar imports smdebug: job environment only)
T0 = float(int(time.time()) // 60 * 60 - 600)  # ten minutes ago, on a minute boundary


def sample_lines(t: float, cpu: float = 50.0, cores: int = 2, node: str = "algo-1") -> list[str]:
    lines = []
    for i in range(cores):
        lines += [json.dumps({"Type": "cpu", "Name": f"cpu{i}", "Dimension": d, "Value": v, "NodeId": node,
                              "Timestamp": t}) for d, v in (("CPUUtilization", cpu), ("I/OWaitPercentage", 1.0))]
    lines.append(json.dumps({"Type": "memory", "Name": "MemoryUsedPercent", "Dimension": "Memory", "Value": 20.0,
                             "NodeId": node, "Timestamp": t}))
    return lines


def minute_file(root: Path, kind: str, t: float, node: str = "algo-1") -> Path:
    minute = int(t // 60 * 60)
    folder = root / kind / time.strftime("%Y%m%d%H", time.gmtime(minute))
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{minute}.{node}.json"


def append(path: Path, text: str) -> None:
    with open(path, "a") as handle:
        handle.write(text)


def write_samples(root: Path, times: list[float], cpu: float = 50.0) -> None:
    for t in times:
        append(minute_file(root, "system/incremental", t), "".join(line + "\n" for line in sample_lines(t, cpu)))


def write_events(root: Path, records: list[dict[str, Any]]) -> None:
    for record in records:
        append(minute_file(root, "framework/events", record.get("Start", record.get("Time", T0))),
               json.dumps(record) + "\n")


def job_events(steps: int, *, workers: int, start: float = T0 + 5) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = [{"Type": "job", "Time": T0, "ProcessStart": T0, "Cpus": 2, "Gpus": 0,
                                     "BatchSize": 32, "NumWorkers": workers, "IntervalMs": 500}]
    events += [{"Type": "step", "Step": i, "Epoch": 1, "Batch": 32, "Start": start + 0.5 * i, "Duration": 0.5,
                "Profiled": False, "Phases": {"dataloader": 0.2, "forward": 0.1, "backward": 0.15, "optimizer": 0.05,
                                              "other": 0.0}} for i in range(steps)]
    return events


def run_sidecar(job_dir: Path, database: Path, *extra: str, env: dict[str, str] | None = None,
                pid: int = 0) -> subprocess.Popen[str]:
    command = [str(DEFAULT_JOB_PYTHON), "-m", SIDECAR, "--job-dir", str(job_dir), "--database", str(database),
               "--job-name", "job", "--training-pid", str(pid), *extra]
    environment = {**(env or os.environ), "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen(command, cwd=job_dir, env=environment, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen[str], timeout: float = 120) -> str:
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output
    return output


# Drives the readers pass by pass over files that grow between passes, like a running job's.
_PARTIAL = """
import json, sys
import analysers.profiler_sidecar as sidecar
root = sys.argv[1]
series = sidecar.SystemSeries(root)
events = sidecar.LineFiles(root, "framework/events/*/*.json")
out = []
for step in range(4):
    final = sys.stdin.readline().strip() == "final"
    accepted = series.update(final=final)
    records = events.read()
    cpu0 = series.series.get("algo-1", {}).get(("cpu", "cpu0", "CPUUtilization"), ([], []))[0]
    out.append({"accepted": accepted, "samples": sorted(set(cpu0)), "records": [r["Step"] for r in records]})
    print(json.dumps(out[-1]), flush=True)
"""


def test_files_are_read_while_they_are_written(tmp_path: Path) -> None:
    root = tmp_path / "profiler-output"
    reader = subprocess.Popen([str(DEFAULT_JOB_PYTHON), "-c", _PARTIAL, str(root)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, cwd=tmp_path)
    assert reader.stdin and reader.stdout

    def next_pass(final: bool = False) -> dict[str, Any]:
        reader.stdin.write("final\n" if final else "pass\n")  # type: ignore[union-attr]
        reader.stdin.flush()  # type: ignore[union-attr]
        line = reader.stdout.readline()  # type: ignore[union-attr]
        assert line, reader.stderr.read()  # type: ignore[union-attr]
        return json.loads(line)

    system = minute_file(root, "system/incremental", T0)
    events = minute_file(root, "framework/events", T0)
    steps = [json.dumps(e) for e in job_events(3, workers=0)[1:]]
    second = sample_lines(T0 + 0.5)
    # Pass 1: one whole sample, half of the next (three lines and a cut one); a step and a cut step.
    append(system, "\n".join(sample_lines(T0)) + "\n" + "\n".join(second[:3]) + "\n" + second[3][:20])
    append(events, steps[0] + "\n" + steps[1][:25])
    first = next_pass()
    assert first["samples"] == [T0] and first["records"] == [0]
    # Pass 2: the rest of the cut sample and a third one arrive; the newest is held back.
    append(system, second[3][20:] + "\n" + "\n".join(second[4:]) + "\n" + "\n".join(sample_lines(T0 + 1.0)) + "\n")
    append(events, steps[1][25:] + "\n")
    result = next_pass()
    assert result["samples"] == [T0, T0 + 0.5] and result["records"] == [1]
    # Pass 3: nothing new: nothing twice.
    assert next_pass() == {"accepted": 0, "samples": [T0, T0 + 0.5], "records": []}
    # Final pass: the held-back sample and the last step.
    append(events, steps[2] + "\n")
    last = next_pass(final=True)
    assert last["samples"] == [T0, T0 + 0.5, T0 + 1.0] and last["records"] == [2]
    assert last["accepted"] == len(sample_lines(T0))
    reader.wait(timeout=30)


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A stand-in for the training process: lives until the test kills it."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    yield process
    if process.poll() is None:
        process.kill()
    process.wait()


def test_live_passes_then_a_final_pass_after_the_training_process_ends(
        tmp_path: Path, sleeper: subprocess.Popen[bytes]) -> None:
    job_dir, database = tmp_path / "job", tmp_path / "console.db"
    root = job_dir / "output" / "data" / "profiler-output"
    write_samples(root, [T0 + 0.5 * i for i in range(40)], cpu=95.0)
    write_events(root, job_events(20, workers=0))
    sidecar = run_sidecar(job_dir, database, "--poll-s", "0.5", pid=sleeper.pid)
    store = ProfilerStore(JobStore(database))
    deadline = time.time() + 90
    view = None
    while time.time() < deadline and (view is None or view.summary["samples"] < 39):
        time.sleep(0.3)
        view = load_profile(store, "job")
    assert view is not None and view.is_collecting, "no live pass within 90 s"
    assert view.summary["samples"] == 39  # the newest sample waits for the next pass
    assert [f.rule for f in view.fired] == ["Dataloader"]
    write_samples(root, [T0 + 20 + 0.5 * i for i in range(20)], cpu=95.0)
    write_events(root, [*job_events(10, workers=0, start=T0 + 20)[1:], {"Type": "end", "Time": T0 + 31}])
    sleeper.kill()
    sleeper.wait()
    finish(sidecar)
    view = load_profile(store, "job")
    assert view is not None and not view.is_collecting
    assert view.summary["samples"] == 60 and view.summary["steps"] == 30
    assert view.summary["usage"]["CPU"]["p50"] == 95.0
    assert view.summary["time_split"]["initialization"] == pytest.approx(5.0)
    dataloader = next(f for f in view.findings if f.rule == "Dataloader")
    assert dataloader.details["dataloading_percent"] == pytest.approx(40.0)
    report = (root / "report" / "profiler-report.html").read_text()
    assert report == store.report_html("job") and "Dataloader" in report


def test_a_truncated_trace_is_reported_and_the_rest_is_analysed(tmp_path: Path) -> None:
    job_dir, database = tmp_path / "job", tmp_path / "console.db"
    root = job_dir / "output" / "data" / "profiler-output"
    write_profile(root, samples=10, steps=4)
    trace = root / "framework" / "pytorch" / f"{int(T0)}_algo-1.pt.trace.json.gz"
    trace.write_bytes(trace.read_bytes()[:-40])  # the gzip stream cut short
    finish(run_sidecar(job_dir, database))
    view = load_profile(ProfilerStore(JobStore(database)), "job")
    assert view is not None and view.summary["steps"] == 4
    (window,) = view.operators["windows"]
    assert "timeline" not in window
    assert window["timeline_error"].startswith(f"trace {trace.name} is not a whole Chrome trace")


def test_a_job_without_profiler_data_says_so(tmp_path: Path) -> None:
    job_dir, database = tmp_path / "job", tmp_path / "console.db"
    job_dir.mkdir()
    finish(run_sidecar(job_dir, database))
    view = load_profile(ProfilerStore(JobStore(database)), "job")
    assert view is not None and not view.has_data
    assert "no profiler data under" in view.errors[0] and "--profile false" in view.errors[0]


def test_the_sidecar_waits_for_data_and_keeps_going_after_a_bad_line(
        tmp_path: Path, sleeper: subprocess.Popen[bytes]) -> None:
    job_dir, database = tmp_path / "job", tmp_path / "console.db"
    job_dir.mkdir()
    sidecar = run_sidecar(job_dir, database, "--poll-s", "0.3", pid=sleeper.pid)
    time.sleep(2)
    assert ProfilerStore(JobStore(database)).documents("job") == {}  # nothing stored before there is data
    root = job_dir / "output" / "data" / "profiler-output"
    write_events(root, job_events(5, workers=2))
    append(minute_file(root, "framework/events", T0), "{not json}\n")
    write_samples(root, [T0 + 0.5 * i for i in range(4)])
    second_node = minute_file(root, "system/incremental", T0, node="algo-2")
    append(second_node, "".join(line + "\n" for t in (T0, T0 + 0.5) for line in sample_lines(t, 99.0, node="algo-2")))
    sleeper.send_signal(signal.SIGKILL)
    sleeper.wait()
    finish(sidecar)
    view = load_profile(ProfilerStore(JobStore(database)), "job")
    assert view is not None and view.summary["steps"] == 5 and view.summary["samples"] == 4
    assert view.summary["usage"]["CPU"]["max"] == 50.0  # algo-1 only
    assert view.fired == [] and any("not JSON" in e for e in view.errors)
    assert any("algo-2 not analysed" in e for e in view.errors)


# --- SageMaker jobs: the output in S3, the job followed through DescribeTrainingJob ----------------

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
PREFIX_URI = "s3://bucket/jobs/job/profiler-output"


@pytest.fixture(name="moto_endpoint")
def moto_endpoint_fixture(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """moto's server on 127.0.0.1 (fresh state, bucket ``bucket``), named by AWS_ENDPOINT_URL for every client."""
    clear_aws_environment(monkeypatch, tmp_path)
    with moto_server() as endpoint:
        for key, value in {"AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
                           "AWS_DEFAULT_REGION": REGION, "AWS_ENDPOINT_URL": endpoint}.items():
            monkeypatch.setenv(key, value)
        boto3.client("s3").create_bucket(Bucket="bucket")
        yield endpoint


def upload_folder(local: Path, uri: str) -> None:
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    for path in local.rglob("*"):
        if path.is_file():
            boto3.client("s3").upload_file(str(path), bucket, f"{prefix}/{path.relative_to(local).as_posix()}")


def create_training_job(name: str, **hyperparameters: str) -> None:
    """A training job in moto (which marks it Completed at once)."""
    boto3.client("sagemaker").create_training_job(
        TrainingJobName=name, RoleArn=ROLE, HyperParameters=hyperparameters,
        AlgorithmSpecification={"TrainingImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/train:1",
                                "TrainingInputMode": "File"},
        OutputDataConfig={"S3OutputPath": "s3://bucket/jobs"},
        ResourceConfig={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        StoppingCondition={"MaxRuntimeInSeconds": 3600},
    )


def write_profile(root: Path, *, samples: int, steps: int, start: float = T0) -> None:
    """A job's profiler output: system samples, steps and one window's operator summary."""
    write_samples(root, [start + 0.5 * i for i in range(samples)])
    write_events(root, job_events(steps, workers=0, start=start + 5))
    folder = root / "framework" / "pytorch"
    folder.mkdir(parents=True, exist_ok=True)
    write_trace(folder / f"{int(T0)}_algo-1.pt.trace.json.gz", trace_events(3))
    (folder / f"{int(T0)}_algo-1_operators.json").write_text(json.dumps(
        {"trace": f"{int(T0)}_algo-1.pt.trace.json.gz", "first_step": 5, "steps": 3, "activities": ["CPU", "CUDA"],
         "operators": [{"name": "aten::mm", "kind": "operator", "calls": 3, "self_cpu_ms": 4.0}]}))


def test_a_finished_sagemaker_job_is_analysed_from_its_s3_output(moto_endpoint: str, tmp_path: Path) -> None:
    local = tmp_path / "uploaded"
    write_profile(local, samples=30, steps=12)
    upload_folder(local, PREFIX_URI)
    create_training_job("job")
    job_dir, database = tmp_path / "job", tmp_path / "console.db"
    job_dir.mkdir()
    output = finish(run_sidecar(job_dir, database, "--profiler-path", PREFIX_URI, "--sagemaker-job", "--poll-s", "0.1",
                                env={**os.environ}))
    view = load_profile(ProfilerStore(JobStore(database)), "job")
    assert view is not None and not view.is_collecting, output
    assert view.summary["samples"] == 30 and view.summary["steps"] == 12
    assert [f.rule for f in view.fired] == ["Dataloader"]
    assert view.operator_rows("cpu")[0]["operator"] == "aten::mm"
    mirror = job_dir / "output" / "data" / "profiler-output"
    uploaded = {p.relative_to(local) for p in local.rglob("*") if p.is_file()}
    assert {p.relative_to(mirror) for p in mirror.rglob("*.json*")} == uploaded
    (window,) = view.operators["windows"]  # the mirrored trace, indexed on this machine for the timeline
    assert Path(window["timeline"]) == mirror / "framework" / "pytorch" / f"{int(T0)}_algo-1.timeline.npz"
    assert "GPU 0 stream 7" in load_index(Path(window["timeline"])).lanes
    report = (mirror / "report" / "profiler-report.html").read_text()
    assert report == ProfilerStore(JobStore(database)).report_html("job")
    assert f"({len(uploaded)} objects read from S3)" in output


def test_a_sagemaker_job_that_uploaded_nothing_was_not_profiled(moto_endpoint: str, tmp_path: Path) -> None:
    create_training_job("job")
    job_dir, database = tmp_path / "job", tmp_path / "console.db"
    job_dir.mkdir()
    finish(run_sidecar(job_dir, database, "--profiler-path", PREFIX_URI, "--sagemaker-job", "--poll-s", "0.1",
                       env={**os.environ}))
    view = load_profile(ProfilerStore(JobStore(database)), "job")
    assert view is not None and not view.has_data and view.summary["state"] == "complete"
    assert view.errors[0].startswith(f"the job ended without writing profiler output to {PREFIX_URI}: ")


def test_the_analysis_gives_up_on_a_job_sagemaker_cannot_describe(moto_endpoint: str, tmp_path: Path) -> None:
    job_dir, database = tmp_path / "job", tmp_path / "console.db"
    job_dir.mkdir()
    process = run_sidecar(job_dir, database, "--profiler-path", PREFIX_URI, "--sagemaker-job", "--poll-s", "0.01",
                          env={**os.environ})
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 1, output
    assert output.count("DescribeTrainingJob job failed") == MAX_FAILED_DESCRIBES - 1  # then it gave up
    view = load_profile(ProfilerStore(JobStore(database)), "job")
    assert view is not None and view.summary["state"] == "failed"
    assert "the profiler analysis failed" in view.errors[-1] and "Could not find training job" in view.errors[-1]


class TrainingJobStandIn(http.server.ThreadingHTTPServer):
    """SageMaker's DescribeTrainingJob on 127.0.0.1 for a job whose status the test sets (moto's jobs are
    Completed at once); it counts the calls."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _DescribeHandler)
        self.status = "InProgress"
        self.calls = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _DescribeHandler(http.server.BaseHTTPRequestHandler):
    server: TrainingJobStandIn

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert self.headers["X-Amz-Target"] == "SageMaker.DescribeTrainingJob"
        self.server.calls += 1
        answer = json.dumps({"TrainingJobName": body["TrainingJobName"],
                             "TrainingJobStatus": self.server.status}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_running_sagemaker_job_is_followed_until_it_ends_and_its_data_are_read(
        moto_endpoint: str, tmp_path: Path) -> None:
    stand_in = TrainingJobStandIn()
    threading.Thread(target=stand_in.serve_forever, daemon=True).start()
    local = tmp_path / "uploaded"
    write_profile(local, samples=20, steps=6)
    upload_folder(local, PREFIX_URI)
    job_dir, database = tmp_path / "job", tmp_path / "console.db"
    job_dir.mkdir()
    sidecar = run_sidecar(job_dir, database, "--profiler-path", PREFIX_URI, "--sagemaker-job", "--poll-s", "0.2",
                          env={**os.environ, "AWS_ENDPOINT_URL_SAGEMAKER": stand_in.endpoint})
    try:
        store = ProfilerStore(JobStore(database))
        deadline = time.time() + 90
        while (view := load_profile(store, "job")) is None:
            assert time.time() < deadline and sidecar.poll() is None, "no live pass within 90 s"
            time.sleep(0.2)
        assert view.is_collecting and view.summary["samples"] == 19  # the newest sample waits for the next pass
        # The job writes on (the files grow), then ends: the final pass reads everything.
        write_samples(local, [T0 + 10 + 0.5 * i for i in range(20)])
        write_events(local, job_events(10, workers=0, start=T0 + 20)[1:])
        upload_folder(local, PREFIX_URI)
        stand_in.status = "Completed"
        finish(sidecar)
    finally:
        if sidecar.poll() is None:
            sidecar.kill()
            sidecar.communicate()
        stand_in.shutdown()
        stand_in.server_close()
    view = load_profile(store, "job")
    assert view is not None and not view.is_collecting
    assert view.summary["samples"] == 40 and view.summary["steps"] == 16
    assert stand_in.calls >= 2


def test_the_mirror_lists_once_per_pass_and_downloads_only_new_or_changed_objects(
        moto_endpoint: str, tmp_path: Path) -> None:
    s3 = boto3.client("s3")
    calls: list[str] = []
    s3.meta.events.register("before-call.s3", lambda model, **_: calls.append(model.name))
    for key, body in (("p/a/1.json", b"one\n"), ("p/b/2.json", b"two\n"), ("p/.partial", b"x"),
                      ("p/../escape.json", b"x"), ("other/3.json", b"x")):
        s3.put_object(Bucket="bucket", Key=key, Body=body)
    calls.clear()
    base = tmp_path / "mirror"
    mirror = s3_sync.S3Mirror("s3://bucket/p/", base / "m", client=s3)
    assert mirror.sync() == 2
    assert calls == ["ListObjectsV2", "GetObject", "GetObject"]
    assert sorted(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file()) == [
        "m/a/1.json", "m/b/2.json"]  # no hidden name, nothing outside the folder
    calls.clear()
    assert mirror.sync() == 0 and calls == ["ListObjectsV2"]
    s3.put_object(Bucket="bucket", Key="p/a/1.json", Body=b"one\nmore\n")
    calls.clear()
    assert mirror.sync() == 1 and calls == ["ListObjectsV2", "GetObject"]
    assert (base / "m" / "a" / "1.json").read_bytes() == b"one\nmore\n"
