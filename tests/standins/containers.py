"""Training jobs run for real, as SageMaker's PyTorch training container runs them, on this machine.

The opt-in "container" mode of :class:`tests.standins.sagemaker.SageMakerStandIn`: each
training job the stand-in accepts gets a :class:`Container`, a thread that does what SageMaker
and the ``sagemaker-training`` toolkit of its framework images do, against the moto server:

1. **Downloading**: a job folder laid out as ``/opt/ml`` (``<job dir>/opt/ml``):
   ``input/config/{hyperparameters,inputdataconfig,resourceconfig}.json``,
   ``input/data/<channel>`` with the objects of each channel's ``S3Prefix`` (the SDK's local
   mode rule: the object named by the URI itself, else every key under it, at its path
   relative to the URI), ``model``, ``output/data``, ``checkpoints`` (filled from
   ``CheckpointConfig.S3Uri``), and ``code``: ``sagemaker_submit_directory``'s
   ``sourcedir.tar.gz``, unpacked. Each channel is listed at moto; an object listed with the
   ETag and size of one an earlier job of the stand-in downloaded is copied from
   :class:`~tests.standins.object_cache.ObjectCache` instead of fetched again.
2. **Training**: on each of the job's ``InstanceCount`` hosts ``algo-1`` ... ``algo-N``,
   ``<job python> <sagemaker_program> --name value ...`` (every hyperparameter but the
   ``sagemaker_*`` ones) in ``code``, in a process group of its own, with the ``SM_*``
   environment of :func:`core.training.layout.training_environment` as
   :func:`~core.training.layout.host_environments` gives it to each host (the local backend's:
   ``SM_HOSTS``, ``SM_CURRENT_HOST``, a share of ``SM_NUM_CPUS``, the rendezvous at
   ``MASTER_ADDR=127.0.0.1`` and a free ``MASTER_PORT``; ``SAGEMAKER_BASE_DIR`` is the job's
   ``opt/ml``), ``HOME`` an empty folder, fake credentials, the job's region and
   ``AWS_ENDPOINT_URL`` at moto, so the script's own uploads (an smdebug trial, profiler
   output) land in moto. Each host's output (stdout and stderr together) goes to CloudWatch
   Logs at moto, group ``/aws/sagemaker/TrainingJobs``, stream ``<job>/algo-<i>-<epoch
   seconds>``, in batches every ``log_flush_s``; each line is matched against the job's
   MetricDefinitions and the values go to CloudWatch metrics as SageMaker publishes them
   (namespace ``/aws/sagemaker/TrainingJobs``, dimension ``Host=<job>/algo-<i>``).
   FinalMetricDataList is ``algo-1``'s.
3. **Uploading**: ``model`` as ``<S3OutputPath>/<job>/output/model.tar.gz`` (also after a
   stop, as SageMaker does), ``output/data`` as ``output.tar.gz`` beside it when the script
   wrote any, and ``checkpoints`` to ``CheckpointConfig.S3Uri``.

The job ends once every host's script has exited: Completed (all exit with 0), Stopped (after
:meth:`Container.stop`, StopTrainingJob: SIGTERM to every host's process group, SIGKILL after
``stop_grace_s``; SageMaker waits 120 s) or Failed, with the toolkit's FailureReason for the
first host to fail::

    AlgorithmError: ExecuteUserScriptError:
    ExitCode 1
    ErrorMessage "ValueError: the last error line of the output"
    Command "python train.py --epochs 2", exit code: 1

When a host's script fails (no stop asked), the other hosts' process groups get SIGTERM, and
SIGKILL after ``stop_grace_s``: a peer waiting for it at the rendezvous or in a collective would
wait minutes. A job that cannot start fails as SageMaker fails it (``ClientError: No S3 objects
found under S3 URL ...`` for an empty channel). When a host's script exits, whatever it left
running in its process group is killed, as the end of a container ends everything in it.

Nothing but 127.0.0.1 is contacted: the stand-in talks to moto only, and the script runs with
a ``sitecustomize`` that refuses every connection and name lookup beyond loopback (the
refusal is printed with :data:`NETWORK_REFUSED` and reported as a stand-in error, which fails
the test). Code that opens sockets outside Python's ``socket`` module is not covered.

Not stood in for: ``requirements.txt`` in the source is not installed (the job environment
stands for the image with it installed); the hosts are processes of this machine sharing its
CPUs and one job folder (it stands for every host's ``/opt/ml``: a data-parallel script writes
from its first host only, and ``resourceconfig.json`` is the first host's), and they meet at
127.0.0.1, as ``algo-1`` does not resolve here (a job of one host is the local backend's
``localhost`` in ``resourceconfig.json`` and ``SM_HOSTS``); no ``MaxRuntimeInSeconds`` limit,
File input mode only, and a job needs one channel at least (the local backend's rule; SageMaker
allows none). A process that leaves its script's process group (``setsid``) is not followed;
should it hold the output pipe open, the job does not end and stopping the stand-in reports it
as an error.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from core.config import load_settings
from core.entities import MetricPoint
from core.errors import InvalidInputError
from core.processes import free_port
from core.training.layout import (
    JobLayout,
    cpu_share,
    host_environments,
    host_names,
    hyperparameters_to_args,
    training_environment,
)
from core.training.metrics import MetricScraper
from core.training.spec import MetricDefinition, TrainingJobSpec
from tests.standins.object_cache import ObjectCache

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
METRIC_NAMESPACE = "/aws/sagemaker/TrainingJobs"
FAKE_ACCESS_KEY = "AKIASTANDINCONTAINER"
FAKE_SECRET = "stand-in-container-secret"
NETWORK_REFUSED = "[sagemaker stand-in] refused a connection beyond loopback:"
"""The line the job's ``sitecustomize`` prints (to stderr) for each refused connection."""
FAILURE_REASON_MAX = 1024  # DescribeTrainingJob's FailureReason
_MAX_EVENTS_PER_PUT = 10_000  # PutLogEvents' limits
_MAX_BYTES_PER_PUT = 1_048_576
_EVENT_OVERHEAD = 26
_MAX_EVENT_BYTES = 256 * 1024 - _EVENT_OVERHEAD
_MAX_METRICS_PER_PUT = 1_000  # PutMetricData's limit
_ERROR_LINE = re.compile(r"^(ERROR\b|(\w+\.)*\w*(Error|Exception|Interrupt|Exit)\b)")
_SITECUSTOMIZE = f'''"""Loopback only: the SageMaker stand-in's training container (tests/standins/containers.py)."""
import socket
import sys

_LOCAL = {{"127.0.0.1", "::1", "localhost"}}
_connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo


def _refuse(what):
    print("{NETWORK_REFUSED}", what, file=sys.stderr, flush=True)
    raise ConnectionRefusedError(f"the training container reaches 127.0.0.1 only, not {{what}}")


def _check(sock, address):
    if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in _LOCAL:
        _refuse(address)


def connect(sock, address):
    _check(sock, address)
    return _connect(sock, address)


def connect_ex(sock, address):
    _check(sock, address)
    return _connect_ex(sock, address)


def getaddrinfo(host, *args, **kwargs):
    if host is not None and (host.decode() if isinstance(host, bytes) else host) not in _LOCAL:
        _refuse(host)
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
'''


@dataclass(frozen=True)
class LocalContainers:
    """How the stand-in runs training jobs (container mode).

    Args:
        job_python: the interpreter the scripts run with (the job environment's,
            ``.venv-job/bin/python``, stands for the framework image).
        workdir: where each job gets its folder (``<workdir>/<job>-XXXX/opt/ml``), kept after
            the job for tests to look at.
        stop_grace_s: how long a stopped script has between SIGTERM and SIGKILL.
        log_flush_s: how often the output goes to CloudWatch Logs and metrics.
        cpus: the CPUs this machine lends the containers, shared by those running at once; as the
            local backend's jobs, ``Settings.job_cpus`` (``SMC_JOB_CPUS``; None: every CPU).
        service_urls: endpoints of stand-ins the scripts call besides moto (``AWS_ENDPOINT_URL_EVENTBRIDGE``).
    """

    job_python: Path
    workdir: Path
    stop_grace_s: float = 10.0
    log_flush_s: float = 0.5
    cpus: int | None = field(default_factory=lambda: load_settings().job_cpus)
    service_urls: dict[str, str] = field(default_factory=dict)
    """More ``AWS_ENDPOINT_URL_<SERVICE>`` for the scripts (other stand-ins: EventBridge)."""
    downloaded: ObjectCache = field(init=False, repr=False, compare=False)
    """What its containers have downloaded, shared by them (``<workdir>/.object-cache``)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "downloaded", ObjectCache(self.workdir / ".object-cache"))


@dataclass(frozen=True)
class Outcome:
    """How a job ended, in DescribeTrainingJob's terms."""

    status: str
    ended: datetime
    failure_reason: str | None
    final_metrics: list[dict[str, Any]]


PhaseCallback = Callable[[str, str, str], None]
"""(job name, SecondaryStatus, StatusMessage): the job has entered a phase."""
EndCallback = Callable[[str, Outcome], None]
ErrorCallback = Callable[[str], None]


class JobFailure(Exception):
    """The job fails with this FailureReason."""


class _Stopped(Exception):
    """A stop came before the script started."""


def _now() -> datetime:
    return datetime.now(UTC)


def split_s3_uri(uri: str) -> tuple[str, str]:
    """(bucket, key prefix) of ``s3://bucket/prefix``."""
    if not uri.startswith("s3://"):
        raise JobFailure(f"ClientError: {uri} is not an s3:// URI")
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key


def model_artifacts_uri(output_path: str, job_name: str) -> str:
    """Where SageMaker puts a job's ``model.tar.gz``: ``<S3OutputPath>/<job>/output/model.tar.gz``."""
    return f"{output_path.rstrip('/')}/{job_name}/output/model.tar.gz"


class Container:
    """One training job run on this machine (see the module docstring).

    Args:
        config: how jobs run.
        moto_url: the moto server every AWS call of the job goes to.
        request: the job's CreateTrainingJob request.
        arn: the job's ARN (its region is the job's region).
        on_phase, on_end, on_error: called from the job's thread, never under its lock.
    """

    def __init__(self, config: LocalContainers, moto_url: str, request: Mapping[str, Any], arn: str, *,
                 on_phase: PhaseCallback, on_end: EndCallback, on_error: ErrorCallback,
                 jobs_at_once: int = 1) -> None:
        self.name: str = request["TrainingJobName"]
        self._num_cpus = cpu_share(jobs_at_once, config.cpus)
        """Its instance's CPUs: a share of this machine's, as the tuning job's parallel trials share it."""
        self._config = config
        self._moto_url = moto_url
        self._request = request
        self._arn = arn
        self._region = arn.split(":")[3]
        self._on_phase, self._on_end, self._on_error = on_phase, on_end, on_error
        self._lock = threading.Lock()
        self._hosts: list[_Host] = []
        """Every host's script, once started (all at once, under the lock)."""
        self._stop_requested = False
        self._failed: _Host | None = None
        """The first host whose script failed while no stop was asked: the job's FailureReason."""
        self._exited = threading.Event()
        """Set once every host's script has exited, or none will run: the job ends as it will."""
        self._thread = threading.Thread(target=self._run, name=f"container-{self.name}", daemon=True)
        self._s3: Any = None
        self._logs: Any = None
        self._cloudwatch: Any = None
        self.job_dir: Path | None = None
        """``<workdir>/<job>-XXXX``, once the job has started."""

    # --- control, from the stand-in's threads ------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> bool:
        """StopTrainingJob: SIGTERM to every host now, SIGKILL after the grace period.

        Returns:
            False when the job's end is settled already, every script having exited or one having
            failed (the job ends as it would have).
        """
        with self._lock:
            if self._exited.is_set() or self._failed is not None:
                return False
            if not self._stop_requested:
                self._stop_requested = True
                self._terminate_locked()
        return True

    def end(self) -> None:
        """Stops the job if it runs and waits until its thread has finished."""
        if self._thread.ident is None:  # created while the stand-in closed: never started
            return
        self.stop()
        self._thread.join(timeout=self._config.stop_grace_s + 120)
        if self._thread.is_alive():
            self._on_error(f"training job {self.name}: its container did not end")

    def _terminate_locked(self) -> None:
        """SIGTERM to the process group of every host's script still running, SIGKILL after the grace period."""
        if self._signal_groups_locked(signal.SIGTERM):
            threading.Thread(target=self._kill_after_grace, name=f"container-{self.name}-kill", daemon=True).start()

    def _kill_after_grace(self) -> None:
        if not self._exited.wait(self._config.stop_grace_s):
            with self._lock:
                self._signal_groups_locked(signal.SIGKILL)

    def _signal_groups_locked(self, sig: signal.Signals) -> bool:
        """Signals the process group of every host's script not reaped yet; whether there was any."""
        running = [host.process for host in self._hosts if host.process.returncode is None]
        for process in running:
            _signal_group(process, sig)
        return bool(running)

    # --- the job's thread --------------------------------------------------------------------

    def _connect(self) -> None:
        """The job's own clients (boto3 sessions are not shared between threads), all at moto."""
        session = boto3.session.Session(aws_access_key_id=FAKE_ACCESS_KEY, aws_secret_access_key=FAKE_SECRET,
                                        region_name=self._region)
        config = Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=10, read_timeout=60)
        self._s3 = session.client("s3", endpoint_url=self._moto_url, config=config)
        self._logs = session.client("logs", endpoint_url=self._moto_url, config=config)
        self._cloudwatch = session.client("cloudwatch", endpoint_url=self._moto_url, config=config)

    def _run(self) -> None:
        final_metrics: list[dict[str, Any]] = []
        reason: str | None = None
        try:
            self._connect()
            self._on_phase(self.name, "Downloading", "Downloading input data")
            layout, spec = self._prepare()
            self._on_phase(self.name, "Training", "Training image download completed. Training in progress.")
            command, hosts = self._train(layout, spec)
            final_metrics = hosts[0].output.final_metrics
            with self._lock:
                stopped, failed = self._stop_requested, self._failed
            if stopped:
                status = "Stopped"
            elif failed is None:
                status = "Completed"
            else:
                status, reason = "Failed", _failure_reason(failed.code, command, failed.output.error_line)
            if status != "Failed":
                if not stopped:
                    self._on_phase(self.name, "Uploading", "Uploading generated training model")
                self._upload_outputs(layout)
            self._upload_checkpoints(layout)
        except _Stopped:
            status = "Stopped"
        except JobFailure as failure:
            status, reason = "Failed", str(failure)
        except Exception as exc:  # a stand-in bug: the job fails as on an AWS fault, and the test hears of it
            self._on_error(f"training job {self.name}: {type(exc).__name__}: {exc}")
            status, reason = "Failed", "InternalServerError: We encountered an internal error. Please try again."
        finally:
            self._exited.set()
        self._on_end(self.name, Outcome(status, _now(), reason[:FAILURE_REASON_MAX] if reason else None,
                                        final_metrics))

    def _check_stop(self) -> None:
        with self._lock:
            if self._stop_requested:
                raise _Stopped

    def _prepare(self) -> tuple[JobLayout, TrainingJobSpec]:
        """The job folder, its inputs and code; the spec the environment is built from."""
        self._config.workdir.mkdir(parents=True, exist_ok=True)
        self.job_dir = Path(tempfile.mkdtemp(prefix=f"{self.name}-", dir=self._config.workdir))
        layout = JobLayout(self.job_dir / "opt" / "ml")
        for folder in (layout.config_dir, layout.data_dir, layout.model_dir, layout.output_data_dir,
                       layout.output_dir / "intermediate", layout.checkpoint_dir, layout.code_dir,
                       self.job_dir / "root", self.job_dir / "site"):
            folder.mkdir(parents=True, exist_ok=True)
        (self.job_dir / "site" / "sitecustomize.py").write_text(_SITECUSTOMIZE)
        hyperparameters: dict[str, str] = dict(self._request.get("HyperParameters") or {})
        channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"]
                    for c in self._request.get("InputDataConfig") or [] if "S3DataSource" in c.get("DataSource", {})}
        instance_type = self._request["ResourceConfig"]["InstanceType"]
        hosts = host_names(self._request["ResourceConfig"]["InstanceCount"])
        _write_json(layout.config_dir / "hyperparameters.json", hyperparameters)
        _write_json(layout.config_dir / "inputdataconfig.json", {
            name: {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}
            for name in channels})
        _write_json(layout.config_dir / "resourceconfig.json", {
            "current_host": hosts[0], "hosts": hosts, "current_instance_type": instance_type,
            "current_group_name": "homogeneousCluster", "network_interface_name": "lo",
            "instance_groups": [{"instance_group_name": "homogeneousCluster", "instance_type": instance_type,
                                 "hosts": hosts}]})
        for channel, uri in channels.items():
            if not self._download(uri, layout.data_dir / channel):
                raise JobFailure(
                    f'ClientError: No S3 objects found under S3 URL "{uri}" given in input data source. Please '
                    f"ensure that the bucket exists in the selected region ({self._region}), that objects exist "
                    "under that S3 prefix, and that the role has s3:ListBucket permissions on the bucket.")
        checkpoints = self._request.get("CheckpointConfig")
        if checkpoints:
            self._download(checkpoints["S3Uri"], layout.checkpoint_dir)
        program, submitted = hyperparameters.get("sagemaker_program"), hyperparameters.get("sagemaker_submit_directory")
        if not (program and submitted):
            raise JobFailure("AlgorithmError: the stand-in's container runs code named by the hyperparameters "
                             "sagemaker_program and sagemaker_submit_directory; this job has none")
        self._unpack_code(submitted, layout.code_dir)
        self._check_stop()
        try:
            spec = TrainingJobSpec(
                name=self.name, inputs=channels, entry_point=program, source_dir=layout.code_dir,
                hyperparameters={k: v for k, v in hyperparameters.items() if not k.startswith("sagemaker_")},
                instance_type=instance_type,
                metric_definitions=tuple(MetricDefinition(d["Name"], d["Regex"]) for d in
                                         self._request["AlgorithmSpecification"].get("MetricDefinitions") or []),
            )
        except InvalidInputError as exc:
            raise JobFailure(f"AlgorithmError: {exc}") from None
        return layout, spec

    def _download(self, uri: str, target: Path) -> int:
        """The objects of an S3Prefix channel into target; how many there were."""
        bucket, prefix = split_s3_uri(uri)
        target.mkdir(parents=True, exist_ok=True)
        objects: list[tuple[str, str, str, int]] = []  # key, path under target, ETag, size
        if prefix and not prefix.endswith("/"):
            try:
                head = self._s3.head_object(Bucket=bucket, Key=prefix)
                objects.append((prefix, prefix.rsplit("/", 1)[-1], head["ETag"], head["ContentLength"]))
            except ClientError as exc:
                if exc.response["Error"]["Code"] not in ("404", "NoSuchKey"):
                    raise
        if not objects:
            for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                objects.extend((o["Key"], o["Key"][len(prefix):].lstrip("/"), o["ETag"], o["Size"])
                               for o in page.get("Contents", []) if not o["Key"].endswith("/"))
        root = target.resolve()
        for key, relative, etag, size in objects:
            self._check_stop()
            path = (target / relative).resolve()
            if not path.is_relative_to(root):
                raise JobFailure(f"ClientError: the object {key} lies outside its channel")
            path.parent.mkdir(parents=True, exist_ok=True)
            self._config.downloaded.copy_to(path, etag, size, lambda key=key: self._get(bucket, key))
        return len(objects)

    def _get(self, bucket: str, key: str) -> tuple[bytes, str]:
        response = self._s3.get_object(Bucket=bucket, Key=key)
        return response["Body"].read(), response["ETag"]

    def _unpack_code(self, uri: str, code_dir: Path) -> None:
        bucket, key = split_s3_uri(uri)
        try:
            body = self._s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            raise JobFailure(f"AlgorithmError: could not download sagemaker_submit_directory {uri}: "
                             f"{exc.response['Error']['Code']}") from None
        with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
            archive.extractall(code_dir, filter="data")

    def _environment(self, layout: JobLayout, spec: TrainingJobSpec) -> dict[str, str]:
        assert self.job_dir is not None
        base = {
            "PATH": os.pathsep.join([str(self._config.job_python.parent), os.environ.get("PATH", "/usr/bin:/bin")]),
            "HOME": str(self.job_dir / "root"),
            "LANG": "C.UTF-8",
            "PYTHONPATH": str(self.job_dir / "site"),
            "TRAINING_JOB_ARN": self._arn,
            "AWS_ENDPOINT_URL": self._moto_url,
            "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
            "AWS_REGION": self._region,
            "AWS_DEFAULT_REGION": self._region,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            **self._config.service_urls,
        }
        return training_environment(spec, layout, base, num_cpus=self._num_cpus)

    def _train(self, layout: JobLayout, spec: TrainingJobSpec) -> tuple[list[str], list[_Host]]:
        """Runs the script on every host to their ends; (command as the toolkit logs it, the hosts)."""
        command = [str(self._config.job_python), spec.entry_point,
                   *hyperparameters_to_args(spec.hyperparameters_as_strings)]
        count = self._request["ResourceConfig"]["InstanceCount"]
        environments = host_environments(self._environment(layout, spec), count, free_port())
        with contextlib.ExitStack() as stack:
            shippers = [stack.enter_context(_Shipper(self._logs, self._cloudwatch, self.name, f"algo-{i}",
                                                     self._config.log_flush_s, self._on_error))
                        for i in range(1, count + 1)]
            with self._lock:
                if self._stop_requested:
                    raise _Stopped
                try:
                    for shipper, env in zip(shippers, environments, strict=True):
                        process = subprocess.Popen(
                            command, cwd=layout.code_dir, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                        )
                        self._hosts.append(_Host(shipper.host, process, _Output(MetricScraper(spec.metric_definitions))))
                except OSError:
                    self._signal_groups_locked(signal.SIGKILL)  # the hosts started would wait for the others
                    raise
            followers = [threading.Thread(target=self._follow, args=(host, shipper),
                                          name=f"container-{self.name}-{host.name}", daemon=True)
                         for host, shipper in zip(self._hosts, shippers, strict=True)]
            for follower in followers:
                follower.start()
            for follower in followers:
                follower.join()
        return command, self._hosts

    def _follow(self, host: _Host, shipper: _Shipper) -> None:
        """Ships one host's output until its script has exited; the first to fail ends the others."""
        process = host.process
        assert process.stdout is not None
        pump = threading.Thread(target=self._pump, args=(process.stdout, host.output, shipper),
                                name=f"container-{self.name}-{host.name}-log", daemon=True)
        pump.start()
        os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: its group id is ours
        with self._lock:
            _signal_group(process, signal.SIGKILL)  # what it left running ends with its container
            if process.wait() != 0 and not self._stop_requested and self._failed is None:
                self._failed = host
                self._terminate_locked()
            if all(h.process.returncode is not None for h in self._hosts):
                self._exited.set()
        pump.join()
        process.stdout.close()

    def _pump(self, stream: IO[bytes], output: _Output, shipper: _Shipper) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            now = time.time()
            shipper.log(now, line)
            for point in output.feed(line, now):
                shipper.metric(point.name, point.value, now)
            if line.startswith(NETWORK_REFUSED):
                self._on_error(f"training job {self.name}: {line}")

    def _upload_outputs(self, layout: JobLayout) -> None:
        output_path = self._request["OutputDataConfig"]["S3OutputPath"]
        model_uri = model_artifacts_uri(output_path, self.name)
        self._put_tar(layout.model_dir, model_uri)
        if any(p.is_file() for p in layout.output_data_dir.rglob("*")):
            self._put_tar(layout.output_data_dir, model_uri.removesuffix("model.tar.gz") + "output.tar.gz")

    def _put_tar(self, folder: Path, uri: str) -> None:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                archive.add(path, arcname=path.relative_to(folder).as_posix())
        bucket, key = split_s3_uri(uri)
        self._s3.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())

    def _upload_checkpoints(self, layout: JobLayout) -> None:
        checkpoints = self._request.get("CheckpointConfig")
        if not checkpoints:
            return
        bucket, prefix = split_s3_uri(checkpoints["S3Uri"])
        for path in sorted(p for p in layout.checkpoint_dir.rglob("*") if p.is_file()):
            key = f"{prefix.rstrip('/')}/{path.relative_to(layout.checkpoint_dir).as_posix()}".lstrip("/")
            self._s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())


@dataclass(frozen=True)
class _Host:
    """One instance of the job: its script's process and what it printed."""

    name: str
    """``algo-<i>``: its log stream and metric dimension."""
    process: subprocess.Popen[bytes]
    output: _Output

    @property
    def code(self) -> int:
        """The script's exit code, once reaped."""
        assert self.process.returncode is not None
        return self.process.returncode


class _Output:
    """What a host's script printed that the job's end needs: final metric values, the last error line."""

    def __init__(self, scraper: MetricScraper) -> None:
        self._scraper = scraper
        self._last: dict[str, tuple[float, float]] = {}
        self._error_line = ""
        self._last_line = ""

    def feed(self, line: str, now: float) -> list[MetricPoint]:
        if line.strip():
            self._last_line = line.strip()
            if _ERROR_LINE.match(self._last_line):
                self._error_line = self._last_line
        points = self._scraper.feed(line, now)
        for point in points:
            self._last[point.name] = (point.value, now)
        return points

    @property
    def error_line(self) -> str:
        return self._error_line or self._last_line

    @property
    def final_metrics(self) -> list[dict[str, Any]]:
        """FinalMetricDataList: the last value of each metric, when it was printed."""
        return [{"MetricName": name, "Value": value, "Timestamp": datetime.fromtimestamp(ts, UTC)}
                for name, (value, ts) in sorted(self._last.items())]


class _Shipper:
    """Sends one host's output to CloudWatch Logs and its metric values to CloudWatch, in batches."""

    def __init__(self, logs: Any, cloudwatch: Any, job_name: str, host: str, flush_s: float,
                 on_error: ErrorCallback) -> None:
        self._logs, self._cloudwatch = logs, cloudwatch
        self.host = host
        self._stream = f"{job_name}/{host}-{int(time.time())}"
        self._dimension = f"{job_name}/{host}"
        self._flush_s = flush_s
        self._on_error = on_error
        self._lock = threading.Lock()
        self._events: list[dict[str, Any]] = []
        self._metrics: list[dict[str, Any]] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"container-{job_name}-{host}-ship", daemon=True)

    def __enter__(self) -> _Shipper:
        try:
            self._logs.create_log_group(logGroupName=LOG_GROUP)
        except self._logs.exceptions.ResourceAlreadyExistsException:
            pass
        self._logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=self._stream)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed.set()
        self._thread.join()
        self._flush()

    def log(self, timestamp: float, message: str) -> None:
        if not message:  # CloudWatch Logs refuses empty events
            return
        data = message.encode()
        if len(data) > _MAX_EVENT_BYTES:
            message = data[:_MAX_EVENT_BYTES].decode(errors="ignore")
        with self._lock:
            self._events.append({"timestamp": int(timestamp * 1000), "message": message})

    def metric(self, name: str, value: float, timestamp: float) -> None:
        with self._lock:
            self._metrics.append({
                "MetricName": name, "Value": value, "Timestamp": datetime.fromtimestamp(timestamp, UTC),
                "Dimensions": [{"Name": "Host", "Value": self._dimension}],
            })

    def _loop(self) -> None:
        while not self._closed.wait(self._flush_s):
            self._flush()

    def _flush(self) -> None:
        with self._lock:
            events, self._events = self._events, []
            metrics, self._metrics = self._metrics, []
        try:
            for batch in _log_batches(events):
                self._logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=self._stream, logEvents=batch)
            for start in range(0, len(metrics), _MAX_METRICS_PER_PUT):
                self._cloudwatch.put_metric_data(Namespace=METRIC_NAMESPACE,
                                                 MetricData=metrics[start:start + _MAX_METRICS_PER_PUT])
        except Exception as exc:
            self._on_error(f"shipping the log of {self._stream}: {type(exc).__name__}: {exc}")


def _log_batches(events: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """PutLogEvents batches: chronological, within its count and size limits."""
    batch: list[dict[str, Any]] = []
    size = 0
    for event in sorted(events, key=lambda e: e["timestamp"]):
        event_size = len(event["message"].encode()) + _EVENT_OVERHEAD
        if batch and (len(batch) == _MAX_EVENTS_PER_PUT or size + event_size > _MAX_BYTES_PER_PUT):
            yield batch
            batch, size = [], 0
        batch.append(event)
        size += event_size
    if batch:
        yield batch


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Signals a script's process group, unless the script has been reaped (its id may be reused)."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)


def _failure_reason(code: int, command: list[str], error_line: str) -> str:
    """The FailureReason SageMaker reports for a script that failed (the toolkit's ExecuteUserScriptError)."""
    shown = " ".join([Path(command[0]).name, *command[1:]])
    return (f"AlgorithmError: ExecuteUserScriptError:\nExitCode {code}\nErrorMessage \"{error_line}\"\n"
            f"Command \"{shown}\", exit code: {code}")


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2))
