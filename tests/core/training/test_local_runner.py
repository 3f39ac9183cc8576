"""The local job lifecycle with small stand-in scripts (no torch): start, metrics, model
packing, failure, stop, kill -9 of the script and of the supervisor, restart recovery."""

from __future__ import annotations

import os
import signal
import sys
import tarfile
import textwrap
import time
from pathlib import Path

import pytest

from core.errors import AlreadyExistsError, InvalidInputError, NotFoundError
from core.jobstore import JobStore
from core.processes import start_supervisor
from core.training import LocalJobRunner, TrainingJobSpec
from core.types import JobStatus

SCRIPT = textwrap.dedent(
    """
    import argparse, json, os, signal, sys, time
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--mode", default="ok")
    args = parser.parse_args()
    assert os.environ["SM_CHANNEL_TRAINING"].endswith("input/data/training")
    assert sorted(os.listdir(os.environ["SM_CHANNEL_TRAINING"])) == ["train"]
    hps = json.loads(os.environ["SM_HPS"])
    print("hps", hps, flush=True)
    print(f"SM_NUM_CPUS={os.environ['SM_NUM_CPUS']}", flush=True)
    host = os.environ["SM_CURRENT_HOST"]
    print(f"host={host} hosts={os.environ['SM_HOSTS']} master={os.environ.get('MASTER_ADDR')}:"
          f"{os.environ.get('MASTER_PORT')}", flush=True)
    if args.mode == "fail-on-algo-2":
        args.mode = "crash" if host == "algo-2" else "sleep"
    if args.mode == "crash":
        print("ERROR: the data folder has no train/ split", flush=True)
        sys.exit(3)
    if args.mode == "slow":  # long enough for a sidecar to see the training process
        time.sleep(3)
    if args.mode == "sleep":
        signal.signal(signal.SIGTERM, lambda *_: (print("stopped by SIGTERM", flush=True), sys.exit(143)))
        print("sleeping", flush=True)
        time.sleep(120)
    for epoch in range(1, args.epochs + 1):
        print(f"epoch={epoch}/{args.epochs} train_loss={1.0 / epoch:.4f} valid_acc={0.5 + epoch / 10:.4f}", flush=True)
    print("test_loss=0.1000 test_acc=0.9500", flush=True)
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.pth"), "w") as f:
        f.write("weights")
    """
)


@pytest.fixture
def source_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "train.py").write_text(SCRIPT)
    return folder


@pytest.fixture
def data_uri(tmp_path: Path) -> str:
    data = tmp_path / "data"
    (data / "train" / "a").mkdir(parents=True)
    return data.as_uri()


@pytest.fixture
def runner(tmp_path: Path) -> LocalJobRunner:
    store = JobStore(tmp_path / "ws" / "console.db")
    return LocalJobRunner(store, tmp_path / "ws" / "jobs", Path(sys.executable))


def spec(name: str, source_dir: Path, data_uri: str, **hps: object) -> TrainingJobSpec:
    return TrainingJobSpec(name=name, inputs={"training": data_uri}, hyperparameters=hps, source_dir=source_dir)


def wait_for(runner: LocalJobRunner, name: str, predicate, timeout: float = 60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = runner.describe(name)
        if predicate(job):
            return job
        time.sleep(0.2)
    raise AssertionError(f"timed out; last state {runner.describe(name)}")


def wait_for_log(runner: LocalJobRunner, name: str, text: str, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(text in line for line in runner.log_tail(name)):
            return
        time.sleep(0.2)
    raise AssertionError(f"{text!r} never appeared in the log: {runner.log_tail(name)}")


def test_successful_job_scrapes_metrics_and_packs_model(runner, source_dir, data_uri):
    job = runner.start(spec("ok-job", source_dir, data_uri, epochs=3))
    assert job.status is JobStatus.IN_PROGRESS
    job = wait_for(runner, "ok-job", lambda j: j.status.is_terminal)
    assert job.status is JobStatus.COMPLETED, job.failure_reason
    assert job.final_metrics == {"test:accuracy": 0.95, "train:loss": pytest.approx(1 / 3, abs=1e-4),
                                 "validation:accuracy": 0.8}
    losses = [p.value for p in runner.metrics("ok-job") if p.name == "train:loss"]
    assert losses == pytest.approx([1.0, 0.5, 1 / 3], abs=1e-4)
    assert job.model_uri and job.model_uri.startswith("file://")
    with tarfile.open(Path(job.model_uri.removeprefix("file://"))) as archive:
        assert archive.getnames() == ["model.pth"]
    assert job.hyperparameters == {"epochs": "3"}
    assert any("hps {'epochs': '3'}" in line for line in runner.log_tail("ok-job"))
    assert job.started_at and job.ended_at and job.ended_at >= job.started_at


def test_a_job_started_beside_a_running_one_gets_its_share_of_the_cpus(runner, source_dir, data_uri):
    """SM_NUM_CPUS sets the script's torch threads: a job alone has every CPU, one started while
    another runs shares them (more threads than cores slow both by far more than they give)."""
    runner.start(spec("first", source_dir, data_uri, mode="sleep"))
    wait_for_log(runner, "first", "sleeping")
    runner.start(spec("second", source_dir, data_uri))
    assert wait_for(runner, "second", lambda j: j.status.is_terminal).status is JobStatus.COMPLETED
    runner.stop("first")
    cpus = os.cpu_count() or 1
    assert any(f"SM_NUM_CPUS={cpus}" in line for line in runner.log_tail("first"))
    assert any(f"SM_NUM_CPUS={max(1, cpus // 2)}" in line for line in runner.log_tail("second"))
    wait_for(runner, "first", lambda j: j.status.is_terminal)


def test_each_instance_is_a_process_on_sagemakers_host_contract(runner, source_dir, data_uri):
    """Instance count 2: two processes, algo-1 and algo-2, meeting at one port of 127.0.0.1 with half
    the CPUs each; algo-1's output is the job's log and metrics, algo-2's has a log of its own."""
    runner.start(TrainingJobSpec(name="pair", inputs={"training": data_uri}, hyperparameters={"epochs": 2},
                                 source_dir=source_dir, instance_count=2))
    job = wait_for(runner, "pair", lambda j: j.status.is_terminal)
    assert job.status is JobStatus.COMPLETED, job.failure_reason
    second = (runner.job_folder("pair").log_path.with_name("algo-2.log")).read_text().splitlines()
    first = runner.log_tail("pair")
    hosts = 'hosts=["algo-1", "algo-2"]'
    (mine,) = [line for line in first if line.startswith("host=")]
    (theirs,) = [line for line in second if line.startswith("host=")]
    assert mine.startswith(f"host=algo-1 {hosts} master=127.0.0.1:")
    assert theirs == mine.replace("algo-1 ", "algo-2 ", 1)  # the same rendezvous
    share = max(1, (os.cpu_count() or 1) // 2)
    assert f"SM_NUM_CPUS={share}" in first and f"SM_NUM_CPUS={share}" in second
    assert [p.value for p in runner.metrics("pair") if p.name == "train:loss"] == pytest.approx([1.0, 0.5])


def test_an_instance_that_fails_ends_the_others_and_names_itself(runner, source_dir, data_uri):
    runner.start(TrainingJobSpec(name="half-broken", inputs={"training": data_uri},
                                 hyperparameters={"mode": "fail-on-algo-2"}, source_dir=source_dir,
                                 instance_count=2))
    # the job ends once both processes have: algo-1, which would sleep for 120 s, was ended
    job = wait_for(runner, "half-broken", lambda j: j.status.is_terminal)
    assert job.status is JobStatus.FAILED
    assert job.failure_reason.endswith("exited with code 3: ERROR: the data folder has no train/ split (on algo-2)")


def test_failing_script_reports_its_error(runner, source_dir, data_uri):
    runner.start(spec("crash-job", source_dir, data_uri, mode="crash"))
    job = wait_for(runner, "crash-job", lambda j: j.status.is_terminal)
    assert job.status is JobStatus.FAILED
    assert "exited with code 3" in job.failure_reason
    assert "no train/ split" in job.failure_reason
    assert job.model_uri is None


@pytest.mark.parametrize("instances", [1, 2])
def test_stop_sends_sigterm_and_ends_stopped(runner, source_dir, data_uri, instances):
    runner.start(TrainingJobSpec(name="stop-job", inputs={"training": data_uri}, hyperparameters={"mode": "sleep"},
                                 source_dir=source_dir, instance_count=instances))
    wait_for_log(runner, "stop-job", "sleeping")
    second_log = runner.job_folder("stop-job").log_path.with_name("algo-2.log")
    deadline = time.time() + 60
    while instances == 2 and "sleeping" not in (second_log.read_text() if second_log.exists() else ""):
        assert time.time() < deadline, "algo-2 never started"
        time.sleep(0.2)
    assert runner.stop("stop-job").status in (JobStatus.STOPPING, JobStatus.STOPPED)
    job = wait_for(runner, "stop-job", lambda j: j.status.is_terminal)
    assert job.status is JobStatus.STOPPED
    assert any("stopped by SIGTERM" in line for line in runner.log_tail("stop-job"))
    if instances == 2:
        assert "stopped by SIGTERM" in second_log.read_text()
    assert runner.stop("stop-job").status is JobStatus.STOPPED  # stopping a finished job is harmless


def test_a_job_stopped_before_its_supervisor_starts_never_runs(runner, source_dir, data_uri, monkeypatch):
    """The window between start and the supervisor recording its pid: a stop there used to mark the
    job Stopped while the supervisor went on to run the whole script."""
    delayed: list[tuple[str, ...]] = []
    monkeypatch.setattr("core.training._local.start_supervisor",  # the supervisor is slow to start
                        lambda *args, what: delayed.append(args))
    runner.start(spec("early-stop", source_dir, data_uri, mode="sleep"))
    assert runner.stop("early-stop").status is JobStatus.STOPPED
    start_supervisor(*delayed[0], what="the job supervisor")  # ... and starts now
    deadline = time.time() + 60
    while not (pid := runner.store.job_runtime("early-stop")["supervisor_pid"]) and time.time() < deadline:
        time.sleep(0.1)
    assert pid, "the supervisor never recorded itself"
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the supervisor of a stopped job is still running")
    job = runner.describe("early-stop")
    assert job.status is JobStatus.STOPPED and job.model_uri is None
    assert not any("sleeping" in line for line in runner.log_tail("early-stop"))


def test_kill_9_of_training_process_fails_the_job(runner, source_dir, data_uri):
    runner.start(spec("kill-job", source_dir, data_uri, mode="sleep"))
    wait_for_log(runner, "kill-job", "sleeping")
    os.kill(runner.store.job_runtime("kill-job")["worker_pid"], signal.SIGKILL)
    job = wait_for(runner, "kill-job", lambda j: j.status.is_terminal)
    assert job.status is JobStatus.FAILED
    assert "SIGKILL" in job.failure_reason


def test_kill_9_of_supervisor_is_detected_on_restart(runner, source_dir, data_uri, tmp_path):
    runner.start(spec("orphan-job", source_dir, data_uri, mode="sleep"))
    wait_for_log(runner, "orphan-job", "sleeping")
    runtime = runner.store.job_runtime("orphan-job")
    os.kill(runtime["supervisor_pid"], signal.SIGKILL)
    time.sleep(0.5)
    # A new runner over the same store stands for a restarted app.
    restarted = LocalJobRunner(JobStore(runner.store.path), runner.jobs_root, runner.job_python)
    job = restarted.list_jobs()[0]
    assert job.status is JobStatus.FAILED
    assert "supervisor process disappeared" in job.failure_reason
    deadline = time.time() + 10
    while os.path.exists(f"/proc/{runtime['worker_pid']}") and time.time() < deadline:
        time.sleep(0.1)  # the orphaned training process is killed as well
    stat = Path(f"/proc/{runtime['worker_pid']}/stat")
    assert not stat.exists() or "Z" in stat.read_text().split(")")[-1][:3]


def test_duplicate_name_and_bad_inputs(runner, source_dir, data_uri):
    runner.start(spec("dup-job", source_dir, data_uri))
    with pytest.raises(AlreadyExistsError):
        runner.start(spec("dup-job", source_dir, data_uri))
    with pytest.raises(InvalidInputError, match="file://"):
        runner.start(spec("s3-job", source_dir, "s3://bucket/data"))
    with pytest.raises(InvalidInputError, match="does not exist"):
        runner.start(spec("missing-job", source_dir, "file:///no/such/folder"))
    assert not (runner.jobs_root / "s3-job").exists()
    with pytest.raises(InvalidInputError, match="job name"):
        spec("bad_name!", source_dir, data_uri)
    with pytest.raises(NotFoundError):
        runner.describe("no-such-job")
    wait_for(runner, "dup-job", lambda j: j.status.is_terminal)


SIDECAR = textwrap.dedent(
    """
    import argparse, os, time
    parser = argparse.ArgumentParser()
    for name in ("--job-dir", "--database", "--job-name", "--training-pid"):
        parser.add_argument(name)
    args = parser.parse_args()
    seen_running = os.path.exists(f"/proc/{args.training_pid}")
    stat = f"/proc/{args.training_pid}/stat"
    while os.path.exists(stat) and "Z" not in open(stat).read().split(")")[-1][:3]:
        time.sleep(0.05)
    time.sleep(0.5)  # a final pass that takes a while: the job must wait for it
    with open(os.path.join(args.job_dir, "sidecar-done"), "w") as f:
        f.write(f"{args.job_name} {seen_running}")
    """
)


def test_sidecars_run_beside_the_job_and_finish_first(tmp_path, source_dir, data_uri):
    sidecar = tmp_path / "sidecar.py"
    sidecar.write_text(SIDECAR)
    store = JobStore(tmp_path / "ws2" / "console.db")
    runner = LocalJobRunner(store, tmp_path / "ws2" / "jobs", Path(sys.executable), sidecars=[[str(sidecar)]])
    runner.start(spec("side-job", source_dir, data_uri, mode="slow"))
    job = wait_for(runner, "side-job", lambda j: j.status.is_terminal)
    assert job.status is JobStatus.COMPLETED
    assert (runner.job_folder("side-job").root / "sidecar-done").read_text() == "side-job True"
