"""A loopback SageMaker in front of a moto server: moto's answers, with the job lifecycle AWS has.

moto 5.2.5 (server mode) gets three things about SageMaker jobs wrong for a console that
watches and stops them:

- it marks a training or tuning job Completed the moment it is created, so no job is ever
  InProgress and the JobRunner contract (``start`` returns the job InProgress; ``stop`` stops a
  running job) cannot be exercised;
- it has no ``StopTrainingJob``, ``StopHyperParameterTuningJob`` or
  ``ListTrainingJobsForHyperParameterTuningJob`` (it answers HTTP 500, NotImplementedError);
- it runs no trials for a tuning job (and describes a made-up best trial).

:class:`SageMakerStandIn` is a small HTTP proxy on 127.0.0.1. Point the ``sagemaker`` service at
it (``AWS_ENDPOINT_URL_SAGEMAKER``) and everything else at moto. It forwards every request to
moto unchanged except these SageMaker JSON operations (``X-Amz-Target: SageMaker.<name>``):

========================================== ==============================================
operation                                  what the stand-in does
========================================== ==============================================
CreateTrainingJob                          forwards, then follows the job's life
DescribeTrainingJob                        moto's answer with the status the job has now
ListTrainingJobs                           moto's matches with their statuses now, filtered,
                                           sorted and paged here (moto ignores SortBy)
StopTrainingJob                            implemented (moto lacks it); a role session of the
                                           ``authorizer`` is held to its role's policy
CreateHyperParameterTuningJob              forwards, then creates its trials in moto
DescribeHyperParameterTuningJob,           moto's answer with the tuning job's status,
ListHyperParameterTuningJobs               counters and best trial from its trials
StopHyperParameterTuningJob                implemented (moto lacks it)
ListTrainingJobsForHyperParameterTuningJob implemented (moto lacks it)
========================================== ==============================================

Time in the stand-in is counted in describes, so no test depends on the clock: a training job
is InProgress for its first ``describes_per_run`` DescribeTrainingJob answers and Completed
from the next one on; after StopTrainingJob it is Stopping for one describe, then Stopped. A
tuning job creates all its trials at once (``MaxNumberOfTrainingJobs``, or every combination
of a Grid search), named ``<tuning job>-NNN-<8 hex>`` as SageMaker names them, with tuned
values spread evenly over each range. Each DescribeHyperParameterTuningJob is one describe of
every trial; the tuning job is InProgress while a trial runs and Completed (Stopped, after
StopHyperParameterTuningJob) once none does. Trial ``i`` (from 0) reports the objective
``0.5 + i / 100`` when it completes. Listings never advance time.

**Container mode** (``containers=LocalContainers(...)``, see :mod:`tests.standins.containers`):
training jobs run for real instead. CreateTrainingJob starts a local "container" that
downloads the channels and the code from moto, runs the entry point with the job
environment's Python, sends its output to CloudWatch Logs and its metrics to CloudWatch at
moto, and uploads ``model.tar.gz``; the job is InProgress until the script ends, then
Completed, Failed (with the toolkit's FailureReason) or, after StopTrainingJob (SIGTERM, then
SIGKILL after a grace period), Stopped. Describe and list answer the job's live status,
SecondaryStatus and its transitions, TrainingStartTime/EndTime, FinalMetricDataList and
FailureReason. A tuning job launches its trials as such jobs, at most
``MaxParallelTrainingJobs`` at a time, the next one when one ends; a trial's objective is the
final value of the objective metric in its log. Stopping (or resetting) the stand-in stops
every job it runs and waits for their ends.

Every answer the stand-in writes or rewrites is checked against botocore's service model
(required members, types, no unknown member) before it is sent, and the requests of the
operations it implements are checked against their input shapes, as AWS would: a stand-in that
drifts from the contract fails the test that uses it. Errors are those the model declares
(``ResourceNotFound``) or that SageMaker sends (``ValidationException`` for a job that has
finished). Requests are expected with a ``Content-Length`` body, as botocore sends them.
"""

from __future__ import annotations

import hashlib
import http.client
import itertools
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlparse

import botocore.session
from botocore import parsers
from botocore.model import ServiceModel
from botocore.validate import ParamValidator

from tests.standins.containers import Container, LocalContainers, Outcome, model_artifacts_uri

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "te", "trailer", "upgrade"}
_TARGET_PREFIX = "SageMaker."
_ACTIVE = ("InProgress", "Stopping")
_SECONDARY = {"InProgress": "Training", "Stopping": "Stopping", "Stopped": "Stopped", "Completed": "Completed",
              "Failed": "Failed"}
_DEFAULT_PAGE = 10  # the documented default MaxResults of ListTrainingJobs[ForHyperParameterTuningJob]
_PAGING = ("NextToken", "MaxResults", "StatusEquals", "SortBy", "SortOrder")
_END_MESSAGES = {"Completed": "Training job completed", "Failed": "Training job failed",
                 "Stopped": "Training job stopped"}


class StandInError(Exception):
    """An error answer, as SageMaker's JSON protocol sends it."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Run:
    """One training job's life: counted in describes (see the module docstring), or, with a
    container, what the container reported (phases as SecondaryStatus, then its outcome)."""

    describes_left: int
    metric_definitions: list[dict[str, str]]
    status: str = "InProgress"
    stopping_describes_left: int = 0
    ended: datetime | None = None
    tuning_job: str | None = None
    tuned: dict[str, str] = field(default_factory=dict)
    planned_objective: float | None = None
    """Counting mode: the objective a trial reports once it completes."""
    objective: float | None = None
    arn: str = ""
    created: datetime = field(default_factory=_now)
    container: Container | None = None
    model_uri: str = ""
    secondary: str | None = None
    started: datetime | None = None
    modified: datetime | None = None
    transitions: list[dict[str, Any]] = field(default_factory=list)
    final_metrics: list[dict[str, Any]] = field(default_factory=list)
    failure_reason: str | None = None

    def tick(self) -> None:
        """One describe has passed (a container's job lives by its own clock)."""
        if self.container is not None:
            return
        if self.status == "InProgress":
            if self.describes_left > 0:
                self.describes_left -= 1
            else:
                self.status, self.ended, self.objective = "Completed", _now(), self.planned_objective
        elif self.status == "Stopping":
            if self.stopping_describes_left > 0:
                self.stopping_describes_left -= 1
            else:
                self.status, self.ended = "Stopped", _now()

    def stop(self) -> None:
        """StopTrainingJob: Stopping for one describe, then Stopped; with a container, SIGTERM
        (nothing changes if the script has exited already: the job ends as it would have)."""
        if self.container is None:
            self.status, self.stopping_describes_left = "Stopping", 1
        elif self.container.stop():
            self.status = "Stopping"
            self.enter("Stopping", "Stopping the training job")

    def enter(self, secondary: str, message: str) -> None:
        """A container's job enters a phase (a SecondaryStatus)."""
        now = _now()
        if self.transitions:
            self.transitions[-1]["EndTime"] = now
        self.transitions.append({"Status": secondary, "StartTime": now, "StatusMessage": message})
        self.secondary, self.modified = secondary, now

    @property
    def objective_status(self) -> str:
        """A trial's ObjectiveStatus: Failed when it ended (not stopped) without its objective."""
        if self.objective is not None:
            return "Succeeded"
        return "Failed" if self.status in ("Completed", "Failed") else "Pending"


@dataclass
class _Tuning:
    """One tuning job: its trials (by name) and whether it was asked to stop."""

    arn: str
    objective_type: str
    objective_metric: str
    trials: list[str]
    stop_requested: bool = False
    pending: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    """Container mode: trials (name, tuned values) not launched yet, in launch order."""
    launching: int = 0
    """Container mode: trials popped from pending and not ended yet."""
    max_parallel: int = 1
    definition: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


class SageMakerStandIn:
    """The proxy (see the module docstring); a context manager that starts and stops it.

    Args:
        upstream: the moto server's URL (``http://127.0.0.1:PORT``).
        describes_per_run: how many DescribeTrainingJob answers show a new job InProgress.
        containers: run training jobs for real, this way (container mode), instead of
            counting describes.
    """

    def __init__(self, upstream: str, *, describes_per_run: int = 5, containers: LocalContainers | None = None) -> None:
        parsed = urlparse(upstream)
        if parsed.hostname != "127.0.0.1" or parsed.port is None:
            raise ValueError(f"the stand-in forwards to a loopback moto server only, not {upstream!r}")
        self.upstream = (parsed.hostname, parsed.port)
        self.describes_per_run = describes_per_run
        self.containers = containers
        self.authorizer: Any = None
        """A RuntimeStandIn whose role sessions are authorised (StopTrainingJob), or None: every caller may."""
        self._closing = False
        self._model = botocore.session.get_session().get_service_model("sagemaker")
        self._parser = parsers.create_parser("json")
        self._lock = threading.Lock()
        self._runs: dict[str, _Run] = {}
        self._tunings: dict[str, _Tuning] = {}
        self.errors: list[str] = []
        """What went wrong inside the stand-in (an answer that breaks the model, ...), for tests to assert on."""
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._handlers: dict[str, Callable[[dict[str, Any], dict[str, str]], dict[str, Any]]] = {
            "CreateTrainingJob": self._create_training_job,
            "DescribeTrainingJob": self._describe_training_job,
            "ListTrainingJobs": self._list_training_jobs,
            "StopTrainingJob": self._stop_training_job,
            "CreateHyperParameterTuningJob": self._create_tuning_job,
            "DescribeHyperParameterTuningJob": self._describe_tuning_job,
            "ListHyperParameterTuningJobs": self._list_tuning_jobs,
            "StopHyperParameterTuningJob": self._stop_tuning_job,
            "ListTrainingJobsForHyperParameterTuningJob": self._list_trials,
        }

    # --- life cycle of the proxy -------------------------------------------------------------

    @property
    def url(self) -> str:
        """Where clients reach the stand-in."""
        assert self._server is not None, "start() first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> SageMakerStandIn:
        """Listens on a free loopback port, serving from a daemon thread."""
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                stand_in._serve(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: a test's output is its own."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="sagemaker-stand-in", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops every job it runs (waiting for their ends), then stops serving and closes the port."""
        self._end_containers()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> SageMakerStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Stops every job it runs, then forgets every job, here and in moto (``POST /moto-api/reset``)."""
        self._end_containers()
        status, _headers, body = self._upstream("POST", "/moto-api/reset", b"", {})
        if status != 200:
            raise RuntimeError(f"moto did not reset ({status}): {body[:200]!r}")
        with self._lock:
            self._runs.clear()
            self._tunings.clear()
            self._closing = False
        self.errors.clear()

    def _end_containers(self) -> None:
        """Stops every running container and waits for it; no trial is launched meanwhile."""
        with self._lock:
            self._closing = True
            containers = [run.container for run in self._runs.values() if run.container is not None]
        for container in containers:
            container.end()

    def container(self, name: str) -> Container:
        """The container of training job name (container mode), for tests to look into."""
        with self._lock:
            container = self._runs[name].container
        assert container is not None, f"training job {name} has no container"
        return container

    # --- HTTP --------------------------------------------------------------------------------

    def _upstream(
        self, method: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        """moto's status, end-to-end headers and body for one request."""
        connection = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            connection.request(method, path, body=body,
                               headers={k: v for k, v in headers.items() if k.lower() not in _HOP_BY_HOP})
            response = connection.getresponse()
            answer_headers = {k: v for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP}
            return response.status, answer_headers, response.read()
        finally:
            connection.close()

    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        headers = dict(request.headers.items())
        target = request.headers.get("X-Amz-Target", "")
        operation = target.removeprefix(_TARGET_PREFIX) if target.startswith(_TARGET_PREFIX) else ""
        handler = self._handlers.get(operation)
        if handler is None:
            status, answer_headers, answer = self._upstream(request.command, request.path, body, headers)
        else:
            try:
                params = json.loads(body or b"{}")
                output = handler(params, headers)
                status, answer_headers, answer = 200, {}, answer_json(self._model, operation, output)
            except StandInError as error:
                status, answer_headers = error.status, {}
                answer = json.dumps({"__type": error.code, "message": error.message}).encode()
            except Exception as exc:  # a stand-in bug: the client sees a 500, the test sees errors
                self.errors.append(f"{operation}: {exc}")
                status, answer_headers = 500, {}
                answer = json.dumps({"__type": "InternalFailure", "message": str(exc)}).encode()
            answer_headers["Content-Type"] = "application/x-amz-json-1.1"
        request.send_response(status)
        for name, value in answer_headers.items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(answer)))
        request.end_headers()
        if request.command != "HEAD":
            request.wfile.write(answer)

    def _check_request(self, operation: str, params: dict[str, Any]) -> None:
        report = ParamValidator().validate(params, self._model.operation_model(operation).input_shape)
        if report.has_errors():
            raise StandInError("ValidationException", report.generate_report())

    def _call_moto(self, operation: str, params: Mapping[str, Any], headers: Mapping[str, str]) -> dict[str, Any]:
        """moto's answer to operation, parsed as botocore parses it (timestamps as datetimes)."""
        status, answer_headers, body = self._upstream(
            "POST", "/", json.dumps(params, default=lambda value: value.timestamp()).encode(),
            {**headers, "X-Amz-Target": _TARGET_PREFIX + operation},
        )
        operation_model = self._model.operation_model(operation)
        parsed = self._parser.parse({"status_code": status, "headers": answer_headers, "body": body},
                                    operation_model.output_shape)
        if status != 200:
            error = parsed.get("Error", {})
            raise StandInError(error.get("Code", "InternalFailure"), error.get("Message", ""), status)
        parsed.pop("ResponseMetadata", None)
        return parsed

    # --- training jobs -----------------------------------------------------------------------

    def _create_training_job(self, params: dict[str, Any], headers: dict[str, str], *,
                             tuning_job: str | None = None, tuned: dict[str, str] | None = None,
                             planned_objective: float | None = None, jobs_at_once: int = 1) -> dict[str, Any]:
        output = self._call_moto("CreateTrainingJob", params, headers)
        name = params["TrainingJobName"]
        run = _Run(describes_left=self.describes_per_run, arn=output["TrainingJobArn"],
                   metric_definitions=list(params["AlgorithmSpecification"].get("MetricDefinitions", [])),
                   tuning_job=tuning_job, tuned=tuned or {}, planned_objective=planned_objective,
                   model_uri=model_artifacts_uri(params["OutputDataConfig"]["S3OutputPath"], name))
        if self.containers is not None:
            run.container = Container(self.containers, f"http://{self.upstream[0]}:{self.upstream[1]}", params,
                                      run.arn, on_phase=self._on_phase, on_end=self._on_end,
                                      on_error=self.errors.append, jobs_at_once=jobs_at_once)
            run.enter("Starting", "Preparing the instances for training")
        with self._lock:
            self._runs[name] = run
            if run.container is not None and not self._closing:
                run.container.start()
        return output

    def _on_phase(self, name: str, secondary: str, message: str) -> None:
        with self._lock:
            run = self._runs.get(name)
            if run is None or run.status != "InProgress":  # a stopping job stays Stopping
                return
            run.enter(secondary, message)
            if secondary == "Downloading":
                run.started = run.modified

    def _on_end(self, name: str, outcome: Outcome) -> None:
        with self._lock:
            run = self._runs.get(name)
            if run is None:
                return
            run.enter(outcome.status, _END_MESSAGES[outcome.status])
            run.transitions[-1]["EndTime"] = run.transitions[-1]["StartTime"]
            run.status, run.ended, run.modified = outcome.status, outcome.ended, outcome.ended
            run.failure_reason, run.final_metrics = outcome.failure_reason, outcome.final_metrics
            tuning = self._tunings.get(run.tuning_job or "")
            if tuning is None:
                return
            tuning.launching -= 1
            if outcome.status != "Failed":
                run.objective = next((m["Value"] for m in outcome.final_metrics
                                      if m["MetricName"] == tuning.objective_metric), None)
        self._launch_trials(run.tuning_job or "")

    def _describe_training_job(self, params: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        output = self._call_moto("DescribeTrainingJob", params, headers)
        with self._lock:
            run = self._runs.get(params["TrainingJobName"])
            if run is not None:
                run.tick()
                self._overlay_training_job(output, run)
        return output

    def _overlay_training_job(self, d: dict[str, Any], run: _Run) -> None:
        d["TrainingJobStatus"], d["SecondaryStatus"] = run.status, run.secondary or _SECONDARY[run.status]
        d["AlgorithmSpecification"]["MetricDefinitions"] = run.metric_definitions  # moto writes its own
        d.pop("FinalMetricDataList", None)
        d.pop("TrainingEndTime", None)
        if run.ended is not None:
            d["TrainingEndTime"] = d["LastModifiedTime"] = run.ended
        if run.tuning_job is not None:
            d["TuningJobArn"] = self._tunings[run.tuning_job].arn
            if run.container is None and run.status == "Completed" and run.objective is not None:
                metric = self._tunings[run.tuning_job].objective_metric
                d["FinalMetricDataList"] = [{"MetricName": metric, "Value": run.objective, "Timestamp": run.ended}]
        if run.container is None:
            return
        d["ModelArtifacts"] = {"S3ModelArtifacts": run.model_uri}
        d["SecondaryStatusTransitions"] = [dict(t) for t in run.transitions]  # moto's are made up
        d["LastModifiedTime"] = run.modified
        d.pop("TrainingStartTime", None)
        if run.started is not None:
            d["TrainingStartTime"] = run.started
            if run.ended is not None:
                d["TrainingTimeInSeconds"] = d["BillableTimeInSeconds"] = max(
                    1, round((run.ended - run.started).total_seconds()))
        if run.final_metrics:
            d["FinalMetricDataList"] = [dict(m) for m in run.final_metrics]
        if run.failure_reason:
            d["FailureReason"] = run.failure_reason

    def _list_training_jobs(self, params: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        """moto filters by name and time but ignores SortBy and SortOrder, and would filter on its
        own statuses: it lists every match, and the stand-in filters, sorts and pages."""
        paging = {k: params.pop(k) for k in _PAGING if k in params}
        summaries = self._call_moto("ListTrainingJobs", params, headers)["TrainingJobSummaries"]
        with self._lock:
            for summary in summaries:
                run = self._runs.get(summary["TrainingJobName"])
                if run is None:
                    continue
                summary["TrainingJobStatus"] = run.status
                summary.pop("TrainingEndTime", None)
                if "SecondaryStatus" in summary:
                    summary["SecondaryStatus"] = run.secondary or _SECONDARY[run.status]
                if run.modified is not None:
                    summary["LastModifiedTime"] = run.modified
                if run.ended is not None:
                    summary["TrainingEndTime"] = summary["LastModifiedTime"] = run.ended
        return _page(summaries, paging, "TrainingJobSummaries", default_sort="CreationTime")

    def _stop_training_job(self, params: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        self._check_request("StopTrainingJob", params)
        name = params["TrainingJobName"]
        if self.authorizer is not None:
            authorization = {k.lower(): v for k, v in headers.items()}.get("authorization")
            denial = self.authorizer.denial(authorization, "sagemaker:StopTrainingJob", lambda account, region:
                                            f"arn:aws:sagemaker:{region}:{account}:training-job/{name.lower()}")
            if denial:
                raise StandInError("AccessDeniedException", denial)
        with self._lock:
            run = self._runs.get(name)
            if run is None:
                raise StandInError("ResourceNotFound", f"Requested resource not found: training job {name}")
            if run.status != "InProgress":
                raise StandInError("ValidationException",
                                   f"The request was rejected because the training job is in status {run.status}.")
            run.stop()
        return {}

    # --- tuning jobs -------------------------------------------------------------------------

    def _create_tuning_job(self, params: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        output = self._call_moto("CreateHyperParameterTuningJob", params, headers)
        name = params["HyperParameterTuningJobName"]
        config = params["HyperParameterTuningJobConfig"]
        objective = config.get("HyperParameterTuningJobObjective") or {}
        tuning = _Tuning(arn=output["HyperParameterTuningJobArn"], objective_type=objective.get("Type", "Maximize"),
                         objective_metric=objective.get("MetricName", ""), trials=[])
        with self._lock:
            self._tunings[name] = tuning
        definition = params.get("TrainingJobDefinition")
        if definition is None:  # several TrainingJobDefinitions: not stood in for
            return output
        trials = [(f"{name}-{index + 1:03d}-{hashlib.sha1(f'{name}/{index}'.encode()).hexdigest()[:8]}", tuned)
                  for index, tuned in enumerate(_tuned_values(config))]
        if self.containers is not None:
            with self._lock:
                tuning.pending, tuning.definition, tuning.headers = trials, definition, headers
                tuning.max_parallel = (config.get("ResourceLimits") or {}).get("MaxParallelTrainingJobs", 1)
            self._launch_trials(name)
            return output
        for index, (trial, tuned) in enumerate(trials):
            self._create_training_job(self._trial_request(definition, trial, tuned, tuning), headers,
                                      tuning_job=name, tuned=tuned, planned_objective=0.5 + index / 100)
            with self._lock:
                tuning.trials.append(trial)
        return output

    def _trial_request(self, definition: Mapping[str, Any], trial: str, tuned: dict[str, str],
                       tuning: _Tuning) -> dict[str, Any]:
        """The CreateTrainingJob request of one trial of a TrainingJobDefinition."""
        creatable = set(self._model.operation_model("CreateTrainingJob").input_shape.members)
        request = {k: v for k, v in definition.items() if k in creatable}
        request["TrainingJobName"] = trial
        request["HyperParameters"] = {**definition.get("StaticHyperParameters", {}), **tuned,
                                      "_tuning_objective_metric": tuning.objective_metric}
        return request

    def _launch_trials(self, name: str) -> None:
        """Container mode: launches pending trials while fewer than MaxParallelTrainingJobs run."""
        while True:
            with self._lock:
                tuning = self._tunings.get(name)
                if (tuning is None or self._closing or tuning.stop_requested or not tuning.pending
                        or tuning.launching >= tuning.max_parallel):
                    return
                trial, tuned = tuning.pending.pop(0)
                tuning.launching += 1
            try:
                self._create_training_job(self._trial_request(tuning.definition, trial, tuned, tuning),
                                          tuning.headers, tuning_job=name, tuned=tuned,
                                          jobs_at_once=tuning.max_parallel)
            except Exception as exc:  # a stand-in fault: the test hears of it
                self.errors.append(f"launching trial {trial}: {exc}")
                with self._lock:
                    tuning.launching -= 1
                return
            with self._lock:
                tuning.trials.append(trial)

    def _tuning(self, name: str) -> _Tuning:
        tuning = self._tunings.get(name)
        if tuning is None:
            raise StandInError("ResourceNotFound", f"Requested resource not found: tuning job {name}")
        return tuning

    def _tuning_status(self, tuning: _Tuning) -> tuple[str, datetime | None]:
        runs = [self._runs[t] for t in tuning.trials]
        waiting = tuning.launching > 0 or (tuning.pending and not tuning.stop_requested)
        if waiting or any(r.status in _ACTIVE for r in runs):
            return ("Stopping" if tuning.stop_requested else "InProgress"), None
        ended = max((r.ended for r in runs if r.ended is not None), default=_now())
        return ("Stopped" if tuning.stop_requested else "Completed"), ended

    def _counters(self, tuning: _Tuning) -> tuple[dict[str, int], dict[str, int]]:
        runs = [self._runs[t] for t in tuning.trials]
        status = {"Completed": 0, "InProgress": 0, "RetryableError": 0, "NonRetryableError": 0, "Stopped": 0}
        objective = {"Succeeded": 0, "Pending": 0, "Failed": 0}
        for run in runs:
            status[{"Stopping": "InProgress", "Failed": "NonRetryableError"}.get(run.status, run.status)] += 1
            objective[run.objective_status] += 1
        return status, objective

    def _overlay_tuning_job(self, d: dict[str, Any], tuning: _Tuning) -> None:
        d["HyperParameterTuningJobStatus"], ended = self._tuning_status(tuning)
        d["TrainingJobStatusCounters"], d["ObjectiveStatusCounters"] = self._counters(tuning)
        d.pop("HyperParameterTuningEndTime", None)
        if ended is not None:
            d["HyperParameterTuningEndTime"] = d["LastModifiedTime"] = ended

    def _describe_tuning_job(self, params: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        output = self._call_moto("DescribeHyperParameterTuningJob", params, headers)
        for made_up in ("BestTrainingJob", "OverallBestTrainingJob", "TuningJobCompletionDetails", "ConsumedResources"):
            output.pop(made_up, None)
        if not output.get("FailureReason"):
            output.pop("FailureReason", None)
        with self._lock:
            tuning = self._tunings.get(params["HyperParameterTuningJobName"])
            if tuning is not None:
                for trial in tuning.trials:
                    self._runs[trial].tick()
                self._overlay_tuning_job(output, tuning)
                scored = [self._trial_summary(t) for t in tuning.trials
                          if self._runs[t].objective is not None]
                if scored:
                    pick = max if tuning.objective_type == "Maximize" else min
                    output["BestTrainingJob"] = pick(
                        scored, key=lambda s: s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"])
        return output

    def _list_tuning_jobs(self, params: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        wanted = params.pop("StatusEquals", None)  # moto would filter on its own statuses
        output = self._call_moto("ListHyperParameterTuningJobs", params, headers)  # moto sorts and pages these
        with self._lock:
            for summary in output["HyperParameterTuningJobSummaries"]:
                tuning = self._tunings.get(summary["HyperParameterTuningJobName"])
                if tuning is not None:
                    self._overlay_tuning_job(summary, tuning)
        if wanted is not None:  # a page may hold fewer than MaxResults, as AWS allows
            output["HyperParameterTuningJobSummaries"] = [s for s in output["HyperParameterTuningJobSummaries"]
                                                          if s["HyperParameterTuningJobStatus"] == wanted]
        return output

    def _stop_tuning_job(self, params: dict[str, Any], _headers: dict[str, str]) -> dict[str, Any]:
        self._check_request("StopHyperParameterTuningJob", params)
        name = params["HyperParameterTuningJobName"]
        with self._lock:
            tuning = self._tuning(name)
            status, _ended = self._tuning_status(tuning)
            if status != "InProgress":
                raise StandInError("ValidationException",
                                   f"The request was rejected because the tuning job is in status {status}.")
            tuning.stop_requested = True
            for trial in tuning.trials:
                if self._runs[trial].status == "InProgress":
                    self._runs[trial].stop()
        return {}

    def _trial_summary(self, trial: str) -> dict[str, Any]:
        run = self._runs[trial]
        summary: dict[str, Any] = {
            "TrainingJobName": trial, "TrainingJobArn": run.arn, "TuningJobName": run.tuning_job,
            "CreationTime": run.created, "TrainingStartTime": run.created, "TrainingJobStatus": run.status,
            "TunedHyperParameters": run.tuned, "ObjectiveStatus": run.objective_status,
        }
        if run.container is not None:
            summary["TrainingStartTime"] = run.started or run.created
        if run.ended is not None:
            summary["TrainingEndTime"] = run.ended
        if run.failure_reason:
            summary["FailureReason"] = run.failure_reason
        if run.objective is not None:
            tuning = self._tunings[run.tuning_job or ""]
            summary["FinalHyperParameterTuningJobObjectiveMetric"] = {
                "Type": tuning.objective_type, "MetricName": tuning.objective_metric, "Value": run.objective}
        return summary

    def _list_trials(self, params: dict[str, Any], _headers: dict[str, str]) -> dict[str, Any]:
        self._check_request("ListTrainingJobsForHyperParameterTuningJob", params)
        with self._lock:
            tuning = self._tuning(params["HyperParameterTuningJobName"])
            summaries = [self._trial_summary(t) for t in tuning.trials]
        if params.get("SortBy") == "FinalObjectiveMetricValue":  # trials without an objective are left out
            summaries = [s for s in summaries if "FinalHyperParameterTuningJobObjectiveMetric" in s]
        return _page(summaries, params, "TrainingJobSummaries", default_sort="Name")


def _page(
    summaries: list[dict[str, Any]], params: Mapping[str, Any], member: str, *, default_sort: str
) -> dict[str, Any]:
    """One page of training job summaries as a List* operation answers: StatusEquals, SortBy
    (default default_sort), SortOrder (default Ascending), MaxResults (default 10), NextToken."""
    if "StatusEquals" in params:
        summaries = [s for s in summaries if s["TrainingJobStatus"] == params["StatusEquals"]]
    keys: dict[str, Callable[[dict[str, Any]], Any]] = {
        "Name": lambda s: s["TrainingJobName"],
        "CreationTime": lambda s: (s["CreationTime"], s["TrainingJobName"]),
        "Status": lambda s: (s["TrainingJobStatus"], s["TrainingJobName"]),
        "FinalObjectiveMetricValue": lambda s: s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"],
    }
    ordered = sorted(summaries, key=keys[params.get("SortBy", default_sort)],
                     reverse=params.get("SortOrder", "Ascending") == "Descending")
    start = int(params.get("NextToken") or 0)
    end = start + params.get("MaxResults", _DEFAULT_PAGE)
    output: dict[str, Any] = {member: ordered[start:end]}
    if end < len(ordered):
        output["NextToken"] = str(end)
    return output


def answer_json(model: ServiceModel, operation: str, output: dict[str, Any]) -> bytes:
    """output as operation's JSON answer (timestamps in epoch seconds).

    Raises:
        AssertionError: output breaks the operation's output shape in botocore's model.
    """
    shape = model.operation_model(operation).output_shape
    if shape is not None:
        report = ParamValidator().validate(output, shape)
        if report.has_errors():
            raise AssertionError(f"a {operation} answer that breaks botocore's model:\n{report.generate_report()}")
    return json.dumps(output, default=lambda value: value.timestamp()).encode()


def _tuned_values(config: Mapping[str, Any]) -> list[dict[str, str]]:
    """One dict of tuned values per trial: every combination for Grid, else values spread evenly."""
    ranges = config.get("ParameterRanges") or {}
    categorical = ranges.get("CategoricalParameterRanges", [])
    if config.get("Strategy") == "Grid":
        names = [r["Name"] for r in categorical]
        return [dict(zip(names, values)) for values in itertools.product(*(r["Values"] for r in categorical))]
    count = (config.get("ResourceLimits") or {}).get("MaxNumberOfTrainingJobs", 1)
    trials: list[dict[str, str]] = []
    for index in range(count):
        fraction = (index + 1) / (count + 1)
        tuned = {r["Name"]: r["Values"][index % len(r["Values"])] for r in categorical}
        for r in ranges.get("ContinuousParameterRanges", []):
            low, high = float(r["MinValue"]), float(r["MaxValue"])
            tuned[r["Name"]] = repr(low + (high - low) * fraction)
        for r in ranges.get("IntegerParameterRanges", []):
            low, high = int(r["MinValue"]), int(r["MaxValue"])
            tuned[r["Name"]] = str(round(low + (high - low) * fraction))
        trials.append(tuned)
    return trials
