"""Dataset ingest (time and memory) and training data loading at 224 px against plain baselines, in one run.

Run with the app environment's interpreter (the loading part runs in the job environment)::

    .venv/bin/python benchmarks/bench_ingest.py [--scale 1.0 | --zip dogImages.zip]

Without ``--zip`` it writes the dog-breeds stand-in (``core.datasets.standin``; at scale 1.0
8,351 JPEGs, about 1.05 GB, plus its six broken files) and zips it as dogImages.zip is laid out.
Every ingest runs in a fresh process (``benchmarks/_ingest_worker.py``), one after another:

1. Ingest time, on the local backend (a workspace folder) and on the aws backend against moto's
   S3 server on 127.0.0.1. The app: ``check_dataset`` of a ``ZipUpload`` (extract + validate),
   ``register_dataset`` (upload of the usable files + ``excluded.json``), then ``discard()``.
   The baseline: ``ZipFile.extractall`` into a temporary folder, then ``shutil.copytree`` into a
   folder (local) or one boto3 ``upload_file`` per file with its default transfer settings (S3),
   then the temporary folder removed. Target: app <= 1.5x baseline.
2. Peak RSS during the ingest above the process's idle RSS (after imports, with the backend or
   S3 client built). Target: app <= 300 MB.
3. Training data loading at ``--image-size`` (job environment): ``train.train_one_epoch``
   (train.py's default model, EfficientNet-Lite0, forward + backward + AdamW step) fed by train.py's
   own loader over the app's local copy of the dataset (``imagedata.load_splits`` +
   ``make_loader``, ``light`` augmentation), against the same loop over the same batches taken
   from the images decoded once into memory, in interleaved slices. Target: loader >= 0.9x decoded.

The zip is read once before the first ingest, so that every run finds it in the page cache.
moto keeps objects in this process's memory; the bucket is emptied after every S3 run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
WORKER = REPO_ROOT / "benchmarks" / "_ingest_worker.py"
JOB_PYTHON = REPO_ROOT / ".venv-job" / "bin" / "python"
sys.path.insert(0, str(REPO_ROOT))

from core.datasets.standin import write_standin_folder, write_standin_zip  # noqa: E402

REGION = "us-east-1"
BUCKET = "bench-ingest"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_SESSION_TOKEN": "testing"}
TIME_TARGET = 1.5
RSS_TARGET_MB = 300.0
LOADING_TARGET = 0.9
SETTINGS = (("local", "app"), ("local", "baseline"), ("s3", "app"), ("s3", "baseline"))
BACKEND_LABELS = {"local": "local (workspace folder)", "s3": "S3 (moto server, 127.0.0.1)"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="stand-in size, a fraction of dogImages")
    parser.add_argument("--zip", type=Path, default=None, help="an existing dataset zip (instead of the stand-in)")
    parser.add_argument("--workers", type=int, default=2, help="processes that render the stand-in")
    parser.add_argument("--rounds", type=int, default=1, help="ingest rounds (all four settings each); best kept")
    parser.add_argument("--image-size", type=int, default=224, help="training input side in pixels")
    parser.add_argument("--batch-size", type=int, default=32, help="images per training step")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per setting")
    parser.add_argument("--slices", type=int, default=4, help="interleaved slices the timed steps are cut into")
    parser.add_argument("--num-workers", type=int, nargs="+", default=[2], help="DataLoader workers (one or more)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (its path is printed)")
    return parser


# --- the zip and the S3 server -------------------------------------------------------------------


def make_zip(scratch: Path, scale: float, workers: int) -> Path:
    """The stand-in at ``scale``, zipped with a ``dogImages/`` top folder; the folder is removed."""
    started = time.perf_counter()
    dataset = write_standin_folder(scratch / "dogImages", scale=scale, workers=workers)
    zip_path = write_standin_zip(dataset.root, scratch / "dogImages.zip")
    shutil.rmtree(dataset.root)
    print(f"stand-in: {dataset.total_images:,} images + {len(dataset.bad_files)} broken files, "
          f"{zip_path.stat().st_size / 1e9:.3f} GB zipped, written in {time.perf_counter() - started:.0f} s",
          flush=True)
    return zip_path


def read_through(path: Path) -> None:
    """Reads the file once, so that no run pays for the first read from disk."""
    with open(path, "rb") as file:
        while file.read(1 << 24):
            pass


def worker_environment(endpoint: str, scratch: Path) -> dict[str, str]:
    """This environment without AWS_* settings, plus fake credentials for moto and no config files."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    (scratch / "aws-config").write_text("")
    env.update(FAKE_CREDENTIALS, AWS_DEFAULT_REGION=REGION, AWS_ENDPOINT_URL=endpoint,
               AWS_CONFIG_FILE=str(scratch / "aws-config"), AWS_SHARED_CREDENTIALS_FILE=str(scratch / "aws-config"),
               AWS_EC2_METADATA_DISABLED="true", NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    return env


def s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client("s3", region_name=REGION, endpoint_url=endpoint, aws_access_key_id="testing",
                        aws_secret_access_key="testing", aws_session_token="testing")


def empty_bucket(s3: Any) -> None:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=BUCKET, Delete={"Objects": keys, "Quiet": True})


# --- runs ---------------------------------------------------------------------------------------


def run_worker(command: list[str], env: dict[str, str], timeout_s: float) -> dict[str, Any]:
    """Runs the worker; returns the JSON of its last stdout line."""
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout_s)
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise SystemExit(f"error: {' '.join(command[1:4])} failed (exit {result.returncode}):\n"
                         f"{result.stdout[-2000:]}{result.stderr[-3000:]}")
    return dict(json.loads(lines[-1]))


def ingest(backend: str, mode: str, zip_path: Path, scratch: Path, env: dict[str, str]) -> dict[str, Any]:
    command = [sys.executable, str(WORKER), "ingest", "--mode", mode, "--backend", backend, "--zip", str(zip_path),
               "--scratch", str(scratch), "--region", REGION, "--bucket", BUCKET]
    result = run_worker(command, env, timeout_s=3600)
    stages = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in result["stages"].items())
    print(f"  {backend} {mode}: {result['seconds']:.1f} s ({stages}), {result['files']:,} files, "
          f"RSS idle {result['idle_rss_mb']:.0f} MB, peak +{result['peak_above_idle_mb']:.0f} MB", flush=True)
    return result


def loading(args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    """The loading part, in the job environment; its progress lines go straight to stderr."""
    command = [str(JOB_PYTHON), str(WORKER), "loading", "--data-dir", str(data_dir),
               "--image-size", str(args.image_size), "--batch-size", str(args.batch_size), "--steps", str(args.steps),
               "--slices", str(args.slices), "--num-workers", *map(str, args.num_workers)]
    print(f"training data loading at {args.image_size} px ({args.steps} steps of {args.batch_size} per feed) ...",
          flush=True)
    result = subprocess.run(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True, timeout=3600)
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise SystemExit(f"error: the loading run failed (exit {result.returncode}):\n{result.stdout[-2000:]}")
    return dict(json.loads(lines[-1]))


# --- tables -------------------------------------------------------------------------------------


def verdict(met: bool) -> str:
    return "met" if met else "**NOT met**"


def seconds_with_stages(result: dict[str, Any]) -> str:
    stages = " + ".join(f"{seconds:.1f}" for seconds in result["stages"].values())
    return f"{result['seconds']:.1f} s ({stages})"


def print_time_table(best: dict[tuple[str, str], dict[str, Any]]) -> None:
    print("\n**Ingest wall time.** App: `check_dataset` (extract + validate) + `register_dataset` (upload of the "
          "usable files and excluded.json) + `discard()`. Baseline: `ZipFile.extractall` into a temporary folder, "
          "then `shutil.copytree` into a folder (local) or one boto3 `upload_file` per file, default transfer "
          "settings (S3), then the temporary folder removed.\n")
    print("| backend | app: check + upload + discard | baseline: extract + copy/upload + clean up "
          "| app / baseline | target ≤ 1.5× |")
    print("|---|---:|---:|---:|---|")
    for backend in ("local", "s3"):
        app, base = best[(backend, "app")], best[(backend, "baseline")]
        ratio = app["seconds"] / base["seconds"]
        print(f"| {BACKEND_LABELS[backend]} | {seconds_with_stages(app)} | {seconds_with_stages(base)} "
              f"| {ratio:.2f}× | {verdict(ratio <= TIME_TARGET)} |")
    files = {backend: (best[(backend, "app")]["files"], best[(backend, "baseline")]["files"])
             for backend in ("local", "s3")}
    print("\nFiles stored: " + "; ".join(f"{backend}: app {app:,} (usable images + excluded.json), baseline {base:,} "
                                          "(every file)" for backend, (app, base) in files.items()))


def print_memory_table(best: dict[tuple[str, str], dict[str, Any]]) -> None:
    print("\n**Peak RSS during the ingest, above idle** (a fresh process each; idle: after imports, with the "
          "backend or S3 client built; peak: RSS sampled every 50 ms, and `ru_maxrss`).\n")
    print("| backend | app idle | app peak above idle | baseline idle | baseline peak above idle | target ≤ 300 MB |")
    print("|---|---:|---:|---:|---:|---|")
    for backend in ("local", "s3"):
        app, base = best[(backend, "app")], best[(backend, "baseline")]
        print(f"| {BACKEND_LABELS[backend]} | {app['idle_rss_mb']:.0f} MB | {app['peak_above_idle_mb']:.0f} MB "
              f"| {base['idle_rss_mb']:.0f} MB | {base['peak_above_idle_mb']:.0f} MB "
              f"| {verdict(app['peak_above_idle_mb'] <= RSS_TARGET_MB)} |")


def print_loading_table(args: argparse.Namespace, result: dict[str, Any]) -> None:
    rates = result["rates"]
    memory = rates["memory"]
    print(f"\n**Training data loading at {args.image_size} px** ({result['model']}, "
          f"{'pretrained' if result['pretrained'] else 'random init'}, batch {args.batch_size}, {args.steps} timed "
          f"steps, `train.train_one_epoch`, {result['threads']} torch threads; {result['train_images']:,} train "
          f"images, {result['classes']} classes). Baseline: the same loop over the same batches cut from "
          f"{result['decoded_images']:,} images decoded and transformed once into one tensor.\n")
    print("| feed | num_workers | images/s | ÷ decoded | target ≥ 0.9× |")
    print("|---|---:|---:|---:|---|")
    print(f"| decoded tensors in memory (baseline) | – | {memory:.1f} | 1.00 | |")
    for workers in args.num_workers:
        rate = rates[f"loader/{workers}"]
        print(f"| train.py's DataLoader (`make_loader`) | {workers} | {rate:.1f} | {rate / memory:.2f} "
              f"| {verdict(rate >= LOADING_TARGET * memory)} |")
    for workers in args.num_workers:
        print(f"| the DataLoader alone, no model | {workers} | {rates[f'alone/{workers}']:.1f} | | |")
    cost = result["decode_ms"]
    fed = max(rates[f"loader/{workers}"] for workers in args.num_workers)
    alone = ", ".join(f"{rates[f'alone/{w}'] / fed:.0f}× with {w}" for w in args.num_workers)  # e.g. "90× with 2"
    print(f"\nEach feed's steps ran in {result['slices']} interleaved slices, so that all see the same background "
          "load; a loader's workers start once, in its first slice, as in an epoch of train.py. What the loader "
          f"needs: decoding, resizing, augmenting and normalising one image costs {cost:.1f} ms of one core (one "
          f"torch thread, as in a worker), so feeding {fed:.0f} images/s takes about {fed * cost / 1000:.2f} of this "
          f"machine's {os.cpu_count()} cores, taken from the model's torch threads; alone, the loader delivers "
          f"{alone} workers what the model consumes.")


# --- main ---------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.zip is not None and not zipfile.is_zipfile(args.zip):
        raise SystemExit(f"error: {args.zip} is not a zip file")
    started = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        zip_path = args.zip.resolve() if args.zip else make_zip(scratch, args.scale, args.workers)
        best, data_dir = ingest_rounds(args, zip_path, scratch)
        loaded = loading(args, data_dir)
    finally:
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    print_time_table(best)
    print_memory_table(best)
    print_loading_table(args, loaded)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0


def ingest_rounds(args: argparse.Namespace, zip_path: Path,
                  scratch: Path) -> tuple[dict[tuple[str, str], dict[str, Any]], Path]:
    """Every setting ``--rounds`` times against one moto server; the fastest run of each, and the
    folder of the app's local copy (kept for the loading part)."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request
    read_through(zip_path)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        s3 = s3_client(endpoint)
        s3.create_bucket(Bucket=BUCKET)
        env = worker_environment(endpoint, scratch)
        print(f"zip={zip_path} ({zip_path.stat().st_size / 1e9:.3f} GB) cpus={os.cpu_count()} rounds={args.rounds} "
              f"moto={endpoint}", flush=True)
        best: dict[tuple[str, str], dict[str, Any]] = {}
        data_dir = scratch / "run-local-app" / "workspace" / "storage" / "datasets" / "bench-ingest"
        for round_ in range(1, args.rounds + 1):
            print(f"ingest round {round_}/{args.rounds}:", flush=True)
            for backend, mode in SETTINGS:
                run_dir = scratch / f"run-{backend}-{mode}"
                shutil.rmtree(run_dir, ignore_errors=True)
                run_dir.mkdir()
                result = ingest(backend, mode, zip_path, run_dir, env)
                if backend == "s3":
                    empty_bucket(s3)
                if (backend, mode) != ("local", "app"):  # the app's local copy is what the loading part reads
                    shutil.rmtree(run_dir)
                if (backend, mode) not in best or result["seconds"] < best[(backend, mode)]["seconds"]:
                    best[(backend, mode)] = result
    finally:
        server.stop()
    return best, data_dir


if __name__ == "__main__":
    sys.exit(main())
