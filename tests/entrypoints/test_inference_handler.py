"""entrypoints/inference.py and the endpoint server's own pieces (entrypoints/serve.py and the
modules beside it), run in the job environment (torch lives there): one job-env process computes
every case, the tests judge. The micro-batcher has its own tests (test_batching.py)."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from core.config import DEFAULT_JOB_PYTHON, ENTRYPOINTS_DIR

CLASSES = ["circle", "cross", "square"]

_CASES = r'''
import asyncio, base64, io, json, struct, sys, threading, zlib
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import torch
from PIL import Image
from imagedata import IMAGENET_MEAN, IMAGENET_STD
from imagemodels import build_model, make_artifact
import inference
from inference import InferenceError, ImageBatch, input_fn, model_fn, output_fn, predict_fn, preprocess

tmp = Path(sys.argv[2])
classes = sys.argv[3].split(",")
out = {}
torch.manual_seed(0)
network = build_model("efficientnet_lite0", len(classes), image_size=32, pretrained=False).eval()
(tmp / "model").mkdir()
torch.save(make_artifact(network, arch="efficientnet_lite0", class_names=classes, image_size=32,
                         mean=IMAGENET_MEAN, std=IMAGENET_STD), tmp / "model" / "model.pth")

def image(fmt="JPEG", size=(40, 30), color=(200, 30, 30), mode="RGB"):
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format=fmt)
    return buffer.getvalue()

def b64(data):
    return base64.b64encode(data).decode()

def huge_png(width, height):
    """A tiny PNG whose header claims width x height (a decompression bomb's shape)."""
    data = bytearray(image("PNG", (8, 8)))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)

def corrupt_png():
    """A valid PNG header over a damaged pixel stream."""
    buffer = io.BytesIO()
    Image.effect_noise((64, 64), 50).convert("RGB").save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[100:140] = bytes(40)
    return bytes(data)

def outcome(fn):
    try:
        value = fn()
    except InferenceError as exc:
        return {"status": exc.status_code, "message": exc.message}
    except Exception as exc:
        return {"error": type(exc).__name__, "message": str(exc)}
    return {"status": 200, "value": value}

# --- model_fn ---------------------------------------------------------------------------------
model = model_fn(tmp / "model")
out["model"] = {"training": model.network.training, "classes": model.class_names, "size": model.image_size}
with torch.inference_mode():
    probe = torch.rand(4, 3, 32, 32)
    out["layout"] = {
        "channels_last": all(p.is_contiguous(memory_format=torch.channels_last)
                             for p in model.network.parameters() if p.dim() == 4),
        "max_diff_from_trained": (model.network(probe) - network(probe)).abs().max().item(),
    }
(tmp / "empty").mkdir()
(tmp / "garbage").mkdir()
(tmp / "garbage" / "model.pth").write_bytes(b"not weights")
(tmp / "not-artifact").mkdir()
torch.save({"weights": torch.zeros(2)}, tmp / "not-artifact" / "model.pth")
(tmp / "pickled").mkdir()
torch.save({"payload": Path("/etc/passwd")}, tmp / "pickled" / "model.pth")  # code, refused by weights_only
out["model_fn_errors"] = {name: outcome(lambda name=name: model_fn(tmp / name))
                          for name in ("empty", "garbage", "not-artifact", "pickled")}

# --- input_fn: what is accepted ------------------------------------------------------------------
def shapes(body, content_type):
    batch = input_fn(body, content_type)
    return {"n": len(batch.images), "top_k": batch.top_k, "modes": sorted({im.mode for im in batch.images}),
            "tensor": list(preprocess(batch, model).shape)}

accepted = {
    "jpeg": (image(), "image/jpeg"),
    "png": (image("PNG"), "image/png"),
    "png-as-jpeg-type": (image("PNG"), "image/jpeg"),
    "x-image-gif": (image("GIF"), "application/x-image"),
    "octet-stream-bmp": (image("BMP"), "application/octet-stream"),
    "webp": (image("WEBP"), "application/x-image"),
    "grey-png": (image("PNG", mode="L", color=128), "image/png"),
    "rgba-png": (image("PNG", mode="RGBA", color=(1, 2, 3, 0)), "image/png"),
    "big-photo": (image("JPEG", size=(4000, 3000)), "image/jpeg"),
    "type-with-params": (image(), "Image/JPEG; charset=binary"),
    "json-image": (json.dumps({"image": b64(image())}).encode(), "application/json"),
    "json-data-url": (json.dumps({"image": "data:image/png;base64," + b64(image("PNG"))}).encode(), "application/json"),
    "json-images": (json.dumps({"images": [b64(image()), b64(image("PNG"))], "top_k": 2}).encode(), "application/json"),
    "json-instances": (json.dumps({"instances": [{"b64": b64(image())}] * 3}).encode(),
                       "application/json; charset=utf-8"),
    "json-str-body": (json.dumps({"image": b64(image())}), "application/json"),
    "json-64-images": (json.dumps({"images": [b64(image(size=(8, 8)))] * 64}).encode(), "application/json"),
}
out["accepted"] = {name: outcome(lambda args=args: shapes(*args)) for name, args in accepted.items()}

# --- input_fn: every refusal ---------------------------------------------------------------------
jpeg = image(size=(64, 64))
refused = {
    "wrong-type": (jpeg, "text/plain"),
    "no-type": (jpeg, None),
    "empty": (b"", "image/jpeg"),
    "over-6MB": (b"\xff" * (6 * 1024 * 1024 + 1), "image/jpeg"),
    "not-image": (b"hello, world", "image/jpeg"),
    "pdf": (b"%PDF-1.7 ...", "application/x-image"),
    "tiff-not-allowed": (image("TIFF"), "application/x-image"),
    "truncated-jpeg": (jpeg[: len(jpeg) // 2], "image/jpeg"),
    "corrupt-png": (corrupt_png(), "image/png"),
    "too-many-pixels": (huge_png(8000, 6000), "image/png"),
    "bomb-beyond-pil-limit": (huge_png(20000, 20000), "image/png"),
    "bad-json": (b'{"image": ', "application/json"),
    "json-not-utf8": (b'{"image": "\xff\xfe"}', "application/json"),
    "json-array": (b"[]", "application/json"),
    "json-no-key": (b'{"picture": "aGk="}', "application/json"),
    "json-two-keys": (json.dumps({"image": b64(jpeg), "images": [b64(jpeg)]}).encode(), "application/json"),
    "bad-base64": (b'{"image": "not base64!"}', "application/json"),
    "empty-base64": (b'{"image": ""}', "application/json"),
    "image-not-string": (b'{"image": 12}', "application/json"),
    "images-empty": (b'{"images": []}', "application/json"),
    "images-not-list": (b'{"images": "aGk="}', "application/json"),
    "instances-without-b64": (b'{"instances": [{"bytes": "aGk="}]}', "application/json"),
    "too-many-images": (json.dumps({"images": [b64(jpeg)] * 65}).encode(), "application/json"),
    "top-k-zero": (json.dumps({"image": b64(jpeg), "top_k": 0}).encode(), "application/json"),
    "top-k-bool": (json.dumps({"image": b64(jpeg), "top_k": True}).encode(), "application/json"),
    "base64-not-image": (json.dumps({"images": [b64(jpeg), b64(b"text")]}).encode(), "application/json"),
}
out["refused"] = {name: outcome(lambda args=args: shapes(*args)) for name, args in refused.items()}

# --- preprocess, predict_fn, output_fn -----------------------------------------------------------
grey = ImageBatch([Image.new("RGB", (50, 20), (128, 128, 128))])
tensor = preprocess(grey, model)[0]
out["normalised"] = {"value": [float(tensor[c, 0, 0]) for c in range(3)],
                     "expected": [(128 / 255 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)],
                     "uniform": bool(torch.all(tensor == tensor[:, :1, :1]))}
pictures = [Image.new("RGB", (30 + 5 * i, 40), (40 * i, 255 - 40 * i, 20 * i)) for i in range(5)]
together = predict_fn(ImageBatch(pictures), model).probabilities
alone = torch.cat([predict_fn(ImageBatch([p]), model).probabilities for p in pictures])
out["batching"] = {"shape": list(together.shape), "max_diff": float((together - alone).abs().max()),
                   "row_sums": together.sum(dim=1).tolist(), "grad": together.requires_grad}

def answer(top_k, accept):
    body, content_type = output_fn(predict_fn(ImageBatch(pictures[:2], top_k), model), accept)
    return {"content_type": content_type, "json": json.loads(body)}

out["outputs"] = {
    name: outcome(lambda args=args: answer(*args))
    for name, args in {"default": (5, None), "top-2": (2, "application/json"), "any": (5, "*/*"),
                       "list": (5, "text/html, application/json;q=0.9"), "csv": (5, "text/csv")}.items()
}

# --- the server's own pieces ---------------------------------------------------------------------
from imagedata import eval_pixels, eval_transform, normalise_pixels
from http1 import parse_head
from loop_wakeups import Wakeups
from serve import keep_freed_memory

samples = [Image.effect_noise((57, 41), 80).convert("RGB"), Image.new("RGB", (32, 32), (10, 200, 30)),
           Image.effect_noise((20, 90), 30).convert("RGB"), Image.new("RGB", (7, 5), (255, 0, 128))]
whole, first_half = eval_transform(32), eval_pixels(32)
stacked = torch.stack([first_half(picture) for picture in samples])
out["split_transform"] = {
    "per_image": [torch.equal(whole(p), normalise_pixels(first_half(p))) for p in samples],
    "batched": torch.equal(normalise_pixels(stacked), torch.stack([whole(p) for p in samples])),
    "dtype": str(stacked.dtype), "shape": list(stacked.shape),
}

def head(raw):
    try:
        request = parse_head(raw)
    except ValueError as exc:
        return {"error": str(exc)}
    return {"method": request.method, "path": request.path, "version": request.version, "headers": request.headers,
            "length": request.body_length, "keep_alive": request.keep_alive}

out["heads"] = {
    "post": head(b"POST /invocations?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\nCONTENT-TYPE:image/jpeg\r\n\r\n"),
    "http10": head(b"GET /ping HTTP/1.0\r\n\r\n"),
    "http10-keep-alive": head(b"GET /ping HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"),
    "close": head(b"GET /ping HTTP/1.1\r\nConnection: close\r\n\r\n"),
    "bad-length": head(b"POST /invocations HTTP/1.1\r\nContent-Length: many\r\n\r\n"),
    "leading-blank-line": head(b"\r\nGET /ping HTTP/1.1\r\n\r\n"),
    "not-http": head(b"HELLO\r\n\r\n"),
    "http2": head(b"PRI * HTTP/2.0\r\n\r\n"),
    "bad-header": head(b"GET /ping HTTP/1.1\r\nno colon here\r\n\r\n"),
}

async def wakeups():
    loop = asyncio.get_running_loop()
    wake = Wakeups(loop)
    futures = [loop.create_future() for _ in range(4)]
    futures[3].cancel()  # a waiter that gave up: settling it is harmless
    def settle_all():
        wake.settle(futures[0], "a")
        wake.settle(futures[1], error=ValueError("bad"))
        wake.settle(futures[2], "c")
        wake.settle(futures[3], "late")
    settler = threading.Thread(target=settle_all)
    settler.start()
    settler.join()
    results = await asyncio.gather(*futures[:3], return_exceptions=True)
    return [r if isinstance(r, str) else f"{type(r).__name__}: {r}" for r in results]

out["wakeups"] = asyncio.run(wakeups())
out["keep_freed_memory"] = keep_freed_memory()
print(json.dumps(out))
'''


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("handler")
    result = subprocess.run(
        [str(DEFAULT_JOB_PYTHON), "-c", _CASES, str(ENTRYPOINTS_DIR), str(tmp), ",".join(CLASSES)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcomes: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    outcomes["model_dir"] = str(tmp / "model")
    return outcomes


def test_model_fn_loads_the_artifact_in_eval_mode(cases: dict[str, Any]) -> None:
    assert cases["model"] == {"training": False, "classes": CLASSES, "size": 32}


def test_model_fn_keeps_weights_channels_last_with_the_same_answers(cases: dict[str, Any]) -> None:
    assert cases["layout"]["channels_last"]  # oneDNN's layout: a third less time per pass on CPU
    assert cases["layout"]["max_diff_from_trained"] < 1e-5


@pytest.mark.parametrize(
    ("folder", "error", "words"),
    [
        ("empty", "FileNotFoundError", "no model.pth"),
        ("garbage", "ValueError", "not a readable model artifact"),
        ("not-artifact", "ValueError", "is not a model artifact"),
        ("pickled", "ValueError", "not a readable model artifact"),
    ],
)
def test_model_fn_refuses_what_is_not_an_artifact(cases: dict[str, Any], folder: str, error: str, words: str) -> None:
    got = cases["model_fn_errors"][folder]
    assert got["error"] == error and words in got["message"], got


ACCEPTED = {
    "jpeg": 1, "png": 1, "png-as-jpeg-type": 1, "x-image-gif": 1, "octet-stream-bmp": 1, "webp": 1, "grey-png": 1,
    "rgba-png": 1, "big-photo": 1, "type-with-params": 1, "json-image": 1, "json-data-url": 1, "json-images": 2,
    "json-instances": 3, "json-str-body": 1, "json-64-images": 64,
}


@pytest.mark.parametrize("name", ACCEPTED)
def test_input_fn_accepts(cases: dict[str, Any], name: str) -> None:
    got = cases["accepted"][name]
    assert got["status"] == 200, got
    n = ACCEPTED[name]
    assert got["value"]["n"] == n
    assert got["value"]["modes"] == ["RGB"]
    assert got["value"]["tensor"] == [n, 3, 32, 32]
    assert got["value"]["top_k"] == (2 if name == "json-images" else 5)


REFUSED = {
    "wrong-type": (415, "'text/plain' is not supported: use one of"),
    "no-type": (415, "'(none)' is not supported"),
    "empty": (400, "the request body is empty"),
    "over-6MB": (413, "the limit is 6,291,456 (6 MB)"),
    "not-image": (400, "the body is not an image in a supported format"),
    "pdf": (400, "not an image in a supported format"),
    "tiff-not-allowed": (400, "not an image in a supported format (JPEG, PNG, GIF, BMP, WEBP)"),
    "truncated-jpeg": (400, "the body cannot be decoded (corrupt or truncated)"),
    "corrupt-png": (400, "cannot be decoded"),
    "too-many-pixels": (400, "8000x6000 = 48,000,000 pixels; the limit is 40,000,000"),
    "bomb-beyond-pil-limit": (400, "too many pixels"),
    "bad-json": (400, "the body is not valid JSON"),
    "json-not-utf8": (400, "not valid JSON"),
    "json-array": (400, "must be an object"),
    "json-no-key": (400, 'exactly one of "image", "images" or "instances"'),
    "json-two-keys": (400, "exactly one of"),
    "bad-base64": (400, "image is not valid base64"),
    "empty-base64": (400, "image is empty"),
    "image-not-string": (400, "image must be a base64 string, not int"),
    "images-empty": (400, '"images" must be a non-empty list'),
    "images-not-list": (400, '"images" must be a non-empty list'),
    "instances-without-b64": (400, 'instances[0] must be {"b64": "<base64>"}'),
    "too-many-images": (400, "holds 65 images; the limit is 64 per request"),
    "top-k-zero": (400, '"top_k" must be a positive integer'),
    "top-k-bool": (400, '"top_k" must be a positive integer'),
    "base64-not-image": (400, "images[1] is not an image"),
}


@pytest.mark.parametrize("name", REFUSED)
def test_input_fn_refuses_with_status_and_message(cases: dict[str, Any], name: str) -> None:
    status, words = REFUSED[name]
    got = cases["refused"][name]
    assert got.get("status") == status, got
    assert words in got["message"], got


def test_preprocess_resizes_and_normalises_like_training(cases: dict[str, Any]) -> None:
    got = cases["normalised"]
    assert got["uniform"]
    assert got["value"] == pytest.approx(got["expected"], abs=1e-5)


def test_predict_fn_batches_without_changing_answers(cases: dict[str, Any]) -> None:
    got = cases["batching"]
    assert got["shape"] == [5, 3]
    assert got["max_diff"] < 1e-5
    assert got["row_sums"] == pytest.approx([1.0] * 5, abs=1e-5)
    assert got["grad"] is False


def test_output_fn_answers_top_k_json(cases: dict[str, Any]) -> None:
    outputs = cases["outputs"]
    for name in ("default", "any", "list"):
        got = outputs[name]["value"]
        assert got["content_type"] == "application/json"
        predictions = got["json"]["predictions"]
        assert len(predictions) == 2
        for item in predictions:
            labels = [entry["label"] for entry in item["top_k"]]
            probabilities = [entry["probability"] for entry in item["top_k"]]
            assert sorted(labels) == CLASSES  # k=5 is cut to the 3 classes
            assert probabilities == sorted(probabilities, reverse=True)
            assert sum(probabilities) == pytest.approx(1.0, abs=1e-4)
    assert [len(item["top_k"]) for item in outputs["top-2"]["value"]["json"]["predictions"]] == [2, 2]
    assert outputs["csv"]["status"] == 406 and "application/json" in outputs["csv"]["message"]


def test_the_servers_split_preprocessing_is_bit_identical_to_training(cases: dict[str, Any]) -> None:
    got = cases["split_transform"]
    assert got == {"per_image": [True] * 4, "batched": True, "dtype": "torch.uint8", "shape": [4, 3, 32, 32]}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("post", {"method": "POST", "path": "/invocations", "version": "HTTP/1.1", "length": 12, "keep_alive": True,
                  "headers": {"host": "a", "content-length": "12", "content-type": "image/jpeg"}}),
        ("http10", {"method": "GET", "path": "/ping", "version": "HTTP/1.0", "headers": {}, "length": None,
                    "keep_alive": False}),
        ("http10-keep-alive", {"method": "GET", "path": "/ping", "version": "HTTP/1.0", "length": None,
                               "headers": {"connection": "Keep-Alive"}, "keep_alive": True}),
        ("close", {"method": "GET", "path": "/ping", "version": "HTTP/1.1", "headers": {"connection": "close"},
                   "length": None, "keep_alive": False}),
        ("bad-length", {"method": "POST", "path": "/invocations", "version": "HTTP/1.1", "length": None,
                        "headers": {"content-length": "many"}, "keep_alive": True}),
        ("leading-blank-line", {"method": "GET", "path": "/ping", "version": "HTTP/1.1", "headers": {}, "length": None,
                                "keep_alive": True}),
        ("not-http", {"error": "not an HTTP/1.x request line: b'HELLO'"}),
        ("http2", {"error": "not an HTTP/1.x request line: b'PRI * HTTP/2.0'"}),
        ("bad-header", {"error": "not a header line: b'no colon here'"}),
    ],
)
def test_parse_head(cases: dict[str, Any], name: str, expected: dict[str, Any]) -> None:
    assert cases["heads"][name] == expected


def test_wakeups_resolve_futures_settled_on_other_threads(cases: dict[str, Any]) -> None:
    assert cases["wakeups"] == ["a", "ValueError: bad", "c"]


def test_freed_memory_is_kept_on_glibc(cases: dict[str, Any]) -> None:
    assert cases["keep_freed_memory"] is True


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_serve_refuses_a_taken_port_and_stops_gracefully_on_sigterm(cases: dict[str, Any], tmp_path: Path) -> None:
    port = _free_port()
    command = [str(DEFAULT_JOB_PYTHON), str(ENTRYPOINTS_DIR / "serve.py"), "--model", cases["model_dir"],
               "--port", str(port), "--name", "solo", "--scratch-dir", str(tmp_path)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "the server never became healthy"
            time.sleep(0.1)
        second = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        assert f"ERROR: cannot listen on 127.0.0.1:{port}" in second.stdout
        server.terminate()
        output, _ = server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert server.returncode == 0
    assert "pad_from=" in output  # the start-up line says from which batch size batches are padded
    assert "stopping: finishing the requests in flight" in output and output.rstrip().endswith("stopped")
    assert list(tmp_path.iterdir()) == []  # the unpacked-model scratch folder is gone
