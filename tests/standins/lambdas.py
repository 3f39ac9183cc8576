"""A loopback AWS Lambda in front of a moto server: moto's answers, and Invoke that runs the code.

moto 5.2.5 runs no function code without Docker. :class:`LambdaStandIn` is a small HTTP proxy
on 127.0.0.1: point the ``lambda`` service at it (``AWS_ENDPOINT_URL_LAMBDA``) and everything
else at moto. It forwards every request to moto unchanged, and:

- keeps the zip of every ``CreateFunction`` / ``UpdateFunctionCode`` that passes through it
  (``Code.ZipFile`` / ``ZipFile``), by its ``CodeSha256``: moto's ``GetFunction`` answers a
  ``Code.Location`` on AWS's host that moto server does not serve (its bucket does not exist
  there), so the stand-in cannot fetch the code back. Code from S3 or an image is not stood in;
- implements synchronous ``Invoke`` (``POST /2015-03-31/functions/{name}/invocations`` with
  ``RequestResponse``, or ``DryRun``; an ``Event`` invocation goes to moto unchanged). It reads
  the function from moto (``GetFunction``: role, environment, timeout, memory, code hash;
  ``GetFunctionConcurrency``), assumes the function's role at moto STS as Lambda does (the
  session is named after the function; the Runtime stand-in learns the new key, so the
  endpoint is called as that role), and runs the handler in its own process with the local
  backend's bootstrap (``core/lambdas/_bootstrap.py``: Lambda's context object, its log format,
  ``START``/``END``/``REPORT`` lines, the function's timeout). The process gets the function's
  environment, the session's credentials, ``AWS_REGION``, ``AWS_ENDPOINT_URL`` (moto) and
  ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`` (the Runtime stand-in), those of :attr:`service_urls`, and
  nothing of the test's. Its output goes to the function's log group at moto, as Lambda's does.

Invoke answers as Lambda does: ``StatusCode`` 200 with the handler's JSON result;
``X-Amz-Function-Error: Unhandled`` with ``errorMessage``/``errorType`` when it raised (or timed
out: ``Sandbox.Timedout``); with ``LogType=Tail``, ``X-Amz-Log-Result``: base64 of the last
4 KB of the invocation's log. A payload that is not JSON is ``InvalidRequestContentException``;
an invocation beyond the function's reserved concurrency (0 throttles every one) is
``TooManyRequestsException`` (429). moto's errors (an unknown function) come back with moto's code and
message. Every answer the stand-in writes is checked against botocore's ``lambda`` model.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from botocore.exceptions import ClientError

from core.lambdas._local import BOOTSTRAP
from tests.standins.runtime import (
    Answer,
    LoopbackService,
    RuntimeStandIn,
    SessionCredentials,
    StandInError,
    credential_scope,
    rest_answer,
)

LOG_TAIL_BYTES = 4096
"""``LogResult`` holds the last 4 KB of the log."""
BACKSTOP_S = 30.0
"""The bootstrap enforces the function's timeout itself; past this much more, the run is a stand-in failure."""
_INVOKE_PATH = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations$")
_CREATE_PATH = "/2015-03-31/functions"
_UPDATE_CODE_PATH = re.compile(r"^/2015-03-31/functions/([^/]+)/code$")
_THROTTLED = {"Type": "User", "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"}


class LambdaStandIn(LoopbackService):
    """Lambda with Invoke that runs the function's code (see the module docstring).

    Args:
        upstream: the moto server's URL (``http://127.0.0.1:PORT``).
        runtime: the Runtime stand-in the function's ``sagemaker-runtime`` client calls.
        region: the region of unsigned requests (a signed one names its own).
        python: the interpreter standing in for Lambda's Python runtime (it needs boto3).
    """

    thread_name = "lambda-stand-in"

    def __init__(self, upstream: str, runtime: RuntimeStandIn, *, region: str = "us-east-1",
                 python: Path = Path(sys.executable)) -> None:
        super().__init__(upstream, "lambda")
        self.runtime = runtime
        self.region = region
        self.service_urls: dict[str, str] = {}
        """More ``AWS_ENDPOINT_URL_<SERVICE>`` for the function's process (other stand-ins)."""
        self.python = Path(python)
        self._zips: dict[str, bytes] = {}
        self._running: dict[str, int] = {}
        self._lock = threading.Lock()
        self._unpack_lock = threading.Lock()
        self._workdir: Path | None = None

    def start(self) -> LambdaStandIn:
        self._workdir = Path(tempfile.mkdtemp(prefix="lambda-stand-in-"))
        super().start()
        return self

    def stop(self) -> None:
        """Stops serving; removes the unpacked code."""
        super().stop()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
        self._workdir = None

    def __enter__(self) -> LambdaStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- requests --------------------------------------------------------------------------------------

    def answer(self, method: str, path: str, body: bytes, headers: Mapping[str, str]) -> Answer:
        parsed = urlparse(path)
        lowered = {k.lower(): v for k, v in headers.items()}
        invoke = _INVOKE_PATH.match(parsed.path)
        if method == "POST" and invoke and lowered.get("x-amz-invocation-type", "RequestResponse") != "Event":
            qualifier = parse_qs(parsed.query).get("Qualifier", [None])[0]
            return self._invoke(unquote(invoke.group(1)), qualifier, body, lowered)
        answer = self.forward(method, path, body, headers)
        if method == "POST" and parsed.path == _CREATE_PATH:
            self._keep_code(answer, json.loads(body).get("Code", {}).get("ZipFile"))
        elif method == "PUT" and _UPDATE_CODE_PATH.match(parsed.path):
            self._keep_code(answer, json.loads(body).get("ZipFile"))
        return answer

    def _keep_code(self, answer: Answer, zip_file: str | None) -> None:
        """Keeps a zip moto accepted, by its CodeSha256 (base64 of its SHA-256, as Lambda writes it)."""
        status, _headers, body = answer
        if status >= 300 or zip_file is None:
            return
        data = base64.b64decode(zip_file)
        sha256 = base64.b64encode(hashlib.sha256(data).digest()).decode()
        if json.loads(body).get("CodeSha256") != sha256:
            self.errors.append(f"moto's CodeSha256 is not the uploaded zip's ({sha256})")
        with self._lock:
            self._zips[sha256] = data

    # --- Invoke -----------------------------------------------------------------------------------------

    def _invoke(self, name: str, qualifier: str | None, payload: bytes, headers: Mapping[str, str]) -> Answer:
        scope = credential_scope(headers.get("authorization"))
        region = scope[1] if scope else self.region
        functions = self.client("lambda", region)
        config = _moto(lambda: functions.get_function(
            FunctionName=name, **({"Qualifier": qualifier} if qualifier else {})))["Configuration"]
        if payload:
            try:
                json.loads(payload)
            except ValueError as exc:
                raise StandInError("InvalidRequestContentException",
                                   f"Could not parse request body into json: {exc}", 400, Type="User") from None
        if headers.get("x-amz-invocation-type") == "DryRun":
            return rest_answer(self.model, "Invoke", {"StatusCode": 204})
        reserved = _moto(lambda: functions.get_function_concurrency(
            FunctionName=config["FunctionName"])).get("ReservedConcurrentExecutions")
        with self._slot(config["FunctionArn"], reserved):
            code_dir = self._code_dir(config["CodeSha256"])
            credentials = self.runtime.assume_role(config["Role"], config["FunctionName"], region)
            outcome, log = self._run(config, code_dir, payload, credentials, region)
        self._ship_log(config["FunctionName"], log, region)
        output: dict[str, Any] = {"StatusCode": 200, "ExecutedVersion": config["Version"]}
        if "error" in outcome:
            output["FunctionError"], output["Payload"] = "Unhandled", json.dumps(outcome["error"]).encode()
        else:
            output["Payload"] = json.dumps(outcome["result"]).encode()
        if headers.get("x-amz-log-type") == "Tail":
            output["LogResult"] = base64.b64encode(log[-LOG_TAIL_BYTES:]).decode()
        return rest_answer(self.model, "Invoke", output)

    @contextmanager
    def _slot(self, function_arn: str, reserved: int | None) -> Iterator[None]:
        """One of the function's reserved concurrent executions; TooManyRequestsException when none is free."""
        with self._lock:
            running = self._running.get(function_arn, 0)
            if reserved is not None and running >= reserved:
                raise StandInError("TooManyRequestsException", "Rate Exceeded.", 429, **_THROTTLED)
            self._running[function_arn] = running + 1
        try:
            yield
        finally:
            with self._lock:
                self._running[function_arn] -= 1

    def _code_dir(self, code_sha256: str) -> Path:
        """The function's zip, unpacked once per CodeSha256.

        Raises:
            RuntimeError: the code never passed through the stand-in (a stand-in failure).
        """
        assert self._workdir is not None, "start() first"
        with self._lock:
            data = self._zips.get(code_sha256)
        if data is None:
            raise RuntimeError(f"no code with CodeSha256 {code_sha256}: create or update the function's code through "
                               "the stand-in, as a zip (moto does not serve it back)")
        folder = self._workdir / hashlib.sha256(code_sha256.encode()).hexdigest()[:16]
        with self._unpack_lock:
            if not folder.exists():
                staging = Path(tempfile.mkdtemp(dir=self._workdir))
                with zipfile.ZipFile(BytesIO(data)) as archive:
                    archive.extractall(staging)
                staging.rename(folder)
        return folder

    def _run(self, config: Mapping[str, Any], code_dir: Path, payload: bytes, credentials: SessionCredentials,
             region: str) -> tuple[dict[str, Any], bytes]:
        """Runs the handler once in its own process: its outcome (``result`` or ``error``) and its log."""
        assert self._workdir is not None, "start() first"
        timeout_s = int(config.get("Timeout", 3))
        with tempfile.TemporaryDirectory(dir=self._workdir) as scratch:
            result_file = Path(scratch) / "result.json"
            process = subprocess.run(
                [str(self.python), str(BOOTSTRAP), str(code_dir), str(result_file)], input=payload,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=code_dir,
                env=self._environment(config, code_dir, credentials, region), timeout=timeout_s + BACKSTOP_S,
            )
            if not result_file.exists():  # the runtime died before the bootstrap could write an outcome
                message = f"Error: Runtime exited with error: exit status {process.returncode}"
                return {"error": {"errorType": "Runtime.ExitError", "errorMessage": message}}, process.stdout
            outcome = json.loads(result_file.read_text())
        return outcome, process.stdout

    def _environment(self, config: Mapping[str, Any], code_dir: Path, credentials: SessionCredentials,
                     region: str) -> dict[str, str]:
        """What Lambda's runtime gives the function, with moto and the Runtime stand-in as its AWS."""
        name = config["FunctionName"]
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "TZ": "UTC",
            "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1",
            **((config.get("Environment") or {}).get("Variables") or {}),
            "LAMBDA_TASK_ROOT": str(code_dir), "AWS_REGION": region, "AWS_DEFAULT_REGION": region,
            "AWS_ACCESS_KEY_ID": credentials.access_key_id, "AWS_SECRET_ACCESS_KEY": credentials.secret_access_key,
            "AWS_SESSION_TOKEN": credentials.session_token,
            "AWS_ENDPOINT_URL": self.upstream_url, "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": self.runtime.url,
            "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_LAMBDA_FUNCTION_NAME": name, "AWS_LAMBDA_FUNCTION_VERSION": config["Version"],
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.get("MemorySize", 128)),
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(config.get("Timeout", 3)),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"{time.strftime('%Y/%m/%d')}/[{config['Version']}]{uuid.uuid4().hex}",
            "SMC_FUNCTION_ARN": config["FunctionArn"],  # the bootstrap's context.invoked_function_arn
            "_HANDLER": config["Handler"],
            **self.service_urls,
        }

    def _ship_log(self, name: str, log: bytes, region: str) -> None:
        """The invocation's lines to the function's log group at moto, one event each, as Lambda writes them."""
        logs, group = self.client("logs", region), f"/aws/lambda/{name}"
        stream = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"
        try:
            logs.create_log_group(logGroupName=group)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceAlreadyExistsException":
                raise
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
        now = int(time.time() * 1000)
        lines = [line for line in log.decode("utf-8", errors="replace").splitlines() if line.strip()]
        if lines:
            logs.put_log_events(logGroupName=group, logStreamName=stream,
                                logEvents=[{"timestamp": now, "message": line} for line in lines])


def _moto(call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """moto's answer; its error (an unknown function, ...) is passed on to the caller with its code and message."""
    try:
        return call()
    except ClientError as exc:
        error = exc.response["Error"]
        raise StandInError(error["Code"], error.get("Message", ""),
                           exc.response["ResponseMetadata"]["HTTPStatusCode"]) from None
