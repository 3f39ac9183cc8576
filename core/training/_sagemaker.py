"""Training jobs on SageMaker, started with one CreateTrainingJob request.

Why a direct boto3 request and not the SDK v3 ``ModelTrainer``: ModelTrainer works under
moto (with ``SAGEMAKER_VALIDATE_ROLE=false``), but

- it always names the job ``<base_job_name>-<timestamp>`` (``_get_unique_name``), while the
  JobRunner contract is that ``spec.name`` is the job's name (describe, stop and
  AlreadyExistsError all key on it);
- it ships code through its own ``sm_train.sh`` driver channels (``code`` + ``sm_drivers``),
  whereas the local backend runs the ``sagemaker-training`` toolkit with
  ``sagemaker_program`` / ``sagemaker_submit_directory``. The SDK's tuner drops the code
  channel (SDK issue #5508), so tuning jobs need those two hyperparameters anyway: using
  them here too gives one code-shipping contract for local runs, training and tuning. The
  framework images run that toolkit, which downloads ``sourcedir.tar.gz``, installs its
  ``requirements.txt`` and calls the entry point with ``--name value`` arguments;
- by default it sends a telemetry GET to ``sm-pysdk-t-<region>.s3...`` on every train(),
  its own import emits a DeprecationWarning (``sagemaker.train.configs`` shim) and train()
  leaks a TemporaryDirectory (ResourceWarning), which a ``filterwarnings = error`` test
  suite turns into failures.

The SDK still supplies the image: ``sagemaker.core.image_uris`` reads its bundled JSON, so
the lookup works offline. PyTorch 2.9 / py312 is the newest training image on Python 3.12;
2.10 is py313-only and ``entrypoints/requirements.txt`` pins numpy 1.26 (for smdebug), which
has no py313 wheels.

Choices: ``instance_type="local"`` (the spec's default, meaning "not chosen") runs on
``ml.m5.xlarge``, the SDK's own default and the smallest sensible CPU instance. A spot job
without ``checkpoint_uri`` checkpoints to ``jobs/<name>/checkpoints`` so it can resume.
``metrics()`` reads the CloudWatch series SageMaker publishes from the metric definitions
(namespace ``/aws/sagemaker/TrainingJobs``, dimension ``Host=<job>/algo-1``, one-minute
averages, ``step`` = index in time); without any (CloudWatch keeps them two weeks) it
returns ``FinalMetricDataList``. ListTrainingJobs summaries carry no model, hyperparameters,
inputs or start time, so ``list_jobs`` describes each listed job; it keeps the finished ones
(:class:`FinishedJobs`), so a listing costs one ListTrainingJobs call plus one
DescribeTrainingJob per job still running or not seen before. ``describe`` always asks
SageMaker: DeleteTrainingJob lets a name be reused, which a listing tells by its creation time.
"""

from __future__ import annotations

import contextlib
import functools
import tarfile
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.aws import aws_errors, roll_back, with_leftovers
from core.debugger.launch import JOB_NAME_PLACEHOLDER
from core.entities import MetricPoint, TrainingJob
from core.errors import AlreadyExistsError, ConfigError, InvalidInputError, NotFoundError
from core.sagemaker_jobs import list_newest, stop_job
from core.training._base import JobRunner
from core.training._instance_catalog import is_offered, training_instance_types, training_type_names
from core.training._prices import training_price_per_hour
from core.training.compute import InstanceType, has_gpus
from core.types import BackendKind, JobStatus

if TYPE_CHECKING:
    from core.aws import AwsSession
    from core.config import Settings
    from core.storage._s3 import S3Storage
    from core.training.spec import TrainingJobSpec

DEFAULT_INSTANCE_TYPE = "ml.m5.xlarge"
PYTORCH_VERSION = "2.9"
PYTHON_VERSION = "py312"
LOG_GROUP = "/aws/sagemaker/TrainingJobs"
METRIC_NAMESPACE = "/aws/sagemaker/TrainingJobs"
CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"
INTERNAL_HYPERPARAMETER_PREFIXES = ("sagemaker_", "_tuning")
_SKIPPED_NAMES = {"__pycache__", ".git", ".ipynb_checkpoints", ".DS_Store"}
_MAX_LOG_EVENTS = 10_000  # GetLogEvents' limit
FINISHED_JOBS_KEPT = 2_000  # a few pages of the Training table plus the trials of a few tuning jobs


@functools.lru_cache(maxsize=32)
def training_image_uri(
    region: str,
    instance_type: str,
    framework_version: str = PYTORCH_VERSION,
    py_version: str = PYTHON_VERSION,
) -> str:
    """The PyTorch training image for region and instance type (CPU or GPU build).

    Raises:
        ConfigError: the SDK knows no such image for that region or instance type.
    """
    from sagemaker.core import image_uris

    try:
        return str(
            image_uris.retrieve(
                "pytorch",
                region=region,
                version=framework_version,
                py_version=py_version,
                instance_type=instance_type,
                image_scope="training",
            )
        )
    except ValueError as exc:
        raise ConfigError(
            f"no PyTorch {framework_version} training image for {instance_type} in {region}: {exc}"
        ) from None


def pack_source_dir(source_dir: Path, archive: Path) -> Path:
    """Writes source_dir as ``sourcedir.tar.gz`` content (files at the archive root).

    Caches, VCS folders and hidden files are left out; symbolic links are stored as the
    files they point to.
    """
    source_dir = Path(source_dir)
    files = sorted(
        p
        for p in source_dir.rglob("*")
        if p.is_file()
        and p.suffix != ".pyc"
        and not any(part in _SKIPPED_NAMES or part.startswith(".") for part in p.relative_to(source_dir).parts)
    )
    with tarfile.open(archive, "w:gz", dereference=True) as tar:
        for path in files:
            info = tar.gettarinfo(str(path), arcname=path.relative_to(source_dir).as_posix())
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with open(path, "rb") as fh:
                tar.addfile(info, fh)
    return archive


def code_hyperparameters(entry_point: str, submit_uri: str, region: str) -> dict[str, str]:
    """The hyperparameters that tell the sagemaker-training toolkit what code to run."""
    return {
        "sagemaker_program": entry_point,
        "sagemaker_submit_directory": submit_uri,
        "sagemaker_region": region,
        "sagemaker_container_log_level": "20",
    }


def launcher_hyperparameters(instance_type: str) -> dict[str, str]:
    """On a GPU type, SageMaker's ``torch_distributed`` launcher (the SDK's
    ``distribution={"torch_distributed": {"enabled": True}}``): the PyTorch image starts the script
    under torchrun, one process per GPU on every instance. On CPU types the image starts it once per
    instance and the script meets its peers through ``SM_HOSTS`` (see entrypoints/distributed.py)."""
    if not has_gpus(instance_type):
        return {}
    return {"sagemaker_torch_distributed_enabled": "true", "sagemaker_instance_type": instance_type}


def _timestamp(value: Any) -> float | None:
    return value.timestamp() if isinstance(value, datetime) else None


def training_job_from_description(d: Mapping[str, Any]) -> TrainingJob:
    """A TrainingJob from a DescribeTrainingJob response."""
    status = JobStatus(d["TrainingJobStatus"])
    channels = d.get("InputDataConfig") or []
    model_uri = (d.get("ModelArtifacts") or {}).get("S3ModelArtifacts")
    resources = d.get("ResourceConfig") or {}
    return TrainingJob(
        name=d["TrainingJobName"],
        status=status,
        backend=BackendKind.AWS.value,
        created_at=_timestamp(d["CreationTime"]) or 0.0,
        hyperparameters={
            k: v
            for k, v in (d.get("HyperParameters") or {}).items()
            if not k.startswith(INTERNAL_HYPERPARAMETER_PREFIXES)
        },
        inputs={
            c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"]
            for c in channels
            if "S3DataSource" in c.get("DataSource", {})
        },
        started_at=_timestamp(d.get("TrainingStartTime")),
        ended_at=_timestamp(d.get("TrainingEndTime")),
        failure_reason=d.get("FailureReason"),
        secondary_status=d.get("SecondaryStatus"),
        model_uri=model_uri if status in (JobStatus.COMPLETED, JobStatus.STOPPED) else None,
        final_metrics={m["MetricName"]: float(m["Value"]) for m in d.get("FinalMetricDataList") or []},
        instance_type=resources.get("InstanceType", "unknown"),
        instance_count=int(resources.get("InstanceCount", 1)),
        training_s=d.get("TrainingTimeInSeconds"),
        billable_s=d.get("BillableTimeInSeconds"),
    )


class FinishedJobs:
    """Described training jobs that have finished, least recently used first out.

    A finished job never changes, so a listing need not describe it again; a name can be reused
    after DeleteTrainingJob, so an entry counts only for the creation time it was described at.
    Safe from several threads (pages render in several): each access holds a lock.
    """

    def __init__(self, max_entries: int = FINISHED_JOBS_KEPT) -> None:
        self._jobs: OrderedDict[str, TrainingJob] = OrderedDict()
        self._max_entries = max_entries
        self._lock = threading.Lock()

    def get(self, name: str, created_at: float) -> TrainingJob | None:
        """The finished job of that name created at created_at, if it was described."""
        with self._lock:
            job = self._jobs.get(name)
            if job is None or job.created_at != created_at:
                return None
            self._jobs.move_to_end(name)
            return job

    def add(self, job: TrainingJob) -> None:
        """Keeps job if it has finished (a running one would go stale)."""
        if not job.status.is_terminal:
            return
        with self._lock:
            self._jobs[job.name] = job
            self._jobs.move_to_end(job.name)
            while len(self._jobs) > self._max_entries:
                self._jobs.popitem(last=False)


class SageMakerJobRunner(JobRunner):
    """Training jobs as SageMaker training jobs (see the module docstring for the choices).

    Args:
        settings: role_arn is needed to start jobs (describe/list work without it).
        session: the AWS session whose sagemaker, logs and cloudwatch clients are used.
        storage: the S3 store the job's code, outputs and default checkpoints go to.
        training_image: an image URI to use instead of the PyTorch framework image.
    """

    backend_name = BackendKind.AWS.value
    default_instance_type = DEFAULT_INSTANCE_TYPE

    def __init__(
        self,
        settings: Settings,
        session: AwsSession,
        storage: S3Storage,
        *,
        training_image: str | None = None,
    ) -> None:
        self._settings = settings
        self._session = session
        self._storage = storage
        self._training_image = training_image
        self._finished = FinishedJobs()
        self._catalog: list[InstanceType] | None = None
        self._offered: set[str] = set()
        self._prices: dict[str, float | None] = {}

    @property
    def _sagemaker(self) -> Any:
        return self._session.client("sagemaker")

    def _describe_raw(self, name: str) -> dict[str, Any]:
        with aws_errors(f"training job {name}"):
            return dict(self._sagemaker.describe_training_job(TrainingJobName=name))

    @property
    def default_debug_out_dir(self) -> str:
        """Where a job's script uploads its Debugger trial as it trains, unless it is told
        otherwise (``{job_name}`` stands for the job's name; see core.debugger.evaluator)."""
        return self._storage.uri(f"jobs/{JOB_NAME_PLACEHOLDER}/debug-output")

    @property
    def default_profile_out_dir(self) -> str:
        """Where a job's script uploads its profiler output as it trains, unless it is told
        otherwise (``{job_name}`` as above; see core.profiler.evaluator)."""
        return self._storage.uri(f"jobs/{JOB_NAME_PLACEHOLDER}/profiler-output")

    def training_job_request(self, spec: TrainingJobSpec, code_uri: str) -> dict[str, Any]:
        """The CreateTrainingJob request for spec, with its code at code_uri.

        Raises:
            ConfigError: no execution role is configured, or no image fits.
            InvalidInputError: an input or the checkpoint URI is not ``s3://``, the instance
                type is not a SageMaker one, or a hyperparameter uses a reserved name.
        """
        role = self._settings.role_arn
        if not role:
            raise ConfigError(
                "SageMaker needs an execution role to run training jobs: set SMC_ROLE_ARN to "
                "an IAM role SageMaker can assume (arn:aws:iam::<account>:role/<name>)"
            )
        for channel, uri in spec.inputs.items():
            if not uri.startswith("s3://"):
                raise InvalidInputError(f"input {channel}: {uri} is not in S3; upload the dataset to S3 first")
        reserved = [k for k in spec.hyperparameters if k.startswith(INTERNAL_HYPERPARAMETER_PREFIXES)]
        if reserved:
            raise InvalidInputError(f"hyperparameters: {reserved} use a reserved prefix (sagemaker_)")
        instance_type = DEFAULT_INSTANCE_TYPE if spec.instance_type == "local" else spec.instance_type
        if not instance_type.startswith("ml."):
            raise InvalidInputError(f"instance type {instance_type!r}: use a SageMaker type such as ml.m5.xlarge")
        region = self._session.region
        checkpoint_uri = spec.checkpoint_uri
        if checkpoint_uri is None and spec.use_spot:
            checkpoint_uri = self._storage.uri(f"jobs/{spec.name}/checkpoints")
        if checkpoint_uri is not None and not checkpoint_uri.startswith("s3://"):
            raise InvalidInputError(f"checkpoint_uri: {checkpoint_uri} is not an s3:// URI")

        stopping: dict[str, int] = {"MaxRuntimeInSeconds": spec.max_runtime_s}
        if spec.use_spot and spec.max_wait_s is not None:
            stopping["MaxWaitTimeInSeconds"] = spec.max_wait_s
        request: dict[str, Any] = {
            "TrainingJobName": spec.name,
            "AlgorithmSpecification": {
                "TrainingImage": self._training_image or training_image_uri(region, instance_type),
                "TrainingInputMode": "File",
                "MetricDefinitions": [{"Name": m.name, "Regex": m.regex} for m in spec.metric_definitions],
            },
            "RoleArn": role,
            "HyperParameters": {
                "debug-out-dir": self.default_debug_out_dir,
                "profile-out-dir": self.default_profile_out_dir,
                **spec.hyperparameters_as_strings,
                **code_hyperparameters(spec.entry_point, code_uri, region),
                **launcher_hyperparameters(instance_type),
            },
            "InputDataConfig": [
                {
                    "ChannelName": channel,
                    "DataSource": {
                        "S3DataSource": {
                            "S3DataType": "S3Prefix",
                            "S3Uri": uri,
                            "S3DataDistributionType": "FullyReplicated",
                        }
                    },
                    "InputMode": "File",
                }
                for channel, uri in spec.inputs.items()
            ],
            "OutputDataConfig": {"S3OutputPath": self._storage.uri("jobs")},
            "ResourceConfig": {
                "InstanceType": instance_type,
                "InstanceCount": spec.instance_count,
                "VolumeSizeInGB": spec.volume_size_gb,
            },
            "StoppingCondition": stopping,
            "EnableManagedSpotTraining": spec.use_spot,
        }
        if checkpoint_uri is not None:
            request["CheckpointConfig"] = {"S3Uri": checkpoint_uri, "LocalPath": CHECKPOINT_LOCAL_PATH}
        return request

    def instance_types(self) -> list[InstanceType]:
        """The region's training types, asked of EC2 once (they change only when AWS adds types)."""
        if self._catalog is None:
            self._catalog = training_instance_types(self._session.client("ec2"))
        return self._catalog

    def price_per_hour(self, instance_type: str) -> float | None:
        """The region's on-demand price, asked of the Price List API once per type."""
        if instance_type == "local":
            instance_type = DEFAULT_INSTANCE_TYPE
        if instance_type not in self._prices:
            with aws_errors(f"reading the price of {instance_type} from the AWS Price List API"):
                self._prices[instance_type] = training_price_per_hour(
                    self._session.client("pricing"), self._session.region, instance_type)
        return self._prices[instance_type]

    def check_instance_type(self, instance_type: str) -> None:
        """Refuses a type that SageMaker does not know or the region does not offer (unchecked where
        EC2 refuses to say: CreateTrainingJob's own error then tells).

        Raises:
            InvalidInputError: naming the region and where to look.
        """
        if instance_type in self._offered:
            return
        if instance_type not in training_type_names():
            raise InvalidInputError(f"instance type {instance_type}: SageMaker has no training instance of that "
                                    "type; choose one the form lists")
        offered = is_offered(self._session.client("ec2"), instance_type)
        if offered is False:
            raise InvalidInputError(
                f"instance type {instance_type}: {self._session.region} does not offer it for training; "
                "choose one the form lists, or another region (SMC_REGION)")
        if offered:
            self._offered.add(instance_type)

    def start(self, spec: TrainingJobSpec) -> TrainingJob:
        code_key = f"jobs/{spec.name}/code/sourcedir.tar.gz"
        request = self.training_job_request(spec, self._storage.uri(code_key))
        self.check_instance_type(request["ResourceConfig"]["InstanceType"])
        try:
            self._describe_raw(spec.name)
        except NotFoundError:
            pass
        else:
            raise AlreadyExistsError(f"a SageMaker training job named {spec.name} exists already")
        with tempfile.TemporaryDirectory(prefix="smc-source-") as tmp:
            archive = pack_source_dir(Path(spec.source_dir), Path(tmp) / "sourcedir.tar.gz")
            self._storage.put_file(archive, code_key)
        try:
            with aws_errors(f"creating training job {spec.name}"):
                self._sagemaker.create_training_job(**request)
        except BaseException as exc:
            error = with_leftovers(exc, roll_back([(f"the uploaded code {self._storage.uri(code_key)}",
                                                    lambda: self._storage.delete(code_key))]))
            if error is exc:
                raise
            raise error from exc
        return self.describe(spec.name)

    def describe(self, name: str) -> TrainingJob:
        job = training_job_from_description(self._describe_raw(name))
        self._finished.add(job)
        return job

    def _describe_listed(self, name: str, created_at: float) -> TrainingJob:
        """The job a listing showed as created at created_at: describe(name), unless it has
        finished and was described already.

        Raises:
            NotFoundError: it was deleted since it was listed.
        """
        return self._finished.get(name, created_at) or self.describe(name)

    def list_jobs(self, *, limit: int = 100) -> list[TrainingJob]:
        summaries = list_newest(
            self._sagemaker, "list_training_jobs", "TrainingJobSummaries", limit=limit, what="listing training jobs"
        )
        jobs: list[TrainingJob] = []
        for s in summaries:
            with contextlib.suppress(NotFoundError):  # deleted since it was listed
                jobs.append(self._describe_listed(s["TrainingJobName"], _timestamp(s["CreationTime"]) or 0.0))
        return sorted(jobs, key=lambda j: j.created_at, reverse=True)[:limit]

    def stop(self, name: str) -> TrainingJob:
        return stop_job(
            name,
            describe=self.describe,
            send_stop=lambda: self._sagemaker.stop_training_job(TrainingJobName=name),
            what=f"training job {name}",
        )

    def metrics(self, name: str) -> list[MetricPoint]:
        description = self._describe_raw(name)
        cloudwatch = self._session.client("cloudwatch")
        dimensions = [{"Name": "Host", "Value": f"{name}/algo-1"}]
        with aws_errors(f"metrics of training job {name}"):
            names = sorted(
                {
                    m["MetricName"]
                    for page in cloudwatch.get_paginator("list_metrics").paginate(
                        Namespace=METRIC_NAMESPACE, Dimensions=dimensions
                    )
                    for m in page["Metrics"]
                }
            )
        if not names:
            return [
                MetricPoint(m["MetricName"], float(m["Value"]), 0, _timestamp(m.get("Timestamp")) or 0.0)
                for m in description.get("FinalMetricDataList") or []
            ]
        return self._cloudwatch_points(cloudwatch, names, dimensions, description)

    def _cloudwatch_points(
        self, cloudwatch: Any, names: list[str], dimensions: list[dict[str, str]], description: Mapping[str, Any]
    ) -> list[MetricPoint]:
        queries = [
            {
                "Id": f"m{i}",
                "Label": metric,
                "MetricStat": {
                    "Metric": {"Namespace": METRIC_NAMESPACE, "MetricName": metric, "Dimensions": dimensions},
                    "Period": 60,
                    "Stat": "Average",
                },
            }
            for i, metric in enumerate(names[:500])
        ]
        end = description.get("TrainingEndTime") or datetime.now(UTC)
        series: dict[str, list[tuple[float, float]]] = {metric: [] for metric in names}
        with aws_errors(f"metrics of training job {description['TrainingJobName']}"):
            for page in cloudwatch.get_paginator("get_metric_data").paginate(
                MetricDataQueries=queries,
                StartTime=description["CreationTime"] - timedelta(minutes=1),
                EndTime=end + timedelta(minutes=1),
                ScanBy="TimestampAscending",
            ):
                for result in page["MetricDataResults"]:
                    metric = names[int(result["Id"][1:])]
                    series[metric].extend(
                        (t.timestamp(), float(v)) for t, v in zip(result["Timestamps"], result["Values"], strict=True)
                    )
        points = [
            MetricPoint(metric, value, step, ts)
            for metric, values in series.items()
            for step, (ts, value) in enumerate(sorted(values))
        ]
        return sorted(points, key=lambda p: (p.timestamp, p.name))

    def log_tail(self, name: str, max_lines: int = 200) -> list[str]:
        self._describe_raw(name)
        if max_lines < 1:
            return []
        logs = self._session.client("logs")
        try:
            with aws_errors(f"log streams of training job {name}"):
                streams = [
                    s["logStreamName"]
                    for page in logs.get_paginator("describe_log_streams").paginate(
                        logGroupName=LOG_GROUP, logStreamNamePrefix=f"{name}/"
                    )
                    for s in page["logStreams"]
                ]
        except NotFoundError:
            return []  # the log group appears with the first job that logs
        events: list[tuple[int, str]] = []
        for stream in streams:
            host = stream.split("/", 1)[1]
            with aws_errors(f"log of training job {name}"):
                response = logs.get_log_events(
                    logGroupName=LOG_GROUP,
                    logStreamName=stream,
                    startFromHead=False,
                    limit=min(max_lines, _MAX_LOG_EVENTS),
                )
            label = f"[{host}] " if len(streams) > 1 else ""
            events.extend((e["timestamp"], label + e["message"].rstrip("\n")) for e in response["events"])
        events.sort(key=lambda e: e[0])
        return [line for _, line in events[-max_lines:]]
