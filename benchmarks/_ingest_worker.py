"""One measurement of ``bench_ingest.py``, in a fresh process that prints its result as JSON.

Not meant to be run by hand. Two commands:

``ingest`` (app environment, ``.venv/bin/python``): one ingest of a zip, by the app
(``core.catalog.check_dataset`` + ``register_dataset`` + ``discard``) or by the plain baseline
(``ZipFile.extractall``, then ``shutil.copytree`` or one ``upload_file`` per file, then the
extracted folder removed), into the local backend's workspace or into S3 (the moto server that
``AWS_ENDPOINT_URL`` names). It prints the ingest's wall time and this process's RSS: idle
(after imports, with the backend or S3 client built, as an app that is up has them) and the
peak while ingesting (a 50 ms sampler, and ``ru_maxrss`` for spikes between samples).

``loading`` (job environment, ``.venv-job/bin/python``): ``train.train_one_epoch`` at a given
image size over train.py's own loader (``imagedata.load_splits`` + ``make_loader``) against
the same loop over batches taken from images decoded once into memory; images/s of each.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
ENTRYPOINTS_DIR = REPO_ROOT / "entrypoints"
DATASET_NAME = "bench-ingest"
SAMPLE_EVERY_S = 0.05


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    ingest = commands.add_parser("ingest", help="one ingest of a zip (app environment)")
    ingest.add_argument("--mode", choices=("app", "baseline"), required=True)
    ingest.add_argument("--backend", choices=("local", "s3"), required=True)
    ingest.add_argument("--zip", type=Path, required=True, help="the dataset zip")
    ingest.add_argument("--scratch", type=Path, required=True, help="an empty folder for this run")
    ingest.add_argument("--region", default="us-east-1")
    ingest.add_argument("--bucket", default="bench-ingest")
    ingest.add_argument("--prefix", default="sm-console", help="key prefix of the aws backend")
    loading = commands.add_parser("loading", help="train.py's loader against decoded images (job environment)")
    loading.add_argument("--data-dir", type=Path, required=True, help="ImageFolder with train/ valid/")
    loading.add_argument("--image-size", type=int, default=224)
    loading.add_argument("--batch-size", type=int, default=32)
    loading.add_argument("--steps", type=int, default=20)
    loading.add_argument("--warmup", type=int, default=2)
    loading.add_argument("--slices", type=int, default=4)
    loading.add_argument("--num-workers", type=int, nargs="+", default=[2])
    loading.add_argument("--model", default="efficientnet_lite0")
    return parser


# --- memory -----------------------------------------------------------------------------------


def rss_mb() -> float:
    """This process's resident set now, from /proc (cheap enough to sample every 50 ms)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def max_rss_mb() -> float:
    """The largest resident set this process has had (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class PeakSampler:
    """Samples RSS every ``SAMPLE_EVERY_S`` on a thread while the ``with`` block runs."""

    def __init__(self) -> None:
        self.peak_mb = rss_mb()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._done.wait(SAMPLE_EVERY_S):
            self.peak_mb = max(self.peak_mb, rss_mb())

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, rss_mb())


# --- ingest -----------------------------------------------------------------------------------


def ingest(args: argparse.Namespace) -> dict[str, Any]:
    """Prepares what the chosen ingest needs, then times it and samples RSS; returns the result."""
    sys.path.insert(0, str(REPO_ROOT))
    import shutil
    import tempfile
    import zipfile

    from core.backend import get_backend
    from core.catalog import check_dataset, register_dataset
    from core.config import Settings
    from core.datasets import ZipUpload
    from core.types import BackendKind

    workspace = args.scratch / "workspace"
    stages: dict[str, float] = {}
    run: Callable[[], None]
    count: Callable[[], int]
    if args.mode == "app":
        if args.backend == "local":
            backend = get_backend(Settings(workspace=workspace))
        else:
            backend = get_backend(Settings(backend=BackendKind.AWS, workspace=workspace, region=args.region,
                                           bucket=args.bucket, prefix=args.prefix))
        _ = backend.storage, backend.store  # built now: a running app has them already

        def run() -> None:
            started = time.perf_counter()
            prepared = check_dataset(ZipUpload(args.zip.name, data=args.zip), workspace / "staging")
            stages["check"] = time.perf_counter() - started
            try:
                started = time.perf_counter()
                register_dataset(backend, prepared.root, name=DATASET_NAME, source=prepared.source,
                                 report=prepared.report.to_dict())
                stages["upload"] = time.perf_counter() - started
            finally:
                started = time.perf_counter()
                prepared.discard()
                stages["discard"] = time.perf_counter() - started

        def count() -> int:
            return len(backend.storage.list(f"datasets/{DATASET_NAME}/"))
    else:
        s3: Any = None
        if args.backend == "s3":
            import boto3

            s3 = boto3.client("s3", region_name=args.region)
        destination = args.scratch / "copy"

        def run() -> None:
            with tempfile.TemporaryDirectory(dir=args.scratch, prefix="extracted-") as extracted:
                started = time.perf_counter()
                with zipfile.ZipFile(args.zip) as archive:
                    archive.extractall(extracted)
                stages["extract"] = time.perf_counter() - started
                started = time.perf_counter()
                if s3 is None:
                    shutil.copytree(extracted, destination)
                else:
                    for path in sorted(Path(extracted).rglob("*")):
                        if path.is_file():
                            s3.upload_file(str(path), args.bucket, f"copy/{path.relative_to(extracted).as_posix()}")
                stages["upload"] = time.perf_counter() - started
                started = time.perf_counter()
            stages["clean up"] = time.perf_counter() - started

        def count() -> int:
            if s3 is None:
                return sum(1 for p in destination.rglob("*") if p.is_file())
            pages = s3.get_paginator("list_objects_v2").paginate(Bucket=args.bucket, Prefix="copy/")
            return sum(page.get("KeyCount", 0) for page in pages)

    idle_mb, idle_max_mb = rss_mb(), max_rss_mb()
    with PeakSampler() as sampler:
        started = time.perf_counter()
        run()
        seconds = time.perf_counter() - started
    end_max_mb = max_rss_mb()
    files = count()
    # ru_maxrss catches spikes between samples, but only if the ingest set a new record
    # (the import-time peak may be higher than anything the ingest did).
    peak_mb = max(sampler.peak_mb, end_max_mb if end_max_mb > idle_max_mb else 0.0)
    return {"seconds": seconds, "stages": stages, "files": files, "idle_rss_mb": idle_mb,
            "peak_rss_mb": peak_mb, "peak_above_idle_mb": peak_mb - idle_mb}


# --- training data loading --------------------------------------------------------------------


def loading(args: argparse.Namespace) -> dict[str, Any]:
    """train_one_epoch over train.py's loader and over the same images decoded once, in interleaved slices."""
    sys.path.insert(0, str(ENTRYPOINTS_DIR))
    import io
    import itertools
    import logging

    import torch

    import train
    from imagedata import Batch, collate_readable, epoch_batches, load_splits, make_loader
    from imagemodels import build_model, default_weights_path

    logging.basicConfig(level=logging.INFO, stream=io.StringIO(), format="%(message)s")  # progress lines
    seed = 42
    splits = load_splits(args.data_dir, args.image_size, "light")  # train.py's default augmentation
    dataset = splits.train
    per_epoch = epoch_batches(len(dataset), args.batch_size, seed=seed, epoch=0)

    def plan(steps: int, first_epoch: int) -> list[list[int]]:
        """train.py's batches, epoch after epoch, for ``steps`` steps (a small set is gone round)."""
        batches: list[list[int]] = []
        epoch = first_epoch
        while len(batches) < steps:
            batches += epoch_batches(len(dataset), args.batch_size, seed=seed, epoch=epoch)
            epoch += 1
        return batches[:steps]

    timed = plan(args.steps, 0)
    used = sorted({i for batch in timed for i in batch})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a DataLoader worker, so that decode_ms is a worker's cost
    started = time.perf_counter()
    decoded = collate_readable([dataset[i] for i in used])  # decode + resize + augment + normalise, once
    decode_ms = (time.perf_counter() - started) / len(used) * 1000
    torch.set_num_threads(threads)
    if decoded.skipped:
        raise SystemExit(f"error: unreadable training images: {decoded.skipped[:3]}")
    row_of = {index: row for row, index in enumerate(used)}
    images, labels = decoded

    def from_memory(batches: list[list[int]]) -> Iterator[Batch]:
        for batch in batches:
            rows = torch.tensor([row_of[i] for i in batch])
            yield Batch(images.index_select(0, rows), labels.index_select(0, rows))

    torch.manual_seed(seed)
    weights = default_weights_path(args.model)
    model = build_model(args.model, len(splits.class_names), image_size=args.image_size,
                        pretrained=weights is not None)
    optimizer = train.make_optimizer(model, "adamw", lr=2e-3, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=10_000)
    criterion = torch.nn.CrossEntropyLoss()
    cpu = torch.device("cpu")

    def epoch(loader: Iterable[Batch], steps: int) -> None:
        train.train_one_epoch(model, loader, criterion, optimizer, scheduler, cpu, meter=train.EpochMeter(),
                              epoch=1, steps=steps)

    def loader_for(workers: int) -> Any:
        return make_loader(dataset, batch_size=args.batch_size, num_workers=workers, seed=seed * 1000,
                           batches=timed)

    def loader_alone(workers: int) -> float:
        started, seen = time.perf_counter(), 0
        for _, batch_labels in loader_for(workers):
            seen += batch_labels.numel()
        return seen / (time.perf_counter() - started)

    def stream(batches: Iterable[Batch]) -> Iterator[Batch]:
        """Started on the first next(), inside the first timed slice: worker start-up is timed once."""
        yield from batches

    epoch(from_memory(timed[: args.warmup]), args.warmup)  # first steps allocate: untimed
    feeds = {"memory": stream(from_memory(timed))}
    feeds.update({f"loader/{w}": stream(loader_for(w)) for w in args.num_workers})
    seen = dict.fromkeys(feeds, 0)
    seconds = dict.fromkeys(feeds, 0.0)
    names = list(feeds)
    sizes = [args.steps // args.slices + (i < args.steps % args.slices) for i in range(args.slices)]
    for number, size in enumerate(sizes):  # interleaved slices, the order reversed every other one
        for name in names if number % 2 == 0 else names[::-1]:
            meter = train.EpochMeter()
            train.train_one_epoch(model, itertools.islice(feeds[name], size), criterion, optimizer, scheduler, cpu,
                                  meter=meter, epoch=1, steps=size)
            seen[name] += meter.seen
            seconds[name] += meter.seconds
        print(f"  slice {number + 1}/{args.slices}: " + ", ".join(
            f"{name} {seen[name] / seconds[name]:.1f}" for name in names) + " images/s so far",
            file=sys.stderr, flush=True)
    for feed in feeds.values():
        feed.close()  # the loaders' workers end here
    rates = {name: seen[name] / seconds[name] for name in names}
    rates.update({f"alone/{w}": loader_alone(w) for w in args.num_workers})
    return {"rates": rates, "decode_ms": decode_ms, "train_images": len(dataset), "decoded_images": len(used),
            "classes": len(splits.class_names), "steps_per_epoch": len(per_epoch), "threads": torch.get_num_threads(),
            "pretrained": weights is not None, "model": args.model, "slices": args.slices}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result = ingest(args) if args.command == "ingest" else loading(args)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
