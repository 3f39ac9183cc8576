"""The Debugger's collector and rule evaluator for one training job (a sidecar beside it).

SageMaker runs a rule job beside each training job; locally the job supervisor starts this
module with the job environment's interpreter::

    python -m analysers.debug_sidecar --job-dir D --database DB --job-name N --training-pid P [--trial PATH]

and, for a SageMaker training job, the console starts it on its own machine with
``--sagemaker-job --trial s3://...`` (``core.debugger.evaluator``): it then watches the job
through the SageMaker API (one DescribeTrainingJob per poll, every ``--poll-s`` seconds)
instead of a process.

It reads the job's hyperparameters (``SM_HPS``, else ``input/config/hyperparameters.json``),
opens the trial that ``train.py`` writes (``debug_config.resolve_out_dir``, or ``--trial``, a
folder or ``s3://`` URI) with ``smdebug.trials.create_trial`` as soon as its collections file
exists, and every few seconds until the training process ``P`` (or the SageMaker job) has
ended, then once more:

- copies each new step's reductions and scalar values into the job store
  (``core.debugger.DebugStore``), thinning the series when they grow past a limit;
- runs the chosen rules (``--debug-rules``, else ``debug_config.default_rules``) on the new
  steps and records each rule's status, the step and tensor that fired it, and a notification;
  a rule with the StopTraining action stops the job (its supervisor gets SIGTERM, as
  ``LocalJobRunner.stop`` does);
- with ``--debug-event-bus`` (rule actions deployed), puts each fired rule on that bus instead
  (``entrypoints/rule_events.py``: the local bus, or EventBridge for a SageMaker job), whose action
  function stops the job; with ``--debug-rules-in-job`` too, the job evaluates its rules and puts
  the events itself (``entrypoints/job_rules.py``), and this evaluator records the events the job
  wrote beside its trial (``rule-events/``) and acts on nothing.

An ``s3://`` trial is never read through smdebug's S3 trial, which polls S3 per tensor and
step (about 4,300 requests for a 146-object trial) and waits forever for a collections file
that a job which failed at start-up never writes. Each poll copies what is new under the
prefix into ``<job-dir>/debug-output`` instead (``s3_sync.S3Mirror``: one listing per 1,000
objects, one download per new object) and smdebug reads that local copy.

A missing or empty debug folder (or S3 prefix), a capture that failed, or a rule whose data
were never saved end with a message that says why. Exit code 0, also when the trial could not
be read.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import resource
import signal
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import analysers
from entrypoints import debug_config, rule_events

if __name__ == "__main__":
    analysers.run_without_torch()  # before smdebug
debug_config.prepare_smdebug_import()  # before numpy and smdebug

import numpy as np  # noqa: E402
from smdebug.analysis.utils import no_refresh, refresh  # noqa: E402
from smdebug.core.modes import ModeKeys  # noqa: E402
from smdebug.exceptions import SMDebugError  # noqa: E402

from analysers.sagemaker_job import SageMakerJob  # noqa: E402
from core.debugger import SERIES_COLUMNS, DebugStore, RuleResult, RuleStatus, SeriesRow, TrialState  # noqa: E402
from core.errors import ConsoleError  # noqa: E402
from core.jobstore import JobStore  # noqa: E402
from core.processes import is_process_alive, signal_process  # noqa: E402
from core.types import JobStatus  # noqa: E402
from entrypoints.debug_rules import RULES, ConsoleRule, RuleFailure, run_steps  # noqa: E402
from entrypoints.s3_sync import S3Mirror  # noqa: E402

LOG = logging.getLogger("debug_sidecar")
POLL_S = 3.0
"""Between polls, unless ``--poll-s`` says otherwise (a local job: reading its own folder is cheap)."""
MIRROR_FOLDER = "debug-output"
"""Where an ``s3://`` trial is copied, under the job folder."""
MAX_REDUCED_STEPS = 500  # per job, for weights/biases/gradients/activations; then every other step goes
MAX_SCALAR_STEPS = 20000  # per job, for losses
SERIES_COLLECTIONS = ("losses", *debug_config.REDUCED_COLLECTIONS, *debug_config.ACTIVATION_COLLECTIONS)
REDUCED = tuple(c for c in SERIES_COLLECTIONS if c != "losses")


# --- configuration --------------------------------------------------------------------------


def hyperparameters(job_dir: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """The job's hyperparameters as SageMaker passes them (strings)."""
    if environ.get("SM_HPS"):
        return {k: str(v) for k, v in json.loads(environ["SM_HPS"]).items()}
    path = job_dir / "input" / "config" / "hyperparameters.json"
    return {k: str(v) for k, v in json.loads(path.read_text()).items()} if path.is_file() else {}


def debug_settings(hps: Mapping[str, str]) -> argparse.Namespace:
    """The ``--debug-*`` values of the hyperparameters, parsed as ``train.py`` parses them.

    Raises:
        argparse.ArgumentError: an invalid value (the training script refuses it too).
    """
    parser = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    debug_config.add_arguments(parser)
    args: list[str] = []
    for key, value in hps.items():
        if key.startswith("debug"):
            args += [f"--{key}", value]
    return parser.parse_known_args(args)[0]


# --- stopping the job -----------------------------------------------------------------------


class Stopper:
    """Stops a local job as ``LocalJobRunner.stop`` does: Stopping, then SIGTERM to its supervisor."""

    def __init__(self, jobs: JobStore, job_name: str) -> None:
        self.jobs = jobs
        self.job_name = job_name

    def stop(self) -> str | None:
        """Asks the job to stop; returns None, or why it could not."""
        try:
            runtime = self.jobs.job_runtime(self.job_name)
            job = self.jobs.get_job(self.job_name)
        except ConsoleError as exc:
            return str(exc)
        if job.status.is_terminal:
            return f"the job is already {job.status.value}"
        pid = runtime.get("supervisor_pid")
        marker = str(runtime.get("job_dir") or "")
        if not is_process_alive(pid, marker):
            return "the job's supervisor process is not running"
        self.jobs.update_job(self.job_name, status=JobStatus.STOPPING, secondary_status="Stopping")
        signal_process(pid, marker, signal.SIGTERM)
        return None


# --- copying series -------------------------------------------------------------------------


class Thinner:
    """Keeps at most ``limit`` steps of a group of series: past it, every other step goes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.stride = 1
        self.seen = 0
        self.kept: list[int] = []

    def keep(self, step: int) -> bool:
        """Whether to store ``step`` (call once per saved step, in order)."""
        keep = self.seen % self.stride == 0
        self.seen += 1
        if keep:
            self.kept.append(step)
        return keep

    def over(self) -> bool:
        """True once too many steps are kept; then ``kept`` is halved and the stride doubled."""
        if len(self.kept) <= self.limit:
            return False
        self.kept = self.kept[::2]
        self.stride *= 2
        return True


class Collector:
    """Copies each step's reductions and scalars from the trial into the store."""

    def __init__(self, store: DebugStore, job_name: str, trial: Any, order: Sequence[str]) -> None:
        self.store = store
        self.job_name = job_name
        self.trial = trial
        self.position = {name: i for i, name in enumerate(order)}
        self.collection_of: dict[str, str | None] = {}
        self.reduced = Thinner(MAX_REDUCED_STEPS)
        self.scalars = Thinner(MAX_SCALAR_STEPS)

    def ingest(self, steps: Sequence[int]) -> int:
        """Stores the rows of ``steps``; returns how many tensor-step rows were written."""
        rows: list[SeriesRow] = []
        for step in steps:
            rows += self._step(step)
        written = self.store.add_series(self.job_name, rows)
        if self.reduced.over():
            self.store.thin_series(self.job_name, REDUCED, self.reduced.kept)
        if self.scalars.over():
            self.store.thin_series(self.job_name, ("losses",), self.scalars.kept)
        return written

    def _step(self, step: int) -> list[SeriesRow]:
        mode, mode_step = self.trial.mode_modestep(step)
        names = [(n, self._collection(n)) for n in self.trial.tensor_names(step=step)]
        names = [(n, c) for n, c in names if c is not None]
        rows: list[SeriesRow] = []
        for group, thinner in ((REDUCED, self.reduced), (("losses",), self.scalars)):
            members = [(n, c) for n, c in names if c in group]
            if members and thinner.keep(step):
                for name, collection in members:
                    row = self._row(name, collection, step, mode, mode_step)
                    if row is not None:
                        rows.append(row)
        return rows

    def _row(self, name: str, collection: str, step: int, mode: Any, mode_step: int) -> SeriesRow | None:
        tensor = self.trial.tensor(name)
        values: dict[str, float | None] = {}
        try:
            for (red, absolute), value in tensor.reduction_values(mode_step, mode=mode).items():
                values[("abs_" if absolute else "") + red] = _finite_or_none(float(np.asarray(value)))
        except SMDebugError:
            pass
        if not values and collection == "losses":
            try:
                values["value"] = _finite_or_none(float(np.mean(tensor.value(mode_step, mode=mode))))
            except SMDebugError:
                pass
        values = {k: v for k, v in values.items() if k in SERIES_COLUMNS}
        if not values:
            return None
        mode_name = mode.name if isinstance(mode, ModeKeys) else str(mode)
        return SeriesRow(name, collection, mode_name, step, mode_step, values)

    def _collection(self, name: str) -> str | None:
        if name not in self.collection_of:
            self.collection_of.update(self._membership())
            self.collection_of.setdefault(name, None)
            self.store.add_tensors(self.job_name, {
                n: (c, self.position.get(_parameter(n), len(self.position))) for n, c in self.collection_of.items() if c
            })
        return self.collection_of[name]

    def _membership(self) -> dict[str, str]:
        members: dict[str, str] = {}
        available = self.trial.collections()
        for collection in reversed(SERIES_COLLECTIONS):  # the first listed wins
            if collection in available:
                members.update(dict.fromkeys(self.trial.tensor_names(collection=collection), collection))
        return members


def _parameter(tensor: str) -> str:
    """The model-order key of a tensor: its parameter (``gradient/`` dropped) or module name."""
    return re.sub(r"_(input|output)_\d+$", "", tensor.removeprefix("gradient/"))


def _finite_or_none(value: float) -> float | None:
    return value if np.isfinite(value) else (None if np.isnan(value) else value)


# --- running the rules ----------------------------------------------------------------------


class EventBus:
    """Where fired rules go as events: ``put`` takes one ``PutEvents`` entry and returns its event id
    (raising when the bus refuses it); ``name`` is the bus named in each entry."""

    def __init__(self, name: str, put: Callable[[dict[str, Any]], str]) -> None:
        self.name = name
        self.put = put


class RuleRunner:
    """Runs the chosen rules over new steps and records their status in the store.

    Args:
        stopper: stops the job when a StopTraining rule fires; None when the job evaluates its rules
            itself (``--debug-rules-in-job``) and acts on them: this runner then only shows them.
        bus: where to put each fired rule as an event (``--debug-event-bus``); its rule actions then
            stop the job, and the stopper serves only when the event could not be put. None: no
            events, the stopper stops the job.
    """

    def __init__(self, store: DebugStore, job_name: str, specs: Sequence[debug_config.RuleSpec],
                 stopper: Stopper | SageMakerJob | None, bus: EventBus | None = None) -> None:
        self.store = store
        self.job_name = job_name
        self.specs = {spec.name: spec for spec in specs}
        self.stopper = stopper
        self.bus = bus
        self.rules: dict[str, ConsoleRule] = {}
        self.done: set[str] = set()
        self.stopped = False

    def begin(self) -> None:
        """Records every rule InProgress (or Error for invalid parameters)."""
        rows = []
        for spec in self.specs.values():
            cls = RULES[spec.name]
            row = RuleResult(self.job_name, spec.name, RuleStatus.IN_PROGRESS, time.time(),
                             parameters={**cls.defaults, **spec.params}, stop_training=spec.stop_training,
                             meaning=cls.meaning, advice=cls.advice)
            unknown = sorted(set(spec.params) - set(cls.defaults))
            if unknown:
                row = RuleResult(**{**row.__dict__, "status": RuleStatus.ERROR,
                                    "message": f"unknown parameter(s) {unknown}; known: {sorted(cls.defaults)}"})
                self.done.add(spec.name)
            rows.append(row)
        self.store.init_rules(self.job_name, rows)

    def attach(self, trial: Any) -> None:
        """Builds the rules on the opened trial."""
        for name, spec in self.specs.items():
            if name in self.done:
                continue
            try:
                self.rules[name] = RULES[name](trial, **spec.params)
            except Exception as exc:  # a bad parameter value: this rule only
                self._error(name, f"cannot start the rule: {exc}")

    def advance(self, steps: Sequence[int]) -> None:
        for name, rule in self.rules.items():
            if name in self.done:
                continue
            try:
                if run_steps(rule, steps):
                    self._fired(name, rule)
            except RuleFailure as exc:
                LOG.error("%s failed:\n%s", name, "".join(traceback.format_exception(exc.__cause__ or exc)))
                self._error(name, str(exc))
            if name not in self.done and steps:
                self.store.update_rule(self.job_name, name, evaluated_step=steps[-1])

    def finish(self, capture: Mapping[str, Any], saved: set[str]) -> None:
        """The final evaluation: finalize each rule and set its terminal status (``saved``:
        the collections the trial holds tensors of)."""
        for name, rule in self.rules.items():
            if name in self.done:
                continue
            try:
                if rule.finalize():
                    self._fired(name, rule)
                    continue
            except Exception as exc:
                LOG.error("%s failed in its final evaluation:\n%s", name, traceback.format_exc())
                self._error(name, f"the rule failed in its final evaluation: {type(exc).__name__}: {exc}")
                continue
            self._conclude(name, rule, capture, saved)

    def fail_all(self, message: str) -> None:
        """Every rule not yet concluded ends in Error with ``message``."""
        for name in self.specs:
            if name not in self.done:
                self._error(name, message, notify=False)

    def _fired(self, name: str, rule: ConsoleRule) -> None:
        finding = rule.finding
        assert finding is not None
        self.done.add(name)
        self.store.update_rule(self.job_name, name, status=RuleStatus.ISSUES_FOUND, step=finding.step,
                               tensor=finding.tensor, message=finding.message, evaluated_step=finding.step)
        stop = self.specs[name].stop_training
        self.store.notify(self.job_name, "warning", f"{name} found an issue at step {finding.step}: {finding.message}",
                          rule=name, action="StopTraining" if stop else "Notification")
        if self.stopper is None or self._put_event(name, finding, stop):
            return
        if stop and not self.stopped:
            self.stopped = True
            problem = self.stopper.stop()
            if problem:
                self.store.notify(self.job_name, "error", f"StopTraining of {name} could not stop the job: {problem}",
                                  rule=name, action="StopTraining")
            else:
                self.store.notify(self.job_name, "info", f"Stopping the job: {name} fired and its action is "
                                  "StopTraining", rule=name, action="StopTraining")

    def _put_event(self, name: str, finding: Any, stop: bool) -> bool:
        """Puts the fired rule on the bus; whether it was (then its actions stop the job, not this runner)."""
        if self.bus is None:
            return False
        entry = rule_events.fired_entry(job=self.job_name, rule=name, step=finding.step, tensor=finding.tensor,
                                        finding=finding.message, stop_training=stop, bus=self.bus.name)
        sent_at = time.time()
        try:
            event_id = self.bus.put(entry)
        except Exception as exc:  # the bus's refusal, or no bus at all: said, then the runner acts itself
            self.store.add_event(self.job_name, name, self.bus.name, entry, sent_at=sent_at, event_id=None,
                                 error=str(exc))
            self.store.notify(self.job_name, "error", f"{name}: the event could not be put on the {self.bus.name} "
                              f"bus: {exc}", rule=name, action="PutEvents")
            return False
        self.store.add_event(self.job_name, name, self.bus.name, entry, sent_at=sent_at, event_id=event_id)
        self.store.notify(self.job_name, "info", f"{name}: event {event_id} put on the {self.bus.name} bus"
                          + ("; the rule actions stop the job" if stop else ""), rule=name, action="PutEvents")
        return True

    def _conclude(self, name: str, rule: ConsoleRule, capture: Mapping[str, Any], saved: set[str]) -> None:
        self.done.add(name)
        if rule.checks:
            self.store.update_rule(self.job_name, name, status=RuleStatus.NO_ISSUES_FOUND,
                                   message=f"no issue in {rule.checks} evaluations")
            return
        missing = [c for c in rule.needs if c not in saved]
        if name == "SaturatedActivation" and capture.get("activations") and not any(
            (capture.get("activation_layers") or {}).get(k) for k in ("tanh", "sigmoid")
        ):
            self.store.update_rule(self.job_name, name, status=RuleStatus.NO_ISSUES_FOUND,
                                   message="nothing to check: the model has no tanh or sigmoid layer")
        elif missing:
            hint = ("start the job with --debug-activations true"
                    if set(missing) & set(debug_config.ACTIVATION_COLLECTIONS)
                    else f"add {', '.join(missing)} to --debug-collections")
            self._error(name, f"no data for this rule: it reads the {', '.join(missing)} collection(s), which this "
                        f"job did not save; {hint}")
        else:
            self.store.update_rule(self.job_name, name, status=RuleStatus.NO_ISSUES_FOUND,
                                   message="not enough data to judge (the run was shorter than the rule's window)")

    def _error(self, name: str, message: str, *, notify: bool = True) -> None:
        self.done.add(name)
        self.store.update_rule(self.job_name, name, status=RuleStatus.ERROR, message=message)
        if notify:
            self.store.notify(self.job_name, "error", f"{name}: {message}", rule=name)


# --- the session ------------------------------------------------------------------------------


class Session:
    """Everything the evaluator does for one job, one poll at a time.

    Args:
        out_dir: where the job writes its trial (a folder or ``s3://`` URI): recorded and named in messages.
        mirror: for an ``s3://`` trial, its local copy, brought up to date at each poll; smdebug reads that.
    """

    def __init__(self, store: DebugStore, job_name: str, out_dir: str, runner: RuleRunner, *,
                 mirror: S3Mirror | None = None, job_events: bool = False) -> None:
        self.store = store
        self.job_name = job_name
        self.out_dir = out_dir
        self.runner = runner
        self.mirror = mirror
        self.folder = mirror.folder if mirror is not None else Path(out_dir)
        self.trial: Any = None
        self.collector: Collector | None = None
        self.capture: dict[str, Any] = {}
        self.last_step = -1
        self.steps = 0
        self._sync_failing = False
        self.job_events = job_events
        self._events_read: set[str] = set()

    def begin(self) -> None:
        self.store.set_trial(self.job_name, path=self.out_dir, state=TrialState.WAITING,
                             message="waiting for the job's first saved step")
        self.runner.begin()

    def poll(self, *, final: bool, ended: str = "") -> None:
        """Reads what is new; with ``final`` (training ended) also concludes every rule.

        Args:
            ended: how the job ended (a SageMaker status such as ``Failed``), for messages; "" if unknown.
        """
        if not self._synced(final):
            return
        if self.job_events:
            self._read_job_events()
        if self.trial is None and not self._open(final, ended):
            return
        with refresh(self.trial):
            self.trial.maybe_refresh()
        with no_refresh(self.trial):
            steps = [s for s in self.trial.steps() if s > self.last_step]
            assert self.collector is not None
            self.collector.ingest(steps)
            self.runner.advance(steps)
            if final:
                saved = {c for c in self.trial.collections() if self.trial.tensor_names(collection=c)}
                self.runner.finish(self.capture, saved)
        if steps:
            self.last_step, self.steps = steps[-1], self.steps + len(steps)
        state = TrialState.COMPLETE if final else TrialState.READING
        self.store.set_trial(self.job_name, state=state, last_step=self.last_step if self.steps else None,
                             steps=self.steps, message=f"{self.steps} steps read")

    def _read_job_events(self) -> None:
        """Records the events the job's own evaluator put (``job_rules.py``: one record per fired rule)."""
        for path in sorted((self.folder / rule_events.RECORDS_FOLDER).glob("*.json")):
            if path.name in self._events_read:
                continue
            try:
                record = json.loads(path.read_text())
                rule, bus, entry = str(record["rule"]), str(record["bus"]), dict(record["entry"])
            except (OSError, ValueError, KeyError, TypeError):
                continue  # half copied: the next poll reads it whole
            self._events_read.add(path.name)
            event_id, error = record.get("event_id"), record.get("error")
            self.store.add_event(self.job_name, rule, bus, entry, sent_at=float(record.get("sent_at") or time.time()),
                                 event_id=event_id, error=error)
            if error:
                self.store.notify(self.job_name, "error", f"{rule}: the job could not put the event on the {bus} "
                                  f"bus: {error}", rule=rule, action="PutEvents")
            else:
                self.store.notify(self.job_name, "info", f"{rule}: the job put event {event_id} on the {bus} bus",
                                  rule=rule, action="PutEvents")

    def _synced(self, final: bool) -> bool:
        """Copies what is new under an ``s3://`` trial; False: S3 failed, skip this poll (the final one raises)."""
        if self.mirror is None:
            return True
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.mirror.sync()
        except (BotoCoreError, ClientError, OSError) as exc:
            if final:
                raise
            if not self._sync_failing:
                LOG.warning("reading %s failed; retrying at every poll: %s", self.out_dir, exc)
            self._sync_failing = True
            return False
        self._sync_failing = False
        return True

    def _open(self, final: bool, ended: str) -> bool:
        self.capture = _read_capture(self.folder)
        if self.capture.get("error"):
            message = f"the training script could not start the capture: {self.capture['error']}"
            self.store.set_trial(self.job_name, state=TrialState.FAILED, message=message, capture=self.capture)
            if final:
                self.runner.fail_all(message)
            return False
        if not any(self.folder.glob("collections/*/*_collections.json")):  # smdebug's create_trial would wait for it
            if final:
                self._missing(ended)
            return False
        from smdebug.trials import create_trial

        self.trial = create_trial(str(self.folder))
        self.collector = Collector(self.store, self.job_name, self.trial, self.capture.get("tensor_order") or [])
        self.runner.attach(self.trial)
        self.store.set_trial(self.job_name, state=TrialState.READING, capture=self.capture, message="reading")
        return True

    def _missing(self, ended: str) -> None:
        how = f"the job ended ({ended})" if ended else "the job ended"
        if self.mirror is not None and not self.mirror.objects:
            message = (f"{how} without writing a Debugger trial to {self.out_dir}: it may have failed before its "
                       "first step (or ran a training script without the debugger hook); see its log")
        elif self.mirror is not None:
            message = (f"{how} before the debugger hook saved anything: {self.out_dir} holds {self.mirror.objects} "
                       "object(s) but no collections file (it failed or was stopped during start-up); see its log")
        elif not self.folder.exists():
            message = (f"no debug folder: the job ended without writing {self.folder} (it ran with --debug false, "
                       "failed before its first step, or used a training script without the debugger hook)")
        else:
            message = (f"the debug folder {self.folder} holds no saved step: the job ended before the hook saved "
                       "anything (it failed or was stopped during start-up)")
        self.runner.fail_all(message)
        self.store.set_trial(self.job_name, state=TrialState.MISSING, message=message)  # concluded: rules first


def _read_capture(folder: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((folder / debug_config.CAPTURE_FILE).read_text()))
    except (OSError, ValueError):
        return {}


# --- entry point ------------------------------------------------------------------------------


def event_bus(name: str, args: argparse.Namespace) -> EventBus:
    """The bus a job's fired rules go to: EventBridge for a SageMaker job (the console's credentials
    and region, from the environment), else the local bus of the workspace that holds the job store."""
    if args.sagemaker_job:
        import boto3

        client = boto3.client("events")
        return EventBus(name, lambda entry: rule_events.sent_event_id(client.put_events(Entries=[entry])))
    from core.backend import get_backend
    from core.config import Settings

    workspace = Path(args.database).resolve().parent  # Settings.database_path: <workspace>/console.db
    actions = get_backend(Settings(workspace=workspace, job_python=Path(sys.executable))).rule_actions
    return EventBus(name, actions.put_event)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Collect a job's debugger trial and evaluate its rules.")
    add = parser.add_argument
    add("--job-dir", type=Path, required=True, help="the job folder (SAGEMAKER_BASE_DIR)")
    add("--database", type=Path, required=True, help="the console's job store")
    add("--job-name", required=True)
    add("--training-pid", type=int, default=0, help="watch this process; 0: read once and conclude")
    add("--trial", default=None,
        help=f"trial folder or s3:// URI (copied into <job-dir>/{MIRROR_FOLDER}); unset: where train.py writes it")
    add("--sagemaker-job", action="store_true",
        help="the job is a SageMaker training job: watch it and stop it through the SageMaker API")
    add("--poll-s", type=float, default=POLL_S, help="seconds between polls while the job runs")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stdout, force=True)
    logging.getLogger("smdebug").setLevel(logging.ERROR)
    args = build_parser().parse_args(argv)
    store = DebugStore(JobStore(args.database))
    environ = dict(os.environ)
    environ.setdefault("SAGEMAKER_BASE_DIR", str(args.job_dir))
    try:
        settings = debug_settings(hyperparameters(args.job_dir, environ))
        out_dir = args.trial or debug_config.resolve_out_dir(settings.debug_out_dir, environ)
    except (argparse.ArgumentError, ValueError) as exc:
        store.set_trial(args.job_name, path="", state=TrialState.FAILED,
                        message=f"invalid debugger hyperparameter: {exc}")
        return 0
    if not settings.debug:
        store.set_trial(args.job_name, path="", state=TrialState.DISABLED,
                        message="the job ran with --debug false: no tensors were saved and no rule ran")
        return 0
    specs = settings.debug_rules or debug_config.default_rules(settings.debug_activations)
    job = SageMakerJob(args.job_name) if args.sagemaker_job else None
    stopper: Stopper | SageMakerJob | None
    if job is not None:
        running, stopper = job.running, job
    else:
        running = lambda: bool(args.training_pid) and is_process_alive(args.training_pid, "")  # noqa: E731
        stopper = Stopper(store.jobs, args.job_name)
    in_job = bool(settings.debug_rules_in_job and settings.debug_event_bus)  # the job acts on its rules itself
    bus = event_bus(settings.debug_event_bus, args) if settings.debug_event_bus and not in_job else None
    runner = RuleRunner(store, args.job_name, specs, None if in_job else stopper, bus)
    mirror = S3Mirror(out_dir, args.job_dir / MIRROR_FOLDER) if out_dir.startswith("s3://") else None
    session = Session(store, args.job_name, out_dir, runner, mirror=mirror, job_events=in_job)
    session.begin()
    LOG.info("evaluating %s on %s", debug_config.format_rules(specs), out_dir)
    try:
        while running():
            session.poll(final=False)
            time.sleep(args.poll_s)
        session.poll(final=True, ended=job.status if job is not None else "")
    except Exception as exc:  # the evaluator's own failure: said in the store, never a hung job
        LOG.error("evaluator failed:\n%s", traceback.format_exc())
        message = f"the rule evaluator failed: {type(exc).__name__}: {exc}"
        store.set_trial(args.job_name, state=TrialState.FAILED, message=message)
        runner.fail_all(message)
        store.notify(args.job_name, "error", message)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    LOG.info("done: %d steps read, %.1f s of CPU%s", session.steps, usage.ru_utime + usage.ru_stime,
             f", {mirror.objects} objects copied from S3" if mirror else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
