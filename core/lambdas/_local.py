"""Lambda functions run locally: the deployed zip, one fresh process per invocation.

A function lives in ``<workspace>/lambda/<name>/``: ``function.json`` (its configuration),
``function.zip`` and ``code/`` (the same package AWS would get, unpacked), ``logs.txt`` (its
"log group"). Its role lives in local IAM (``core.lambdas._local_iam``), where every local
endpoint server reads it. An invocation runs ``_bootstrap.py`` with the job environment's
interpreter, the function's environment variables, a fresh session of its role as
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``, and
``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`` pointing at the endpoint's local server: the handler's
own boto3 client signs the call, and the server allows or denies it by the role's policy.
Reserved concurrency is enforced with one lock file per slot.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
import zipfile
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from io import BytesIO
from pathlib import Path
from typing import Any

from core.endpoints import EndpointManager, EndpointStatus
from core.endpoints._local import IAM_FOLDER, LOCAL_ACCOUNT_ID
from core.errors import BackendError, InvalidInputError, NotFoundError
from core.job_environment import require_ready
from core.lambdas._base import FunctionManager, invocation_from_result
from core.lambdas._local_iam import LocalIam
from core.lambdas.bundle import LAMBDA_DIR, build_package
from core.lambdas.entities import HANDLER, FunctionInfo, FunctionInvocation, FunctionSpec
from core.lambdas.policies import PolicyScope, execution_policy, log_group_name, trust_policy

BOOTSTRAP = Path(__file__).with_name("_bootstrap.py")
POLICY_NAME = "least-privilege"
BACKSTOP_S = 30.0
"""Beyond the function's own timeout (enforced inside the process), the process is killed."""
MAX_LOG_BYTES = 2 * 1024 * 1024
"""logs.txt is cut back to its second half past this size."""


def role_name_for(function_name: str) -> str:
    """The execution role's name: the function's with ``-role`` (64 characters at most)."""
    return f"{function_name[:59]}-role"


class LocalFunctionManager(FunctionManager):
    """Runs the Lambda package on this machine against local endpoints.

    Args:
        workspace: the workspace folder (functions under ``lambda/``, roles under ``iam/``).
        job_python: the interpreter that stands in for Lambda's Python runtime (has boto3).
        endpoints: the local endpoint manager (functions call its servers).
        region: the region the function "runs" in; its policy names it.
        source_dir: the function's source folder (``lambda/``).
    """

    backend_name = "local"
    runs_where = ("Locally it runs in its own process with a local role's credentials; the endpoint server checks "
                  "that role's policy on every call, as AWS does.")
    latency_note = " (a local run includes starting Python)"

    def __init__(self, workspace: Path, job_python: Path, endpoints: EndpointManager, *, region: str = "us-east-1",
                 source_dir: Path = LAMBDA_DIR) -> None:
        self.root = Path(workspace) / "lambda"
        self.iam = LocalIam(Path(workspace) / IAM_FOLDER, LOCAL_ACCOUNT_ID)
        self.job_python = Path(job_python)
        self.endpoints = endpoints
        self.region = region
        self.account = LOCAL_ACCOUNT_ID
        self.source_dir = Path(source_dir)

    def location(self, info: FunctionInfo) -> str:
        return "locally"

    # --- deploy and describe -----------------------------------------------------------

    def _deploy(self, spec: FunctionSpec) -> FunctionInfo:
        if spec.s3_input_prefix:
            raise InvalidInputError("S3 inputs need the aws backend: the local backend's storage is not S3")
        try:
            self.endpoints.describe(spec.endpoint_name)
        except NotFoundError:
            raise InvalidInputError(f"endpoint {spec.endpoint_name!r} does not exist: deploy it first") from None
        package = build_package(self.source_dir)
        folder = self.root / spec.function_name
        try:
            folder.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".code-", dir=folder))
            with zipfile.ZipFile(BytesIO(package.data)) as archive:
                archive.extractall(staging)
            shutil.rmtree(folder / "code", ignore_errors=True)
            staging.rename(folder / "code")
            (folder / "function.zip").write_bytes(package.data)
        except OSError as exc:
            raise BackendError(f"cannot install the function in {folder}: {exc}") from None
        self._put_policy(None, spec)
        record = {"spec": asdict(spec), "code_sha256": package.sha256, "code_size": len(package.data),
                  "last_modified": time.time()}
        LocalIam._write(folder / "function.json", record)
        return self.describe(spec.function_name)

    def _put_policy(self, current: FunctionInfo | None, spec: FunctionSpec) -> None:
        scope = PolicyScope(function_name=spec.function_name, endpoint_name=spec.endpoint_name, region=self.region,
                            account=self.account, s3_input_prefix=spec.s3_input_prefix,
                            allow_invoke=spec.allow_invoke)
        self.iam.put_role(role_name_for(spec.function_name), trust_policy(), POLICY_NAME, execution_policy(scope))

    def describe(self, name: str) -> FunctionInfo:
        path = self.root / name / "function.json"
        if "/" in name or not path.is_file():
            raise NotFoundError(f"function {name!r} not found")
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise BackendError(f"cannot read {path}: {exc}") from None
        role = self.iam.get_role(role_name_for(name))
        policy = role["RolePolicies"].get(POLICY_NAME, {"Version": "2012-10-17", "Statement": []})
        allow_invoke = any(s.get("Sid") == "InvokeOneEndpoint" for s in policy.get("Statement", []))
        spec = FunctionSpec(**{**record["spec"], "allow_invoke": allow_invoke})
        return FunctionInfo(
            spec=spec, backend=self.backend_name,
            arn=f"arn:aws:lambda:{self.region}:{self.account}:function:{name}", role_arn=role["Arn"],
            policy=policy, trust_policy=role["AssumeRolePolicyDocument"], code_sha256=record["code_sha256"],
            code_size=record["code_size"], last_modified=record["last_modified"], region=self.region,
            account=self.account,
        )

    def list_functions(self) -> list[FunctionInfo]:
        if not self.root.is_dir():
            return []
        functions = []
        for folder in sorted(self.root.iterdir()):
            if (folder / "function.json").is_file():
                try:
                    functions.append(self.describe(folder.name))
                except NotFoundError:  # deleted meanwhile
                    pass
        return sorted(functions, key=lambda f: f.last_modified, reverse=True)

    def delete(self, name: str) -> None:
        self.describe(name)
        self.iam.delete_role(role_name_for(name))
        shutil.rmtree(self.root / name, ignore_errors=True)

    # --- invoke ------------------------------------------------------------------------

    def _invoke(self, function: FunctionInfo, payload: bytes) -> FunctionInvocation:
        require_ready(self.job_python)
        endpoint_url = self._endpoint_url(function.spec.endpoint_name)
        folder = self.root / function.name
        started = time.perf_counter()
        with self._concurrency_slot(folder / "slots", function.spec.reserved_concurrency) as admitted:
            if not admitted:
                return FunctionInvocation(
                    status_code=None, body={"errorType": "TooManyRequestsException", "errorMessage": "Rate Exceeded."},
                    function_error=None, latency_ms=(time.perf_counter() - started) * 1000, throttled=True)
            with self.iam.session(role_name_for(function.name), function.name) as credentials:
                env = self._environment(function, endpoint_url, credentials)
                try:
                    outcome, lines = run_runtime(self.job_python, folder / "code", payload, env,
                                                 function.spec.timeout_s + BACKSTOP_S)
                except subprocess.TimeoutExpired:
                    return self._timed_out(function, started)
                latency_ms = (time.perf_counter() - started) * 1000
        append_log(folder / "logs.txt", lines)
        if "error" in outcome:
            return invocation_from_result(outcome["error"], function_error="Unhandled", latency_ms=latency_ms,
                                          duration_ms=outcome.get("duration_ms"), log_lines=lines)
        return invocation_from_result(outcome["result"], function_error=None, latency_ms=latency_ms,
                                      duration_ms=outcome.get("duration_ms"), log_lines=lines)

    def _endpoint_url(self, endpoint_name: str) -> str:
        try:
            endpoint = self.endpoints.describe(endpoint_name)
        except NotFoundError:
            raise InvalidInputError(f"endpoint {endpoint_name!r} no longer exists: deploy it again, or deploy "
                                    "the function for another endpoint") from None
        if endpoint.status is not EndpointStatus.IN_SERVICE or not endpoint.url:
            raise InvalidInputError(f"endpoint {endpoint_name!r} is {endpoint.status.value}: the function can call "
                                    "it once it is InService")
        return endpoint.url

    def _environment(self, function: FunctionInfo, endpoint_url: str, credentials: Any) -> dict[str, str]:
        """What Lambda's runtime gives a function, with the local endpoint as the Runtime URL."""
        return runtime_environment(
            function.name, function.arn, self.root / function.name / "code", self.region, credentials,
            memory_mb=function.spec.memory_mb, timeout_s=function.spec.timeout_s,
            variables={"AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": endpoint_url, **function.spec.environment})

    def _timed_out(self, function: FunctionInfo, started: float) -> FunctionInvocation:
        message = f"the local runtime did not exit within {function.spec.timeout_s + BACKSTOP_S:.0f} s and was killed"
        append_log(self.root / function.name / "logs.txt", [message])
        return FunctionInvocation(status_code=None, body={"errorType": "Sandbox.Timedout", "errorMessage": message},
                                  function_error="Unhandled", latency_ms=(time.perf_counter() - started) * 1000,
                                  log_lines=[message])

    @staticmethod
    @contextmanager
    def _concurrency_slot(folder: Path, limit: int | None) -> Iterator[bool]:
        """Holds one of ``limit`` slots while the block runs; yields False when all are taken."""
        if limit is None:
            yield True
            return
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(limit):
            handle = open(folder / f"{index}.lock", "w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()
            return
        yield False

    # --- logs ----------------------------------------------------------------------------

    def recent_log_lines(self, name: str, max_lines: int = 50) -> list[str]:
        self.describe(name)
        path = self.root / name / "logs.txt"
        if not path.exists():
            return []
        with open(path, encoding="utf-8", errors="replace") as log:
            return [line.rstrip("\n") for line in deque(log, maxlen=max_lines)]


def runtime_environment(name: str, arn: str, code_dir: Path, region: str, credentials: Any, *, memory_mb: int,
                        timeout_s: int, handler: str = HANDLER, variables: dict[str, str] | None = None,
                        ) -> dict[str, str]:
    """What Lambda's runtime gives a function's process: its identity, limits, role session and
    ``variables`` (its environment, and the local endpoints it calls)."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "TZ": "UTC",
        "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1",
        "LAMBDA_TASK_ROOT": str(code_dir), "_HANDLER": handler,
        "AWS_REGION": region, "AWS_DEFAULT_REGION": region,
        "AWS_ACCESS_KEY_ID": credentials.access_key_id, "AWS_SECRET_ACCESS_KEY": credentials.secret_access_key,
        "AWS_SESSION_TOKEN": credentials.session_token,
        "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_LAMBDA_FUNCTION_NAME": name, "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb), "AWS_LAMBDA_FUNCTION_TIMEOUT": str(timeout_s),
        "AWS_LAMBDA_LOG_GROUP_NAME": log_group_name(name),
        "AWS_LAMBDA_LOG_STREAM_NAME": time.strftime("%Y/%m/%d/[$LATEST]local"),
        "SMC_FUNCTION_ARN": arn,
        **(variables or {}),
    }


def run_runtime(job_python: Path, code_dir: Path, payload: bytes, env: dict[str, str],
                timeout_s: float) -> tuple[dict[str, Any], list[str]]:
    """Runs one invocation in a fresh process (``_bootstrap.py``): its outcome and its log lines.

    Raises:
        subprocess.TimeoutExpired: the process outlived ``timeout_s`` and was killed.
        BackendError: the runtime could not be started.
    """
    with tempfile.TemporaryDirectory(prefix="invoke-") as scratch:
        result_file = Path(scratch) / "result.json"
        try:
            process = subprocess.run([str(job_python), str(BOOTSTRAP), str(code_dir), str(result_file)],
                                     input=payload, capture_output=True, cwd=code_dir, env=env, timeout=timeout_s)
        except OSError as exc:
            raise BackendError(f"cannot start the local Lambda runtime ({job_python}): {exc}") from None
        outcome = _read_outcome(result_file, process)
    return outcome, _lines(process.stdout) + _lines(process.stderr)


def append_log(path: Path, lines: list[str]) -> None:
    """Appends to a function's ``logs.txt``, cut back to its second half past ``MAX_LOG_BYTES``."""
    try:
        if path.exists() and path.stat().st_size > MAX_LOG_BYTES:
            kept = path.read_bytes()[-MAX_LOG_BYTES // 2:]
            path.write_bytes(kept[kept.find(b"\n") + 1:])
        with open(path, "a", encoding="utf-8") as log:
            log.writelines(line + "\n" for line in lines)
    except OSError:
        pass  # the log is a convenience: the invocation's own lines are returned anyway


def _lines(output: bytes) -> list[str]:
    return [line for line in output.decode("utf-8", errors="replace").splitlines() if line.strip()]


def _read_outcome(result_file: Path, process: subprocess.CompletedProcess[bytes]) -> dict[str, Any]:
    """The bootstrap's result, or an error built from its exit when it wrote none."""
    try:
        outcome = json.loads(result_file.read_text())
        if isinstance(outcome, dict) and ("result" in outcome or "error" in outcome):
            return outcome
    except (OSError, ValueError):
        pass
    tail = " | ".join(_lines(process.stderr)[-3:]) or f"exit status {process.returncode}"
    return {"error": {"errorType": "Runtime.ExitError", "errorMessage": f"the runtime exited without a result: {tail}"}}
