"""The Debugger's rules evaluated inside the job, so they act with no console running.

On SageMaker and EC2 the console may be closed (a laptop asleep) while a job trains; a rule
that fires must still reach its actions. With ``--debug-rules-in-job true`` and a
``--debug-event-bus``, the debug hook starts this process beside the training script on rank 0
(``debug_hook.attach``)::

    python job_rules.py --trial OUT_DIR --job-name NAME --bus BUS --rules TEXT --training-pid PID

Every ``--poll-s`` seconds it reads what the hook wrote (a folder, or an ``s3://`` trial copied
into a scratch folder by ``s3_sync.S3Mirror``) with smdebug, runs the rules on the new steps
(``debug_rules``), and for each rule that fires puts a "Debugger Rule Fired" event on the bus
(``rule_events``; the job's role needs ``events:PutEvents`` on it) and writes a record beside
the trial, ``rule-events/<rule>.json`` (the entry, its event id or the error), which the
console's evaluator reads to show the event. SIGTERM (the hook closing at the end of training)
or the training process ending starts a final pass (each rule's ``finalize``), then it exits.
It never stops the job itself: the actions the event reaches do. Standard library, smdebug and
boto3; nothing from the console. Exit code 0, also when the trial could not be read.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import debug_config

debug_config.prepare_smdebug_import()  # before smdebug and numpy

import rule_events  # noqa: E402
from debug_rules import RULES, ConsoleRule, RuleFailure, run_steps  # noqa: E402
from s3_sync import S3Mirror, s3_client, split_s3_uri  # noqa: E402

LOG = logging.getLogger("job_rules")
POLL_S = 5.0


class Evaluator:
    """The chosen rules over one trial, one poll at a time; each fired rule sent once.

    Args:
        trial: the trial folder or ``s3://`` URI the hook writes.
        put: puts one ``PutEvents`` entry on the bus and returns its event id (raises when refused).
        scratch: where an ``s3://`` trial is copied.
    """

    def __init__(self, trial: str, job_name: str, bus: str, specs: Sequence[debug_config.RuleSpec],
                 put: Any, scratch: Path) -> None:
        self.trial_uri, self.job_name, self.bus, self.put = trial, job_name, bus, put
        self.specs = {spec.name: spec for spec in specs}
        self.mirror = S3Mirror(trial, scratch / "trial") if trial.startswith("s3://") else None
        self.folder = self.mirror.folder if self.mirror is not None else Path(trial)
        self.trial: Any = None
        self.rules: dict[str, ConsoleRule] = {}
        self.done: set[str] = set()
        self.last_step = -1

    def poll(self, *, final: bool = False) -> None:
        """Reads the new steps and runs the rules on them; ``final`` also finalizes every rule."""
        if self.mirror is not None:
            self.mirror.sync()
        if self.trial is None and not self._open():
            return
        from smdebug.analysis.utils import no_refresh, refresh

        with refresh(self.trial):
            self.trial.maybe_refresh()
        with no_refresh(self.trial):
            steps = [s for s in self.trial.steps() if s > self.last_step]
            for name, rule in self.rules.items():
                if name in self.done:
                    continue
                try:
                    if run_steps(rule, steps) or (final and rule.finalize()):
                        self._fired(name, rule)
                except RuleFailure as exc:
                    LOG.warning("rule %s: %s", name, exc)
                    self.done.add(name)
        if steps:
            self.last_step = steps[-1]

    def _open(self) -> bool:
        if not any(self.folder.glob("collections/*/*_collections.json")):
            return False
        from smdebug.trials import create_trial

        self.trial = create_trial(str(self.folder))
        for name, spec in self.specs.items():
            try:
                self.rules[name] = RULES[name](self.trial, **spec.params)
            except Exception as exc:  # a bad parameter: this rule only (the console says why)
                LOG.warning("rule %s cannot start: %s", name, exc)
        LOG.info("job rules: evaluating %s on %s", ", ".join(self.rules), self.trial_uri)
        return True

    def _fired(self, name: str, rule: ConsoleRule) -> None:
        finding = rule.finding
        assert finding is not None
        self.done.add(name)
        entry = rule_events.fired_entry(job=self.job_name, rule=name, step=finding.step, tensor=finding.tensor,
                                        finding=finding.message, stop_training=self.specs[name].stop_training,
                                        bus=self.bus)
        record: dict[str, Any] = {"rule": name, "sent_at": time.time(), "bus": self.bus, "entry": entry}
        try:
            record["event_id"] = self.put(entry)
            LOG.info("job rules: %s fired at step %d; event %s put on the %s bus", name, finding.step,
                     record["event_id"], self.bus)
        except Exception as exc:  # the role may lack events:PutEvents: said in the log and the record
            record["error"] = f"{type(exc).__name__}: {exc}"
            LOG.warning("job rules: %s fired at step %d; the event could not be put: %s", name, finding.step,
                        record["error"])
        self._write_record(name, record)

    def _write_record(self, name: str, record: dict[str, Any]) -> None:
        data = json.dumps(record, sort_keys=True).encode()
        try:
            if self.mirror is not None:
                bucket, prefix = split_s3_uri(self.trial_uri)
                key = f"{prefix}{rule_events.RECORDS_FOLDER}/{name}.json"
                s3_client().put_object(Bucket=bucket, Key=key, Body=data)
            else:
                folder = self.folder / rule_events.RECORDS_FOLDER
                folder.mkdir(parents=True, exist_ok=True)
                partial = folder / f".{name}.json.partial"
                partial.write_bytes(data)
                partial.replace(folder / f"{name}.json")
        except Exception as exc:  # the event went out: a lost record only hides it from the console
            LOG.warning("job rules: the record of %s could not be written: %s", name, exc)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Evaluate the Debugger's rules inside the job.")
    add = parser.add_argument
    add("--trial", required=True, help="the trial folder or s3:// URI the debug hook writes")
    add("--job-name", required=True)
    add("--bus", default=rule_events.DEFAULT_BUS, help="the EventBridge bus fired rules go to")
    add("--rules", required=True, help="the job's --debug-rules")
    add("--training-pid", type=int, required=True, help="the training process: its end starts the final pass")
    add("--poll-s", type=float, default=POLL_S)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout, force=True)
    for chatty in ("botocore", "boto3", "s3transfer", "urllib3", "smdebug"):
        logging.getLogger(chatty).setLevel(logging.ERROR)
    args = build_parser().parse_args(argv)
    finishing = []
    signal.signal(signal.SIGTERM, lambda *_: finishing.append(True))
    import boto3

    client = boto3.client("events")

    def put(entry: dict[str, Any]) -> str:
        return rule_events.sent_event_id(client.put_events(Entries=[entry]))

    with tempfile.TemporaryDirectory(prefix="job-rules-") as scratch:
        evaluator = Evaluator(args.trial, args.job_name, args.bus, debug_config.parse_rules(args.rules), put,
                              Path(scratch))
        try:
            while not finishing and _alive(args.training_pid):
                evaluator.poll()
                deadline = time.monotonic() + args.poll_s
                while not finishing and time.monotonic() < deadline:
                    time.sleep(0.1)
            evaluator.poll(final=True)
        except Exception as exc:  # never a failed job because of its rules: said in its log
            LOG.warning("job rules: the evaluation stopped: %s: %s", type(exc).__name__, exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
