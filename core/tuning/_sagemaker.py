"""Tuning jobs on SageMaker, started with one low-level CreateHyperParameterTuningJob request.

Why not the SDK v3 ``HyperparameterTuner``: given a ``ModelTrainer``, it builds a request
whose channels are only the data and ``sm_drivers``; the trainer's ``code`` channel is
dropped (sagemaker-python-sdk issue #5508), so the trials would start without their
script. We send the request ourselves, and the code travels the way the framework images'
``sagemaker-training`` toolkit expects it, as static hyperparameters (the same contract as
``SageMakerJobRunner`` and the local backend)::

    CreateHyperParameterTuningJob
      HyperParameterTuningJobName: <spec.name>
      HyperParameterTuningJobConfig:
        Strategy: Bayesian | Random | Grid | Hyperband   (+ StrategyConfig for Hyperband)
        HyperParameterTuningJobObjective: {Type: Maximize, MetricName: validation:accuracy}
        ResourceLimits: {MaxNumberOfTrainingJobs: 6, MaxParallelTrainingJobs: 2}
        ParameterRanges: {ContinuousParameterRanges, IntegerParameterRanges,
                          CategoricalParameterRanges}
        TrainingJobEarlyStoppingType: Off | Auto
        RandomSeed: <spec.seed>
      TrainingJobDefinition:                 (= the runner's CreateTrainingJob request)
        StaticHyperParameters: {epochs: "2", sagemaker_program: train.py,
          sagemaker_submit_directory: s3://.../tuning/<name>/code/sourcedir.tar.gz,
          sagemaker_region: ..., sagemaker_container_log_level: "20"}
        AlgorithmSpecification: {TrainingImage, TrainingInputMode: File, MetricDefinitions}
        RoleArn, InputDataConfig, OutputDataConfig, ResourceConfig, StoppingCondition
      WarmStartConfig: {ParentHyperParameterTuningJobs: [...],
                        WarmStartType: IdenticalDataAndAlgorithm}

SageMaker rules this follows: Grid searches categorical ranges only and runs every
combination (``MaxNumberOfTrainingJobs`` is left out, so a budget smaller than the grid is
refused here rather than by AWS); Hyperband needs early stopping Off and gets
``MinResource`` 1 and ``MaxResource`` ``spec.max_epochs``.

What differs from the local tuner: SageMaker names the trials itself,
``<tuning job>-NNN-<8 hex>``, so :meth:`TuningJobSpec.trial_name` is local-only; a trial's
number is read from that ``NNN``. ListTrainingJobsForHyperParameterTuningJob reports no
per-epoch data, so ``Trial.epochs_run`` is 0 (the trial's training job has its metrics).
Otherwise its summaries carry all a Trial holds (tuned values, times, objective, failure
reason): unlike the runner's job list, trials need no DescribeTrainingJob. What they lack
(the model, the static hyperparameters) ``best_trial`` reads from the runner's description
of the best trial's training job.
SageMaker does not say whether a Stopped trial was stopped by early stopping or by a user;
a Stopped trial that reported its objective in a search that stops trials itself (early
stopping Auto, or Hyperband) is read as Pruned, any other as Stopped.
"""

from __future__ import annotations

import math
import re
import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.aws import aws_errors, roll_back, with_leftovers
from core.config import ENTRYPOINTS_DIR
from core.errors import AlreadyExistsError, BackendError, InvalidInputError, NotFoundError
from core.sagemaker_jobs import list_newest, stop_job
from core.training._sagemaker import INTERNAL_HYPERPARAMETER_PREFIXES, pack_source_dir
from core.training.compute import DEFAULT_MAX_RUNTIME_S, DEFAULT_VOLUME_SIZE_GB, Compute
from core.training.spec import TrainingJobSpec
from core.tuning._base import Tuner
from core.tuning.entities import Trial, TrialStatus, TuningJob
from core.tuning.spec import (
    CategoricalRange,
    ContinuousRange,
    EarlyStopping,
    IntegerRange,
    ParameterRange,
    Scaling,
    Strategy,
    TuningJobSpec,
)
from core.types import BackendKind, JobStatus

if TYPE_CHECKING:
    from core.aws import AwsSession
    from core.config import Settings
    from core.storage._s3 import S3Storage
    from core.training._sagemaker import SageMakerJobRunner

WARM_START_TYPE = "IdenticalDataAndAlgorithm"
HYPERBAND_MIN_RESOURCE = 1

_TUNING_STATUS = {
    "InProgress": JobStatus.IN_PROGRESS,
    "Completed": JobStatus.COMPLETED,
    "Failed": JobStatus.FAILED,
    "Stopping": JobStatus.STOPPING,
    "Stopped": JobStatus.STOPPED,
    "Deleting": JobStatus.STOPPED,  # only finished tuning jobs can be deleted
    "DeleteFailed": JobStatus.STOPPED,
}
_TRIAL_STATUS = {
    "InProgress": TrialStatus.IN_PROGRESS,
    "Stopping": TrialStatus.IN_PROGRESS,
    "Completed": TrialStatus.COMPLETED,
    "Failed": TrialStatus.FAILED,
    "Stopped": TrialStatus.STOPPED,
}


def _seconds(value: Any) -> float | None:
    return value.timestamp() if isinstance(value, datetime) else None


def compute_from_definition(training: Mapping[str, Any]) -> Compute:
    """The trials' compute, from a TrainingJobDefinition."""
    resources = training.get("ResourceConfig") or {}
    stopping = training.get("StoppingCondition") or {}
    spot = bool(training.get("EnableManagedSpotTraining"))
    return Compute(
        instance_type=resources.get("InstanceType", "local"),
        instance_count=int(resources.get("InstanceCount", 1)),
        volume_size_gb=int(resources.get("VolumeSizeInGB", DEFAULT_VOLUME_SIZE_GB)),
        max_runtime_s=int(stopping.get("MaxRuntimeInSeconds", DEFAULT_MAX_RUNTIME_S)),
        use_spot=spot,
        max_wait_s=stopping.get("MaxWaitTimeInSeconds") if spot else None,
    )


def _grid_size(ranges: Sequence[ParameterRange]) -> int:
    return math.prod(len(r.values) for r in ranges if isinstance(r, CategoricalRange))


def parameter_ranges(ranges: Sequence[ParameterRange]) -> dict[str, list[dict[str, Any]]]:
    """SageMaker's ParameterRanges for the spec's ranges (bounds and values as strings)."""
    out: dict[str, list[dict[str, Any]]] = {
        "ContinuousParameterRanges": [],
        "IntegerParameterRanges": [],
        "CategoricalParameterRanges": [],
    }
    for r in ranges:
        if isinstance(r, CategoricalRange):
            out["CategoricalParameterRanges"].append({"Name": r.name, "Values": list(r.values)})
        elif isinstance(r, ContinuousRange):
            out["ContinuousParameterRanges"].append(
                {"Name": r.name, "MinValue": str(float(r.min_value)), "MaxValue": str(float(r.max_value)),
                 "ScalingType": r.scaling.value}
            )
        else:
            out["IntegerParameterRanges"].append(
                {"Name": r.name, "MinValue": str(int(r.min_value)), "MaxValue": str(int(r.max_value)),
                 "ScalingType": r.scaling.value}
            )
    return out


def _scaling(value: str | None, name: str) -> Scaling:
    try:
        return Scaling(value or Scaling.AUTO.value)
    except ValueError:
        raise InvalidInputError(f"parameter {name}: scaling {value!r} is not supported by this console") from None


def ranges_from_description(ranges: Mapping[str, Any]) -> tuple[ParameterRange, ...]:
    """The inverse of :func:`parameter_ranges`.

    Raises:
        InvalidInputError: a scaling this console does not offer (ReverseLogarithmic).
    """
    out: list[ParameterRange] = []
    for r in ranges.get("ContinuousParameterRanges") or []:
        out.append(ContinuousRange(r["Name"], float(r["MinValue"]), float(r["MaxValue"]),
                                   _scaling(r.get("ScalingType"), r["Name"])))
    for r in ranges.get("IntegerParameterRanges") or []:
        out.append(IntegerRange(r["Name"], int(float(r["MinValue"])), int(float(r["MaxValue"])),
                                _scaling(r.get("ScalingType"), r["Name"])))
    for r in ranges.get("CategoricalParameterRanges") or []:
        out.append(CategoricalRange(r["Name"], tuple(str(v) for v in r["Values"])))
    return tuple(out)


def _counts(d: Mapping[str, Any]) -> dict[str, int]:
    """Trial counts under TrialStatus names, plus SageMaker's objective counters."""
    jobs = d.get("TrainingJobStatusCounters") or {}
    objective = d.get("ObjectiveStatusCounters") or {}
    return {
        TrialStatus.COMPLETED.value: int(jobs.get("Completed", 0)),
        TrialStatus.IN_PROGRESS.value: int(jobs.get("InProgress", 0)),
        TrialStatus.FAILED.value: int(jobs.get("RetryableError", 0)) + int(jobs.get("NonRetryableError", 0)),
        TrialStatus.STOPPED.value: int(jobs.get("Stopped", 0)),
        **{f"Objective{k}": int(objective.get(k, 0)) for k in ("Succeeded", "Pending", "Failed")},
    }


def _tuning_status(value: str) -> JobStatus:
    try:
        return _TUNING_STATUS[value]
    except KeyError:
        raise BackendError(f"SageMaker reported an unknown tuning job status {value!r}") from None


def tuning_job_from_description(d: Mapping[str, Any]) -> TuningJob:
    """A TuningJob from a DescribeHyperParameterTuningJob response or a list summary.

    Summaries carry no objective: objective_metric and objective_type are then "".
    """
    config = d.get("HyperParameterTuningJobConfig") or {}
    limits = config.get("ResourceLimits") or d.get("ResourceLimits") or {}
    objective = config.get("HyperParameterTuningJobObjective") or {}
    strategy = config.get("Strategy") or d.get("Strategy", "")
    max_jobs = limits.get("MaxNumberOfTrainingJobs")
    if max_jobs is None and strategy == Strategy.GRID.value:
        max_jobs = _grid_size(ranges_from_description(config.get("ParameterRanges") or {}))
    best = d.get("BestTrainingJob") or {}
    best_metric = best.get("FinalHyperParameterTuningJobObjectiveMetric") or {}
    return TuningJob(
        name=d["HyperParameterTuningJobName"],
        status=_tuning_status(d["HyperParameterTuningJobStatus"]),
        backend=BackendKind.AWS.value,
        created_at=_seconds(d.get("CreationTime")) or 0.0,
        strategy=strategy,
        objective_metric=objective.get("MetricName", ""),
        objective_type=objective.get("Type", ""),
        max_jobs=int(max_jobs or 0),
        max_parallel_jobs=int(limits.get("MaxParallelTrainingJobs", 0)),
        ended_at=_seconds(d.get("HyperParameterTuningEndTime")),
        failure_reason=d.get("FailureReason") or None,
        counts=_counts(d),
        best_job_name=best.get("TrainingJobName"),
        best_objective=float(best_metric["Value"]) if "Value" in best_metric else None,
    )


def _stops_trials_itself(config: Mapping[str, Any]) -> bool:
    return config.get("TrainingJobEarlyStoppingType") == EarlyStopping.AUTO.value or (
        config.get("Strategy") == Strategy.HYPERBAND.value
    )


def trial_from_summary(
    summary: Mapping[str, Any], number: int, *, early_stopping: bool, objective_metric: str = ""
) -> Trial:
    """A Trial from a HyperParameterTrainingJobSummary.

    A Completed training job whose objective never appeared is a Failed trial, as locally.

    Args:
        summary: one entry of ListTrainingJobsForHyperParameterTuningJob.
        number: the trial's 0-based number.
        early_stopping: whether the search stops weak trials itself (Stopped reads as Pruned).
        objective_metric: the tuning job's objective, for the failure reason.
    """
    status = _TRIAL_STATUS.get(summary["TrainingJobStatus"], TrialStatus.IN_PROGRESS)
    objective_status = summary.get("ObjectiveStatus")
    metric = summary.get("FinalHyperParameterTuningJobObjectiveMetric") or {}
    failure = summary.get("FailureReason") or None
    if status is TrialStatus.STOPPED and early_stopping and objective_status == "Succeeded":
        status = TrialStatus.PRUNED
    elif status is TrialStatus.COMPLETED and objective_status == "Failed":
        status = TrialStatus.FAILED
        failure = failure or f"the objective metric {objective_metric} never appeared in the log"
    return Trial(
        number=number,
        job_name=summary["TrainingJobName"],
        status=status,
        hyperparameters=dict(summary.get("TunedHyperParameters") or {}),
        objective=float(metric["Value"]) if "Value" in metric else None,
        started_at=_seconds(summary.get("TrainingStartTime")),
        ended_at=_seconds(summary.get("TrainingEndTime")),
        failure_reason=failure,
    )


class SageMakerTuner(Tuner):
    """Tuning jobs as SageMaker hyperparameter tuning jobs (see the module docstring).

    Args:
        settings: the aws backend's settings (role_arn is needed to start jobs).
        session: the AWS session whose sagemaker client is used.
        storage: the S3 store the trials' code is uploaded to.
        runner: the training runner: its CreateTrainingJob request is the trials' definition,
            and it describes the best trial's training job.
        source_dir, entry_point: the code every trial runs.
    """

    backend_name = BackendKind.AWS.value
    runner: SageMakerJobRunner

    def __init__(
        self,
        settings: Settings,
        session: AwsSession,
        storage: S3Storage,
        runner: SageMakerJobRunner,
        *,
        source_dir: Path = ENTRYPOINTS_DIR,
        entry_point: str = "train.py",
    ) -> None:
        self._settings = settings
        self._session = session
        self._storage = storage
        self.runner = runner
        self._source_dir = Path(source_dir)
        self._entry_point = entry_point

    @property
    def _sagemaker(self) -> Any:
        return self._session.client("sagemaker")

    def _describe_raw(self, name: str) -> dict[str, Any]:
        with aws_errors(f"tuning job {name}"):
            return dict(self._sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name))

    def code_key(self, name: str) -> str:
        """The storage key of tuning job name's ``sourcedir.tar.gz``."""
        return f"tuning/{name}/code/sourcedir.tar.gz"

    def tuning_job_request(self, spec: TuningJobSpec, code_uri: str) -> dict[str, Any]:
        """The CreateHyperParameterTuningJob request for spec, with its code at code_uri.

        Raises:
            ConfigError: no execution role is configured, or no image fits.
            InvalidInputError: an input that is not ``s3://``, an instance type that is not a
                SageMaker one, a reserved static hyperparameter, or a Grid budget smaller
                than the grid.
        """
        training = self.runner.training_job_request(
            TrainingJobSpec(
                name=spec.name,
                inputs=spec.inputs,
                hyperparameters=spec.static_hyperparameters,
                entry_point=self._entry_point,
                source_dir=self._source_dir,
                **spec.compute.spec_fields(),  # type: ignore[arg-type]
            ),
            code_uri,
        )
        del training["TrainingJobName"]
        training["StaticHyperParameters"] = training.pop("HyperParameters")
        limits = {"MaxNumberOfTrainingJobs": spec.max_jobs, "MaxParallelTrainingJobs": spec.max_parallel_jobs}
        if spec.strategy is Strategy.GRID:
            combinations = _grid_size(spec.ranges)
            if spec.max_jobs < combinations:
                raise InvalidInputError(
                    f"max_jobs: SageMaker's Grid search runs every combination ({combinations}); "
                    f"set max_jobs to {combinations} or use another strategy"
                )
            del limits["MaxNumberOfTrainingJobs"]
        config: dict[str, Any] = {
            "Strategy": spec.strategy.value,
            "HyperParameterTuningJobObjective": {
                "Type": spec.objective_type.value,
                "MetricName": spec.objective_metric,
            },
            "ResourceLimits": limits,
            "ParameterRanges": parameter_ranges(spec.ranges),
            "TrainingJobEarlyStoppingType": spec.early_stopping.value,
            "RandomSeed": spec.seed,
        }
        if spec.strategy is Strategy.HYPERBAND:
            config["StrategyConfig"] = {
                "HyperbandStrategyConfig": {"MinResource": HYPERBAND_MIN_RESOURCE, "MaxResource": spec.max_epochs}
            }
        request: dict[str, Any] = {
            "HyperParameterTuningJobName": spec.name,
            "HyperParameterTuningJobConfig": config,
            "TrainingJobDefinition": training,
        }
        if spec.warm_start_from:
            request["WarmStartConfig"] = {
                "ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": p} for p in spec.warm_start_from],
                "WarmStartType": WARM_START_TYPE,
            }
        return request

    def start(self, spec: TuningJobSpec) -> TuningJob:
        code_key = self.code_key(spec.name)
        request = self.tuning_job_request(spec, self._storage.uri(code_key))
        self.runner.check_instance_type(request["TrainingJobDefinition"]["ResourceConfig"]["InstanceType"])
        try:
            self._describe_raw(spec.name)
        except NotFoundError:
            pass
        else:
            raise AlreadyExistsError(f"a SageMaker tuning job named {spec.name} exists already")
        for parent in spec.warm_start_from:
            try:
                self._describe_raw(parent)
            except NotFoundError:
                raise InvalidInputError(f"warm start: no tuning job named {parent!r}") from None
        with tempfile.TemporaryDirectory(prefix="smc-source-") as tmp:
            archive = pack_source_dir(self._source_dir, Path(tmp) / "sourcedir.tar.gz")
            self._storage.put_file(archive, code_key)
        try:
            with aws_errors(f"creating tuning job {spec.name}"):
                self._sagemaker.create_hyper_parameter_tuning_job(**request)
        except BaseException as exc:
            error = with_leftovers(exc, roll_back([(f"the uploaded code {self._storage.uri(code_key)}",
                                                    lambda: self._storage.delete(code_key))]))
            if error is exc:
                raise
            raise error from exc
        return self.describe(spec.name)

    def describe(self, name: str) -> TuningJob:
        return tuning_job_from_description(self._describe_raw(name))

    def list_tuning_jobs(self, *, limit: int = 100) -> list[TuningJob]:
        """Tuning jobs, newest first, from ListHyperParameterTuningJobs summaries.

        Summaries carry no objective (objective_metric is ""); describe() has it.
        """
        summaries = list_newest(
            self._sagemaker, "list_hyper_parameter_tuning_jobs", "HyperParameterTuningJobSummaries",
            limit=limit, what="listing tuning jobs",
        )
        jobs = [tuning_job_from_description(s) for s in summaries]
        return sorted(jobs, key=lambda j: j.created_at, reverse=True)[:limit]

    def stop(self, name: str) -> TuningJob:
        return stop_job(
            name,
            describe=self.describe,
            send_stop=lambda: self._sagemaker.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=name),
            what=f"tuning job {name}",
        )

    def trials(self, name: str) -> list[Trial]:
        """Its trials by number (``NNN`` of ``<name>-NNN-<hex>`` minus one, else creation order).

        Raises:
            NotFoundError: no tuning job of that name.
        """
        config = self._describe_raw(name).get("HyperParameterTuningJobConfig") or {}
        pages = self._sagemaker.get_paginator("list_training_jobs_for_hyper_parameter_tuning_job").paginate(
            HyperParameterTuningJobName=name, PaginationConfig={"PageSize": 100}
        )
        summaries: list[dict[str, Any]] = []
        with aws_errors(f"trials of tuning job {name}"):
            for page in pages:
                summaries.extend(page["TrainingJobSummaries"])
        summaries.sort(key=lambda s: (_seconds(s.get("CreationTime")) or 0.0, s["TrainingJobName"]))
        pattern = re.compile(rf"^{re.escape(name)}-(\d{{3}})-[0-9a-zA-Z]+$")
        numbers: dict[str, int] = {}
        for s in summaries:
            match = pattern.match(s["TrainingJobName"])
            if match and int(match.group(1)) - 1 not in numbers.values():
                numbers[s["TrainingJobName"]] = int(match.group(1)) - 1
        free = (n for n in range(len(summaries) + len(numbers) + 1) if n not in numbers.values())
        early_stopping = _stops_trials_itself(config)
        objective_metric = (config.get("HyperParameterTuningJobObjective") or {}).get("MetricName", "")
        trials = [
            trial_from_summary(
                s, numbers[s["TrainingJobName"]] if s["TrainingJobName"] in numbers else next(free),
                early_stopping=early_stopping, objective_metric=objective_metric,
            )
            for s in summaries
        ]
        return sorted(trials, key=lambda t: t.number)

    def spec(self, name: str) -> TuningJobSpec:
        """The spec rebuilt from the tuning job's description.

        ``instance_type`` reads as the SageMaker type the trials ran on (``local`` becomes
        ``ml.m5.xlarge``), with their count, volume, time limit and managed spot; a Grid search's
        max_jobs is its number of combinations.

        Raises:
            NotFoundError: no tuning job of that name.
            InvalidInputError: the job was not created by this console and does not fit a
                TuningJobSpec (unknown hyperparameters, metric or scaling, several
                training job definitions).
        """
        d = self._describe_raw(name)
        config = d.get("HyperParameterTuningJobConfig") or {}
        training = d.get("TrainingJobDefinition")
        if not training:
            raise InvalidInputError(f"tuning job {name}: it has no single training job definition")
        job = tuning_job_from_description(d)
        ranges = ranges_from_description(config.get("ParameterRanges") or {})
        parents = (d.get("WarmStartConfig") or {}).get("ParentHyperParameterTuningJobs") or []
        early_stopping = config.get("TrainingJobEarlyStoppingType", EarlyStopping.OFF.value)
        return TuningJobSpec(
            name=job.name,
            ranges=ranges,
            inputs={
                c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"]
                for c in training.get("InputDataConfig") or []
                if "S3DataSource" in c.get("DataSource", {})
            },
            static_hyperparameters={
                k: v
                for k, v in (training.get("StaticHyperParameters") or {}).items()
                if not k.startswith(INTERNAL_HYPERPARAMETER_PREFIXES)
                and not (k == "debug-out-dir" and v == self.runner.default_debug_out_dir)  # the runner adds it
                and not (k == "profile-out-dir" and v == self.runner.default_profile_out_dir)  # and this
            },
            objective_metric=job.objective_metric,
            objective_type=job.objective_type,  # type: ignore[arg-type]  # validated into the enum
            strategy=job.strategy,  # type: ignore[arg-type]
            max_jobs=job.max_jobs,
            max_parallel_jobs=min(job.max_parallel_jobs, job.max_jobs),
            early_stopping=early_stopping,
            warm_start_from=tuple(p["HyperParameterTuningJobName"] for p in parents),
            **compute_from_definition(training).spec_fields(),  # type: ignore[arg-type]
            seed=int(config.get("RandomSeed", 0)),
        )
