"""Train on an EC2 (Spot) instance: the training of ``train.py``, made safe to interrupt.

The model, data, epoch loop, Debugger hook and profiler are ``train.py``'s own (same flags, same
metric lines, same ``model.pth``); this script adds what a bare instance needs:

- data from ``--data-uri`` (``s3://bucket/prefix/`` is downloaded once; a local folder is used
  as it is);
- the spot interruption notice: a thread polls IMDSv2 ``spot/instance-action`` every
  ``--notice-poll-s`` seconds (5 on EC2); a notice, like SIGTERM, ends the current batch, writes
  a checkpoint and exits with 143 before the instance is reclaimed;
- a checkpoint after every epoch and on a notice or SIGTERM, written atomically (temporary file,
  fsync, rename) and mirrored to ``--checkpoint-uri``; on start the newest checkpoint (local, or
  the mirrored one when there is none here) is restored: model, optimizer, scheduler, epoch,
  position in the epoch and every RNG state, so a resumed run continues exactly;
- ``model.tar.gz`` (``model.pth`` at its root, as SageMaker packs ``SM_MODEL_DIR``) written to
  the output folder and copied to ``--output-uri`` with ``metrics.json``, the event log and the
  Debugger and Profiler output, so the model deploys like a SageMaker job's;
- ``progress.json`` beside the checkpoint (epoch, batch, global step; rewritten every
  ``PROGRESS_EVERY_S``) and ``spot-events.jsonl`` (start, resume, notice, checkpoint, done) so
  the console can measure the work an interruption lost.

Log lines for the console (besides ``train.py``'s)::

    spot: start step=0 steps_per_epoch=50 epochs=2
    spot: resumed epoch=1 batch=12 step=62 steps_per_epoch=50
    spot: interruption notice action=terminate time=2026-11-29T18:02:00Z
    spot: checkpoint epoch=1 batch=12 step=62 reason=notice
    spot: model uploaded to s3://bucket/prefix/spot-runs/run-1/output/model.tar.gz

Exit codes: 0 done, 143 stopped by a notice or SIGTERM (resume by starting again), 1 error.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sys
import tarfile
import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import debug_config
import debug_hook
import profiling
import shutdown
import train
from checkpoints import CHECKPOINT_FILE, CheckpointError, atomic_torch_save, remove_stale_temps
from hyperparameters import parse_bool
from imagedata import DataError
from imagemodels import WeightsError
from spot_notice import DEFAULT_METADATA_URL, POLL_INTERVAL_S, InterruptionNotice, MetadataClient, NoticePoller

LOG = logging.getLogger("train.spot")
MODEL_ARCHIVE = "model.tar.gz"
EVENTS_FILE = "spot-events.jsonl"
PROGRESS_FILE = "progress.json"
PROGRESS_EVERY_S = 0.5
EXIT_INTERRUPTED = train.EXIT_SIGTERM
DATA_MARKER = ".smc-download-complete"


# --- where things live: a local folder or an S3 prefix -------------------------------------------


class Location:
    """A folder given as a local path, a ``file://`` URI or an ``s3://bucket/prefix/`` URI.

    Uploads and downloads of single files are atomic on both: S3 PUTs are, and local copies go
    through a temporary file and a rename.
    """

    def __init__(self, uri: str) -> None:
        self.uri = uri.rstrip("/")
        parsed = urlparse(uri)
        self.is_s3 = parsed.scheme == "s3"
        if self.is_s3:
            if not parsed.netloc:
                raise DataError(f"{uri}: an S3 URI needs a bucket (s3://bucket/prefix/)")
            self.bucket = parsed.netloc
            self.prefix = parsed.path.strip("/")
        elif parsed.scheme in ("", "file"):
            self.path = Path(unquote(parsed.path) if parsed.scheme == "file" else uri)
        else:
            raise DataError(f"{uri}: use a local folder or an s3:// URI, not {parsed.scheme}://")
        self._client: Any = None

    def _s3(self) -> Any:
        if self._client is None:
            import boto3  # only instances that read S3 need it

            self._client = boto3.client("s3")
        return self._client

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def child_uri(self, name: str) -> str:
        return f"{self.uri}/{name}"

    def put(self, local: Path, name: str) -> None:
        """Copies a local file to ``<location>/<name>``."""
        if self.is_s3:
            self._s3().upload_file(str(local), self.bucket, self._key(name))
            return
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.resolve() == local.resolve():
            return
        tmp = target.with_name(f".{target.name}.upload.tmp")
        shutil.copyfile(local, tmp)
        os.replace(tmp, target)

    def get(self, name: str, local: Path) -> bool:
        """Copies ``<location>/<name>`` to a local file atomically; False when it does not exist."""
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f".{local.name}.download.tmp")
        if self.is_s3:
            from botocore.exceptions import ClientError

            try:
                self._s3().download_file(self.bucket, self._key(name), str(tmp))
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    return False
                raise
        else:
            source = self.path / name
            if not source.is_file():
                return False
            shutil.copyfile(source, tmp)
        os.replace(tmp, local)
        return True

    def put_tree(self, folder: Path, name: str) -> int:
        """Copies every file under a local folder to ``<location>/<name>/...``; returns the count."""
        count = 0
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            self.put(path, f"{name}/{path.relative_to(folder).as_posix()}")
            count += 1
        return count

    def download_all(self, folder: Path) -> Path:
        """The local folder holding everything under this location (S3 is downloaded once).

        Raises:
            DataError: a local location that does not exist, or an empty S3 prefix.
        """
        if not self.is_s3:
            if not self.path.is_dir():
                raise DataError(f"data folder {self.path} does not exist")
            return self.path
        if (folder / DATA_MARKER).is_file():
            return folder
        paginator = self._s3().get_paginator("list_objects_v2")
        prefix = f"{self.prefix}/" if self.prefix else ""
        count = 0
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                relative = item["Key"][len(prefix):]
                if not relative or relative.endswith("/"):
                    continue
                target = (folder / relative).resolve()
                if folder.resolve() not in target.parents:
                    raise DataError(f"refusing S3 key outside the data folder: {item['Key']}")
                target.parent.mkdir(parents=True, exist_ok=True)
                self._s3().download_file(self.bucket, item["Key"], str(target))
                count += 1
        if count == 0:
            raise DataError(f"no objects under {self.uri}/")
        (folder / DATA_MARKER).write_text(f"{count}\n")
        LOG.info("spot: downloaded %d data files from %s", count, self.uri)
        return folder


# --- what happened, for the console -----------------------------------------------------------


class EventLog:
    """Appends one JSON line per event to ``spot-events.jsonl`` and logs it."""

    def __init__(self, path: Path, instance_id: str) -> None:
        self.path = path
        self.instance_id = instance_id
        self._lock = threading.Lock()

    def add(self, kind: str, **fields: Any) -> None:
        record = {"time": time.time(), "kind": kind, "instance": self.instance_id, **fields}
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
                handle.flush()
                os.fsync(handle.fileno())


class ProgressWriter:
    """Rewrites ``progress.json`` (epoch, batch, global step) while training runs.

    It reads the run state the epoch loop updates in place; after a kill, the last file says
    how far training had got, which with the checkpoint's position gives the work lost.
    """

    def __init__(self, path: Path, steps_per_epoch: int) -> None:
        self.path = path
        self.steps_per_epoch = steps_per_epoch
        self.state: train.RunState | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spot-progress", daemon=True)

    def start(self, state: train.RunState) -> None:
        self.state = state
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.write()
        self._thread.start()

    def write(self) -> None:
        if self.state is None:
            return
        epoch, batch = self.state.epoch, self.state.meter.batches
        data = {"epoch": epoch, "batch": batch, "step": epoch * self.steps_per_epoch + batch,
                "steps_per_epoch": self.steps_per_epoch, "time": time.time()}
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.path)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.write()

    def _run(self) -> None:
        while not self._stop.wait(PROGRESS_EVERY_S):
            try:
                self.write()
            except OSError:
                pass


# --- command line -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """``train.py``'s parser plus where data, checkpoints and outputs live and the notice poller."""
    parser = train.build_parser()
    parser.description = "Train on an EC2 (Spot) instance: interruption-safe, resumable."
    add = parser.add_argument
    add("--data-uri", default=None, help="s3://bucket/prefix/ or a local ImageFolder root; unset: --data-dir")
    add("--checkpoint-uri", default=None, help="s3:// prefix or folder the checkpoint is mirrored to and resumed from")
    add("--output-uri", default=None, help="s3:// prefix or folder for model.tar.gz, metrics and events")
    add("--output-dir", type=Path, default=train._env_path("SM_OUTPUT_DIR", None),
        help="local folder of model.tar.gz; unset: the parent of --output-data-dir")
    add("--scratch-dir", type=Path, default=Path(os.environ.get("SMC_SCRATCH_DIR", "/tmp/smc-spot")),
        help="where S3 data is downloaded")
    add("--metadata-url", default=os.environ.get("SMC_METADATA_URL", DEFAULT_METADATA_URL),
        help="instance metadata service (IMDSv2); the local simulator serves one on 127.0.0.1")
    add("--notice-poll-s", type=float, default=POLL_INTERVAL_S, help="seconds between notice polls (AWS: 5)")
    add("--watch-notice", type=parse_bool, default=True,
        help="checkpoint and stop on an interruption notice (false: rely on per-epoch checkpoints)")
    add("--instance-id", default=os.environ.get("SMC_INSTANCE_ID", ""), help="for the event log; unset: from IMDS")
    return parser


# --- entry point ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run (or resume) the training; 0 done, 143 interrupted or stopped, 1 error."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout, force=True)
    args = build_parser().parse_args(argv)
    if args.notice_poll_s <= 0:
        LOG.error("ERROR: --notice-poll-s must be positive, got %s", args.notice_poll_s)
        return 1
    stop = train.StopRequest()
    previous = signal.signal(signal.SIGTERM, stop.handle)
    output_dir = Path(args.output_dir or Path(args.output_data_dir).parent)
    events = EventLog(Path(args.output_data_dir) / EVENTS_FILE, args.instance_id or "unknown")
    poller: NoticePoller | None = None
    try:
        output = Location(args.output_uri) if args.output_uri else None
        checkpoints = Location(args.checkpoint_uri) if args.checkpoint_uri else None
        if args.data_uri:
            args.data_dir = Location(args.data_uri).download_all(Path(args.scratch_dir) / "data")
        if args.watch_notice:
            client = MetadataClient(args.metadata_url)
            if not args.instance_id:
                events.instance_id = _instance_id(client)

            def on_notice(notice: InterruptionNotice) -> None:
                LOG.info("spot: interruption notice action=%s time=%s", notice.action, notice.time)
                events.add("notice", action=notice.action, at=notice.time)
                stop.requested = True

            poller = NoticePoller(client, on_notice, interval_s=args.notice_poll_s).start()
        with profiling.session(args):
            try:
                code = run(args, stop, events=events, checkpoints=checkpoints)
            finally:
                debug_hook.close()  # the trial whole (and the in-job rules' final pass) before it is published
        if code == 0:
            publish(args, output_dir, output, events)
        elif output is not None:
            _upload_quietly(output, Path(args.output_data_dir) / EVENTS_FILE, EVENTS_FILE)
        return code
    except (DataError, WeightsError, CheckpointError) as exc:
        LOG.error("ERROR: %s", exc)
    except Exception as exc:  # the last line says what happened, whatever it was
        traceback.print_exc()
        LOG.error("ERROR: %s: %s", type(exc).__name__, exc)
    finally:
        if poller is not None:
            poller.stop()
        signal.signal(signal.SIGTERM, previous)
    return 1


def _instance_id(client: MetadataClient) -> str:
    try:
        return client.get("/latest/meta-data/instance-id") or "unknown"
    except OSError:
        return "unknown"


def run(args: argparse.Namespace, stop: train.StopRequest, *, events: EventLog,
        checkpoints: Location | None) -> int:
    """``train.run`` with checkpoints mirrored, positions logged and progress recorded."""
    job = train.prepare(args)
    debug_hook.attach(job.model, job.criterion, args)
    profiling.attach(job.model, job.optimizer, job.device)
    remove_stale_temps(job.checkpoint_path.parent)
    if not job.checkpoint_path.is_file() and checkpoints is not None \
            and checkpoints.get(CHECKPOINT_FILE, job.checkpoint_path):
        LOG.info("spot: restored the checkpoint from %s", checkpoints.child_uri(CHECKPOINT_FILE))
    state = train.RunState()
    steps = job.steps_per_epoch
    if job.checkpoint_path.is_file():
        state = train.resume(job)
        step = state.epoch * steps + state.meter.batches
        LOG.info("resumed from checkpoint epoch=%d batch=%d", state.epoch, state.meter.batches)
        LOG.info("spot: resumed epoch=%d batch=%d step=%d steps_per_epoch=%d", state.epoch, state.meter.batches,
                 step, steps)
        events.add("resume", epoch=state.epoch, batch=state.meter.batches, step=step, steps_per_epoch=steps)
    else:
        LOG.info("spot: start step=0 steps_per_epoch=%d epochs=%d", steps, args.epochs)
        events.add("start", epoch=0, batch=0, step=0, steps_per_epoch=steps)
    progress = ProgressWriter(job.checkpoint_path.with_name(PROGRESS_FILE), steps)
    progress.start(state)
    try:
        valid_loader = train._eval_loader(job, job.splits.valid)
        while state.epoch < args.epochs:
            record = train.run_epoch(job, state, valid_loader, stop)
            if record is None:
                save_checkpoint(job, state, events, checkpoints, reason="notice-or-sigterm")
                return EXIT_INTERRUPTED
            state.history.append(record)
            state.best_valid_acc = max(state.best_valid_acc, record["valid_acc"])
            state.epoch += 1
            state.meter = train.EpochMeter()
            save_checkpoint(job, state, events, checkpoints, reason="epoch")
            if stop.requested:
                LOG.info("stopped by SIGTERM or an interruption notice")
                return EXIT_INTERRUPTED
        code = train.finish(job, state, stop)
    finally:
        progress.stop()
    if code == 0:
        test = {}
        metrics_path = Path(args.output_data_dir) / train.METRICS_FILE
        if metrics_path.is_file():
            metrics = json.loads(metrics_path.read_text())
            test = {k: metrics[k] for k in ("test_acc", "test_loss") if k in metrics}
        events.add("done", epoch=state.epoch, step=state.epoch * steps, **test)
    return code


def save_checkpoint(job: train.Job, state: train.RunState, events: EventLog, checkpoints: Location | None, *,
                    reason: str) -> None:
    """Records where training stands, then writes the checkpoint atomically and mirrors it.

    The record is on disk (fsynced) before the checkpoint file changes, and names the files the
    new checkpoint replaces (``replaces``: the local one; ``mirror_replaces``: the mirror, when it
    is a folder) by :func:`file_identity`. So whenever a SIGKILL comes, a reader of the event
    file knows the position of every checkpoint on disk: the last save landed unless the file is
    still the one its record says it replaces (a log line can be lost to the kill).
    """
    step = state.epoch * job.steps_per_epoch + state.meter.batches
    replaced = {"replaces": file_identity(job.checkpoint_path)}
    if checkpoints is not None and not checkpoints.is_s3:
        replaced["mirror_replaces"] = file_identity(checkpoints.path / CHECKPOINT_FILE)
    events.add("checkpoint", epoch=state.epoch, batch=state.meter.batches, step=step, reason=reason, **replaced)
    atomic_torch_save(train.make_checkpoint(job, state), job.checkpoint_path)
    if checkpoints is not None:
        checkpoints.put(job.checkpoint_path, CHECKPOINT_FILE)
    LOG.info("spot: checkpoint epoch=%d batch=%d step=%d reason=%s", state.epoch, state.meter.batches, step, reason)


def file_identity(path: Path) -> str | None:
    """``inode:mtime_ns`` of a file, None when there is none: a file written and renamed into place
    while the old one existed always has another identity."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return f"{stat.st_ino}:{stat.st_mtime_ns}"


def pack_model(model_dir: Path, archive: Path) -> Path:
    """``model.tar.gz`` with the model folder's files at its root (SageMaker's layout), atomically."""
    files = sorted(p for p in model_dir.rglob("*") if p.is_file())
    if not files:
        raise RuntimeError(f"nothing to pack: {model_dir} is empty")
    archive.parent.mkdir(parents=True, exist_ok=True)
    tmp = archive.with_name(f".{archive.name}.tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        for path in files:
            tar.add(path, arcname=path.relative_to(model_dir).as_posix())
    os.replace(tmp, archive)
    return archive


def publish(args: argparse.Namespace, output_dir: Path, output: Location | None, events: EventLog) -> None:
    """Packs the model and copies it, the metrics, events and Debugger/Profiler data to the output."""
    archive = pack_model(Path(args.model_dir), output_dir / MODEL_ARCHIVE)
    LOG.info("spot: model packed at %s", archive)
    if output is None:
        return
    output.put(archive, MODEL_ARCHIVE)
    data_dir = Path(args.output_data_dir)
    for name in (train.METRICS_FILE, EVENTS_FILE):
        if (data_dir / name).is_file():
            output.put(data_dir / name, f"data/{name}")
    for sub in (debug_config.OUT_DIR_NAME, profiling.PROFILER_DIR_NAME):
        folder = Path(debug_config.resolve_out_dir(getattr(args, "debug_out_dir", None))) \
            if sub == debug_config.OUT_DIR_NAME else Path(args.profiler_dir or data_dir / sub)
        if folder.is_dir():
            output.put_tree(folder, sub)
    LOG.info("spot: model uploaded to %s", output.child_uri(MODEL_ARCHIVE))


def _upload_quietly(output: Location, path: Path, name: str) -> None:
    try:
        if path.is_file():
            output.put(path, f"data/{name}")
    except Exception as exc:  # an interrupted instance has little time left: never fail on this
        LOG.warning("spot: could not upload %s: %s", name, exc)


if __name__ == "__main__":
    shutdown.exit_with(main())
