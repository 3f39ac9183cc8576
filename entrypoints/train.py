"""Fine-tune an image classifier on an ImageFolder channel, following SageMaker's contract.

The same file is the script of SageMaker training jobs, tuning trials and local jobs:
hyperparameters arrive as ``--name value`` strings, paths default to the ``SM_*`` variables,
and metrics are printed as ``key=value`` lines for metric-definition regexes::

    epoch=1/2 train_loss=0.4123 train_acc=0.8812 valid_loss=0.2011 valid_acc=0.9300 images_per_s=101.2 epoch_time_s=12.3
    test_loss=0.1000 test_acc=0.9610

Outputs: ``$SM_MODEL_DIR/model.pth`` (a plain dict, see ``imagemodels.make_artifact``) and
``$SM_OUTPUT_DATA_DIR/metrics.json``. After every epoch ``checkpoint.pt`` is written
atomically to the checkpoint folder and a restarted job resumes from it. SIGTERM (a spot
interruption, a stop) finishes the current batch, writes a checkpoint and exits with 143.
Exit code 1 comes with a last line ``ERROR: <message>`` and the message in
``$SM_OUTPUT_DIR/failure`` (SageMaker's FailureReason); whatever failed, the process ends within
seconds, its DataLoader workers with it (``shutdown.py``).

An image file that cannot be decoded is skipped and logged once (``skipped unreadable image
train/b/x.jpg: <reason>``); more than ``--max-bad-fraction`` of a split's files unreadable ends
the job. When any were met, each epoch line is followed by ``unreadable images train=2/300
valid=0/60`` (unreadable/files per split), the end of the run says the same, and
``metrics.json`` has ``unreadable_images`` (counts per split).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import signal
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

import debug_config
import debug_hook
import distributed
import hyperparameters
import profiling
import shutdown
from checkpoints import (
    CHECKPOINT_FILE,
    CheckpointError,
    atomic_torch_save,
    capture_rng,
    load_checkpoint,
    remove_stale_temps,
    restore_rng,
)
from distributed import World, WorldError
from fastpath import FastPath, fast_path
from imagedata import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    DataError,
    Splits,
    epoch_batches,
    load_splits,
    make_loader,
)
from imagemodels import WeightsError, build_model, freeze_backbone, make_artifact
from unreadable import UnreadableImages, summary

LOG = logging.getLogger("train")
MODEL_FILE = "model.pth"
METRICS_FILE = "metrics.json"
PROGRESS_EVERY = 10
EXIT_SIGTERM = 143
MIN_TRAIN_BATCH = 2  # batch norm cannot train on one image


class StopRequest:
    """Set by the SIGTERM handler; the loops finish their current batch and return."""

    def __init__(self) -> None:
        self.requested = False

    def handle(self, signum: int, frame: FrameType | None) -> None:
        """Signal handler: only records the request, the loops act on it."""
        self.requested = True


@dataclass
class EpochMeter:
    """Running sums over the training batches of one epoch (kept in the checkpoint)."""

    batches: int = 0
    seen: int = 0
    correct: int = 0
    loss_sum: float = 0.0
    seconds: float = 0.0

    @property
    def loss(self) -> float:
        return self.loss_sum / max(self.seen, 1)

    @property
    def accuracy(self) -> float:
        return self.correct / max(self.seen, 1)


@dataclass
class RunState:
    """Progress of the run; ``epoch`` is the next epoch to run (0-based: epochs completed)."""

    epoch: int = 0
    best_valid_acc: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)
    meter: EpochMeter = field(default_factory=EpochMeter)


@dataclass
class Job:
    """Everything the epoch loop works with, built once by ``prepare``."""

    args: argparse.Namespace
    splits: Splits
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    device: torch.device
    steps_per_epoch: int
    fast: FastPath
    """Mixed precision, memory format and compilation (``--amp``, ``--channels-last``, ``--compile``)."""
    criterion: nn.Module = field(default_factory=nn.CrossEntropyLoss)
    unreadable: dict[str, UnreadableImages] = field(default_factory=dict)  # split name -> its tally
    world: World = field(default_factory=World)
    parallel: nn.Module | None = None
    """The DistributedDataParallel wrapper that trains ``model`` when the world has several processes."""

    @property
    def checkpoint_path(self) -> Path:
        return Path(self.args.checkpoint_dir) / checkpoint_file(self.args)

    @property
    def trained(self) -> nn.Module:
        """What the training steps run: the model, or its DistributedDataParallel wrapper."""
        return self.parallel if self.parallel is not None else self.model


def checkpoint_file(args: argparse.Namespace) -> str:
    """``checkpoint.pt``; a SageMaker tuning trial's is named for its job (``checkpoint-<job>.pt``).

    SageMaker gives every trial of a tuning job the tuning job's one CheckpointConfig, so a trial
    must neither resume from another's checkpoint nor overwrite it; a trial restarted after a spot
    interruption keeps its job name and finds its own.
    """
    job = os.environ.get("TRAINING_JOB_NAME")
    return f"checkpoint-{job}.pt" if args._tuning_objective_metric and job else CHECKPOINT_FILE


# --- command line -------------------------------------------------------------------------


def _env_path(name: str, fallback: str | None) -> Path | None:
    value = os.environ.get(name) or fallback
    return Path(value) if value else None


def build_parser() -> argparse.ArgumentParser:
    """The command line: the declared hyperparameters (``hyperparameters.py``), then the job's
    folders, which default to ``SM_*``."""
    parser = argparse.ArgumentParser(
        description="Fine-tune an image classifier on an ImageFolder channel.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    hyperparameters.add_arguments(parser)
    add = parser.add_argument
    add(
        "--data-dir",
        type=Path,
        default=_env_path("SM_CHANNEL_TRAINING", None),
        help="ImageFolder root with train/, valid/, optional test/; unset: $SM_CHANNEL_TRAINING",
    )
    add("--model-dir", type=Path, default=_env_path("SM_MODEL_DIR", "/opt/ml/model"), help="model.pth folder")
    add(
        "--output-data-dir",
        type=Path,
        default=_env_path("SM_OUTPUT_DATA_DIR", "/opt/ml/output/data"),
        help="metrics.json folder",
    )
    add(
        "--checkpoint-dir",
        type=Path,
        default=_env_path("SM_CHECKPOINT_DIR", "/opt/ml/checkpoints"),
        help="checkpoint.pt folder; the run resumes from a checkpoint found there",
    )
    # SageMaker tuning jobs add the objective to every trial's hyperparameters.
    add("--_tuning_objective_metric", default=None, help="set by SageMaker tuning; ignored")
    debug_config.add_arguments(parser)
    profiling.add_arguments(parser)
    return parser


# --- entry point --------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the job; returns the exit code: 0, 1 after an error, 143 after SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout, force=True)
    for chatty in ("botocore", "boto3", "s3transfer", "urllib3"):  # their INFO lines would fill the job's log
        logging.getLogger(chatty).setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    stop = StopRequest()
    previous = signal.signal(signal.SIGTERM, stop.handle)
    try:
        world = distributed.world_from_env()
        if not world.is_main:
            quiet_rank(args, world)
        with profiling.session(args):
            try:
                return run(args, stop)
            finally:
                debug_hook.close()
    except (DataError, WeightsError, CheckpointError, WorldError) as exc:
        reason = str(exc)
    except (Exception, KeyboardInterrupt) as exc:  # whatever happened, the job's last line says so
        traceback.print_exc()
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    finally:
        signal.signal(signal.SIGTERM, previous)
        distributed.end()
    return fail(reason)


def quiet_rank(args: argparse.Namespace, world: World) -> None:
    """A rank other than 0 logs warnings and errors only, and records no Debugger or Profiler data:
    rank 0 speaks for the job (metric lines, model, checkpoints), as SageMaker's first host does."""
    LOG.info("rank %d of %d: rank 0 logs the metrics and writes the model, checkpoints, Debugger and "
             "Profiler data", world.rank, world.size)
    logging.getLogger().setLevel(logging.WARNING)
    args.debug = False
    args.profile = False


def fail(reason: str) -> int:
    """The error path: end leftover worker processes, then say why in one line (the log's last
    line, the failure file); returns 1."""
    reason = one_line(reason)
    for pid, name in shutdown.signalled_children().items():  # what broke a DataLoader, said plainly
        if str(pid) not in reason:
            reason += f" (worker process {pid} was killed by {name})"
    killed = shutdown.end_children()
    if killed:
        LOG.info("killed %d leftover worker process(es): %s", len(killed), " ".join(map(str, killed)))
    LOG.error("ERROR: %s", reason)
    shutdown.write_failure(reason)
    return 1


def one_line(message: str) -> str:
    """A message on one line: an error re-raised from a DataLoader worker carries the worker's
    whole traceback; its first line and its last (the original error) say what happened."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if len(lines) <= 1:
        return message.strip()
    return f"{lines[0].rstrip('.')}: {lines[-1]}"


def run(args: argparse.Namespace, stop: StopRequest) -> int:
    """Prepare, resume if a checkpoint exists, run the epochs, then save and test the model."""
    job = prepare(args)
    debug_hook.attach(job.model, job.criterion, args)
    profiling.attach(job.model, job.optimizer, job.device)
    state = RunState()
    if job.world.is_main:
        remove_stale_temps(job.checkpoint_path.parent, job.checkpoint_path.name)
    if job.checkpoint_path.is_file():
        state = resume(job)
        LOG.info("resumed from checkpoint epoch=%d batch=%d", state.epoch, state.meter.batches)
    LOG.info(
        "start model=%s epochs=%d steps_per_epoch=%d batch_size=%d device=%s threads=%d processes=%d "
        "precision=%s channels_last=%s compiled=%s",
        args.model,
        args.epochs,
        job.steps_per_epoch,
        args.batch_size,
        job.device,
        torch.get_num_threads(),
        job.world.size,
        job.fast.precision,
        job.fast.channels_last,
        job.fast.compile,
    )
    valid_loader = _eval_loader(job, job.splits.valid)
    while state.epoch < args.epochs:
        record = run_epoch(job, state, valid_loader, stop)
        if record is None:
            return _stop(job, state)
        state.history.append(record)
        state.best_valid_acc = max(state.best_valid_acc, record["valid_acc"])
        state.epoch += 1
        state.meter = EpochMeter()
        if job.world.is_main:
            atomic_torch_save(make_checkpoint(job, state), job.checkpoint_path)
        if stopping(job, stop):
            LOG.info("stopped by SIGTERM")
            return EXIT_SIGTERM
    return finish(job, state, stop)


def stopping(job: Job, stop: StopRequest) -> bool:
    """Whether the run stops here: asked on any rank, so all ranks decide alike."""
    stop.requested = distributed.anyone(job.world, stop.requested)
    return stop.requested


def prepare(args: argparse.Namespace) -> Job:
    """Seed, index the data, build model, optimizer and per-step cosine schedule.

    Raises:
        DataError: no data folder, or not a usable ImageFolder tree.
        WeightsError: pretrained weights asked for but missing.
    """
    sm_cpus = os.environ.get("SM_NUM_CPUS", "")
    if sm_cpus.isdigit() and int(sm_cpus) > 0:
        torch.set_num_threads(int(sm_cpus))
    world = distributed.world_from_env()
    device = distributed.device_for(world)
    distributed.start(world, device)
    seed_everything(args.seed)
    if args.data_dir is None:
        raise DataError("no data folder: pass --data-dir or set SM_CHANNEL_TRAINING")
    splits = load_splits(args.data_dir, args.image_size, args.augment)
    unreadable = {
        name: UnreadableImages(name, len(dataset), args.max_bad_fraction)
        for name, dataset in (("train", splits.train), ("valid", splits.valid), ("test", splits.test))
        if dataset is not None
    }
    LOG.info(
        "data classes=%d train=%d valid=%d test=%d",
        len(splits.class_names),
        len(splits.train),
        len(splits.valid),
        len(splits.test) if splits.test is not None else 0,
    )
    model = build_model(
        args.model,
        len(splits.class_names),
        image_size=args.image_size,
        pretrained=args.pretrained,
        weights_path=args.weights_path,
    ).to(device)
    if args.freeze_backbone:
        freeze_backbone(model, args.model)
    fast = fast_path(device, amp=args.amp, channels_last=args.channels_last, compile=args.compile)
    if fast.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, args.optimizer, lr=args.lr, weight_decay=args.weight_decay)
    steps = len(epoch_batches(len(splits.train), args.batch_size, seed=args.seed, epoch=0))
    if args.max_steps_per_epoch:
        steps = min(steps, args.max_steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs * steps)
    fast.compile_forward(model)
    return Job(args, splits, model, optimizer, scheduler, device, steps, fast, unreadable=unreadable, world=world,
               parallel=distributed.wrap(model, device) if world.distributed else None)


def make_optimizer(
    model: nn.Module, name: str, *, lr: float, weight_decay: float
) -> torch.optim.Optimizer:
    """AdamW, or SGD with Nesterov momentum 0.9, over the trainable parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# --- epochs -------------------------------------------------------------------------------


def run_epoch(
    job: Job, state: RunState, valid_loader: DataLoader[Any], stop: StopRequest
) -> dict[str, float] | None:
    """Train the rest of epoch ``state.epoch`` and validate; None when SIGTERM cut it short.

    With several processes each trains on its share of every batch (``distributed.share``), and
    the epoch's sums, unreadable files and validation cover all of them.
    """
    args, meter, world = job.args, state.meter, job.world
    if meter.batches < job.steps_per_epoch:
        batches = epoch_batches(
            len(job.splits.train), args.batch_size, seed=args.seed, epoch=state.epoch
        )[meter.batches : job.steps_per_epoch]
        loader = make_loader(
            job.splits.train,
            batch_size=args.batch_size,
            num_workers=args.num_workers,
            seed=(args.seed * 1000 + state.epoch) * world.size + world.rank,
            batches=[distributed.share(batch, world) for batch in batches],
            pin_memory=job.device.type == "cuda",
        )
        train_one_epoch(
            job.trained,
            loader,
            job.criterion,
            job.optimizer,
            job.scheduler,
            job.device,
            meter=meter,
            epoch=state.epoch + 1,
            steps=job.steps_per_epoch,
            stop=stop,
            unreadable=job.unreadable.get("train"),
            world=world,
            fast=job.fast,
        )
    _add_up(meter, world)
    if stopping(job, stop):
        return None
    valid = evaluate(
        job.model,
        valid_loader,
        job.criterion,
        job.device,
        stop=stop,
        unreadable=job.unreadable.get("valid"),
        world=world,
        fast=job.fast,
    )
    if valid is None:
        return None
    _share_unreadable(job)
    record = {
        "epoch": state.epoch + 1,
        "train_loss": meter.loss,
        "train_acc": meter.accuracy,
        "valid_loss": valid["loss"],
        "valid_acc": valid["acc"],
        "images_per_s": meter.seen / max(meter.seconds, 1e-9),
        "epoch_time_s": meter.seconds + valid["seconds"],
    }
    LOG.info(
        "epoch=%d/%d train_loss=%.4f train_acc=%.4f valid_loss=%.4f valid_acc=%.4f "
        "images_per_s=%.1f epoch_time_s=%.1f",
        state.epoch + 1,
        args.epochs,
        record["train_loss"],
        record["train_acc"],
        record["valid_loss"],
        record["valid_acc"],
        record["images_per_s"],
        record["epoch_time_s"],
    )
    _report_unreadable(job)
    return record


def _add_up(meter: EpochMeter, world: World) -> None:
    """Turns each rank's sums into the whole world's (the slowest rank's seconds); rank 0 resumes
    with them, the others from zero (``resume``)."""
    meter.seen, meter.correct, meter.loss_sum = distributed.total(world, [meter.seen, meter.correct, meter.loss_sum])
    meter.seen, meter.correct = int(meter.seen), int(meter.correct)
    meter.seconds = distributed.largest(world, meter.seconds)


def _share_unreadable(job: Job) -> None:
    """Every rank learns the unreadable files the others met, so the counts and the limit are the job's.

    Raises:
        TooManyUnreadable: the files met by all ranks together are more than a split allows.
    """
    if not job.world.distributed:
        return
    tallies = list(job.unreadable.values())
    for states in distributed.gather(job.world, [tally.state() for tally in tallies]):  # one list per rank
        for tally, reasons in zip(tallies, states, strict=True):
            tally.restore(reasons)
    for tally in tallies:
        tally.check()


def _report_unreadable(job: Job) -> None:
    """``unreadable images train=2/300 valid=0/60``, when any file was unreadable so far."""
    if any(tally.count for tally in job.unreadable.values()):
        LOG.info("unreadable images %s", summary(job.unreadable.values()))


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader[Any],
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    device: torch.device,
    *,
    meter: EpochMeter,
    epoch: int,
    steps: int,
    stop: StopRequest | None = None,
    unreadable: UnreadableImages | None = None,
    world: World | None = None,
    fast: FastPath | None = None,
) -> None:
    """Train over ``loader``, adding to ``meter``; returns early after a batch once stopped.

    Logs ``progress epoch=E batch=B/N loss=L`` every ``PROGRESS_EVERY`` batches (on purpose
    without any ``train_loss=``-style key, so metric regexes only see the epoch lines).
    A batch's unreadable files go to ``unreadable``; a batch left with fewer than
    ``MIN_TRAIN_BATCH`` images is passed over (it still counts in ``meter.batches``, the
    position a resumed run starts from).

    Raises:
        TooManyUnreadable: the split holds more unreadable files than allowed.
    """
    world, fast = world or World(), fast or FastPath(device)
    model.train()
    start = time.perf_counter()
    for batch in profiling.steps(loader, epoch=epoch):
        images, labels = batch
        if unreadable is not None:
            unreadable.add(getattr(batch, "skipped", ()))
        meter.batches += 1
        if distributed.fewest(world, labels.numel()) >= MIN_TRAIN_BATCH:
            _train_step(model, images, labels, criterion, optimizer, scheduler, fast, meter)
        if meter.batches % PROGRESS_EVERY == 0:
            LOG.info("progress epoch=%d batch=%d/%d loss=%.4f", epoch, meter.batches, steps, meter.loss)
        if stop is not None and distributed.anyone(world, stop.requested):
            stop.requested = True
            break
    meter.seconds += time.perf_counter() - start


def _train_step(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    fast: FastPath,
    meter: EpochMeter,
) -> None:
    images = fast.batch(images)
    labels = labels.to(fast.device, non_blocking=True)
    with fast.autocast():
        logits = model(images)
        loss = criterion(logits, labels)
    optimizer.zero_grad(set_to_none=True)
    fast.backward_and_step(loss, optimizer)
    scheduler.step()
    meter.seen += labels.numel()
    meter.correct += int((logits.argmax(dim=1) == labels).sum())
    meter.loss_sum += float(loss.detach()) * labels.numel()


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    loader: DataLoader[Any],
    criterion: nn.Module,
    device: torch.device,
    *,
    stop: StopRequest | None = None,
    unreadable: UnreadableImages | None = None,
    world: World | None = None,
    fast: FastPath | None = None,
) -> dict[str, float] | None:
    """Mean loss and accuracy over ``loader``'s readable images (``loss``, ``acc``, ``count``,
    ``seconds``); its unreadable files go to ``unreadable``. With several processes, each passes its
    share of the images and the result is the whole split's.

    Returns None when a stop was requested (on any rank) before it finished.

    Raises:
        TooManyUnreadable: the split holds more unreadable files than allowed.
    """
    world, fast = world or World(), fast or FastPath(device)
    model.eval()
    start = time.perf_counter()
    seen, correct, loss_sum, stopped = 0, 0, 0.0, False
    for batch in profiling.evaluation(loader):
        if stop is not None and stop.requested:
            stopped = True
            break
        images, labels = batch
        if unreadable is not None:
            unreadable.add(getattr(batch, "skipped", ()))
        if labels.numel() == 0:
            continue
        images, labels = fast.batch(images), labels.to(device)
        with fast.autocast():
            logits = model(images)
            loss_sum += float(criterion(logits, labels)) * labels.numel()
        correct += int((logits.argmax(dim=1) == labels).sum())
        seen += labels.numel()
    loss_sum, correct, seen, stops = distributed.total(world, [loss_sum, correct, seen, float(stopped)])
    if stops:
        if stop is not None:
            stop.requested = True
        return None
    return {
        "loss": loss_sum / max(seen, 1),
        "acc": correct / max(seen, 1),
        "count": float(seen),
        "seconds": time.perf_counter() - start,
    }


def finish(job: Job, state: RunState, stop: StopRequest) -> int:
    """Save ``model.pth``, evaluate the test split if any, write ``metrics.json`` (rank 0 writes)."""
    args = job.args
    if job.world.is_main:
        artifact = make_artifact(
            job.model,
            arch=args.model,
            class_names=job.splits.class_names,
            image_size=args.image_size,
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
        )
        atomic_torch_save(artifact, Path(args.model_dir) / MODEL_FILE)
        LOG.info("saved model %s", Path(args.model_dir) / MODEL_FILE)
    metrics: dict[str, Any] = {"arch": args.model, "epochs": state.epoch}
    if state.history:
        metrics.update({k: v for k, v in state.history[-1].items() if k != "epoch"})
    metrics.update(best_valid_acc=state.best_valid_acc, history=state.history)
    if job.splits.test is None:
        LOG.info("no test/ split: skipping test evaluation")
    else:
        debug_hook.start_test()
        test = evaluate(
            job.model,
            _eval_loader(job, job.splits.test),
            job.criterion,
            job.device,
            stop=stop,
            unreadable=job.unreadable.get("test"),
            world=job.world,
            fast=job.fast,
        )
        if test is None:  # the checkpoint of the last epoch is already on disk
            LOG.info("stopped by SIGTERM")
            return EXIT_SIGTERM
        _share_unreadable(job)
        LOG.info("test_loss=%.4f test_acc=%.4f", test["loss"], test["acc"])
        metrics.update(test_loss=test["loss"], test_acc=test["acc"])
    metrics["unreadable_images"] = {name: tally.count for name, tally in job.unreadable.items()}
    _report_unreadable(job)
    if not job.world.is_main:
        return 0
    output_dir = Path(args.output_data_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    return 0


def _eval_loader(job: Job, dataset: Any) -> DataLoader[Any]:
    """The split in order; with several processes, each rank's share of every batch."""
    batch_size, world = job.args.batch_size, job.world
    batches = None
    if world.distributed:
        batches = [distributed.share(range(i, min(i + batch_size, len(dataset))), world)
                   for i in range(0, len(dataset), batch_size)]
    return make_loader(
        dataset,
        batch_size=batch_size,
        num_workers=job.args.num_workers,
        seed=job.args.seed,
        batches=batches,
        pin_memory=job.device.type == "cuda",
    )


def _stop(job: Job, state: RunState) -> int:
    """Checkpoint the middle of an epoch (model, optimizer, epoch sums) and give up."""
    if job.world.is_main:
        atomic_torch_save(make_checkpoint(job, state), job.checkpoint_path)
    LOG.info("stopped by SIGTERM")
    return EXIT_SIGTERM


# --- checkpoints --------------------------------------------------------------------------


def make_checkpoint(job: Job, state: RunState) -> dict[str, Any]:
    """The one checkpoint dict: progress, model/optimizer/scheduler state and RNG states."""
    return {
        "epoch": state.epoch,
        "batch": state.meter.batches,
        "arch": job.args.model,
        "class_names": list(job.splits.class_names),
        "image_size": job.args.image_size,
        "model": job.model.state_dict(),
        "optimizer": job.optimizer.state_dict(),
        "scheduler": job.scheduler.state_dict(),
        "grad_scaler": job.fast.state(),
        "best_valid_acc": state.best_valid_acc,
        "history": state.history,
        "meter": asdict(state.meter),
        "rng": capture_rng(),
        "unreadable": {name: tally.state() for name, tally in job.unreadable.items()},
        "hyperparameters": {k: str(v) for k, v in vars(job.args).items()},
    }


def resume(job: Job) -> RunState:
    """Restore model, optimizer, scheduler and RNG states from the checkpoint.

    Raises:
        CheckpointError: unreadable, or saved for another model, class list or image size.
    """
    path = job.checkpoint_path
    checkpoint = load_checkpoint(path, job.device)
    expected = {
        "arch": job.args.model,
        "class_names": list(job.splits.class_names),
        "image_size": job.args.image_size,
    }
    for key, value in expected.items():
        if checkpoint.get(key) != value:
            raise CheckpointError(
                f"{path} was saved with {key}={checkpoint.get(key)!r}, this run has {value!r}: "
                "use another --checkpoint-dir or delete the checkpoint"
            )
    job.model.load_state_dict(checkpoint["model"])
    job.optimizer.load_state_dict(checkpoint["optimizer"])
    # T_max follows this run's --epochs, so a resumed job may be given more epochs.
    scheduler_state = {k: v for k, v in checkpoint["scheduler"].items() if k != "T_max"}
    job.scheduler.load_state_dict(scheduler_state)
    job.fast.restore(checkpoint.get("grad_scaler"))  # absent in older checkpoints
    restore_rng(checkpoint["rng"])
    for name, reasons in checkpoint.get("unreadable", {}).items():  # absent in older checkpoints
        if name in job.unreadable:
            job.unreadable[name].restore(reasons)
    meter = EpochMeter(**checkpoint["meter"])
    if not job.world.is_main:  # the sums so far are the world's, and rank 0 carries them
        meter = EpochMeter(batches=meter.batches)
    return RunState(
        epoch=int(checkpoint["epoch"]),
        best_valid_acc=float(checkpoint["best_valid_acc"]),
        history=list(checkpoint["history"]),
        meter=meter,
    )


if __name__ == "__main__":
    shutdown.exit_with(main())
