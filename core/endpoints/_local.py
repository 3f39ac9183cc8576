"""Endpoints as detached local server processes (``entrypoints/serve.py``), recorded in SQLite.

Each endpoint has a folder ``<workspace>/endpoints/<name>`` (server log, unpacked model) and
one server process on ``127.0.0.1:<port>`` started with the job environment's interpreter.
The process runs in its own session (``core.processes.start_detached``), so it survives app
restarts. Status is reconciled on every read: Creating becomes InService when ``GET /ping``
answers 200, and Failed when the process is gone, with the server's last error line as the
reason.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.error
import urllib.request
from collections import deque
from pathlib import Path
from urllib.parse import unquote, urlparse

from core.config import ENTRYPOINTS_DIR
from core.endpoints._base import EndpointManager
from core.endpoints._store import EndpointStore
from core.endpoints.entities import Endpoint, EndpointStatus, InvocationResult, ServingConfig
from core.endpoints.invoke import error_message
from core.errors import AlreadyExistsError, BackendError, InvalidInputError, NotFoundError
from core.job_environment import require_ready
from core.jobstore import JobStore
from core.processes import free_port, is_process_alive, start_detached, stop_process

HOST = "127.0.0.1"
SERVE_SCRIPT = ENTRYPOINTS_DIR / "serve.py"
LOG_FILE = "server.log"
LAUNCH_GRACE_S = 30.0
"""How long an endpoint may go without a recorded pid before it counts as lost."""
STOP_GRACE_S = 15.0
"""SIGTERM, then SIGKILL after this long."""
LOCAL_ACCOUNT_ID = "000000000000"
"""The account of the local world: local endpoint and role ARNs carry it (serve.py's default)."""
IAM_FOLDER = "iam"
"""Under the workspace: local roles and their sessions, read by every local endpoint server to
authorise Runtime requests signed with a local role's keys (``entrypoints/local_iam.py``)."""
INVOKE_TIMEOUT_S = 70.0
"""SageMaker's advice for clients: the model has 60 s, the socket a little more."""


class LocalEndpointManager(EndpointManager):
    """Serves each endpoint from its own detached ``serve.py`` process on 127.0.0.1.

    Args:
        store: the console database (endpoints live beside the jobs).
        workspace: the workspace folder; endpoint folders go under ``endpoints/``.
        job_python: interpreter of the job environment (torch).
        create_timeout_s: a server not healthy this long after deploy is stopped and Failed.
    """

    backend_name = "local"
    instance_types = ("local",)
    max_instance_count = 1
    instance_help = "A local endpoint is one server process on this machine"

    def __init__(self, store: JobStore, workspace: Path, job_python: Path, *, create_timeout_s: float = 300.0) -> None:
        self.store = EndpointStore(store)
        self.root = Path(workspace) / "endpoints"
        self.iam_dir = Path(workspace) / IAM_FOLDER
        self.job_python = Path(job_python)
        self.create_timeout_s = create_timeout_s

    def _deploy(self, name: str, model_uri: str, *, instance_type: str, instance_count: int,
                serving: ServingConfig) -> Endpoint:
        if instance_type != "local":
            raise InvalidInputError(
                f"instance_type: the local backend serves on this machine ('local'), not {instance_type!r}")
        if instance_count != 1:
            raise InvalidInputError(
                f"instance_count: the local backend runs one server per endpoint, not {instance_count}")
        model_path = local_model_path(model_uri)
        require_ready(self.job_python)
        endpoint_dir = self.root / name
        port = free_port()
        endpoint = Endpoint(
            name=name, status=EndpointStatus.CREATING, backend=self.backend_name, model_uri=model_uri,
            created_at=time.time(), url=f"http://{HOST}:{port}", port=port, serving=serving,
        )
        try:
            self.store.insert(endpoint, endpoint_dir=endpoint_dir)  # claims the name (AlreadyExistsError)
        except AlreadyExistsError:
            raise AlreadyExistsError(f"an endpoint named {name!r} already exists: delete it first") from None
        try:
            shutil.rmtree(endpoint_dir, ignore_errors=True)  # left by a delete that was interrupted
            endpoint_dir.mkdir(parents=True)
            pid = self._launch(name, model_path, port, serving, endpoint_dir)
        except BaseException as exc:
            self.store.delete(name)
            shutil.rmtree(endpoint_dir, ignore_errors=True)
            if isinstance(exc, OSError):
                raise BackendError(f"cannot prepare the endpoint folder {endpoint_dir}: {exc}") from None
            raise
        self.store.set_pid(name, pid)
        return self.store.get(name)

    def _launch(self, name: str, model_path: Path, port: int, serving: ServingConfig, endpoint_dir: Path) -> int:
        argv = [
            str(self.job_python), str(SERVE_SCRIPT), "--model", str(model_path), "--name", name, "--port", str(port),
            "--max-batch-size", str(serving.max_batch_size), "--max-wait-ms", str(serving.max_wait_ms),
            "--workers", str(serving.workers), "--scratch-dir", str(endpoint_dir),
            "--iam-dir", str(self.iam_dir), "--account", LOCAL_ACCOUNT_ID,
        ]
        try:
            return start_detached(argv, log=endpoint_dir / LOG_FILE, cwd=ENTRYPOINTS_DIR,
                                  env=dict(os.environ, PYTHONUNBUFFERED="1"))
        except OSError as exc:
            raise BackendError(f"could not start the endpoint server: {exc}") from None

    def runtime_client_code(self, endpoint: Endpoint) -> str:
        return (f'runtime = boto3.client(\n    "sagemaker-runtime", region_name="us-east-1", '
                f'endpoint_url="{endpoint.url}",\n'
                '    aws_access_key_id="local", aws_secret_access_key="local",  # the local server ignores them\n)')

    def describe(self, name: str) -> Endpoint:
        self._reconcile(name)
        return self.store.get(name)

    def list_endpoints(self) -> list[Endpoint]:
        for endpoint in self.store.list(backend=self.backend_name):
            try:
                self._reconcile(endpoint.name)
            except NotFoundError:  # deleted meanwhile
                pass
        return self.store.list(backend=self.backend_name)

    def delete(self, name: str) -> None:
        runtime = self.store.runtime(name)
        self.store.set_status(name, EndpointStatus.DELETING)
        self._stop_server(runtime)
        self.store.delete(name)
        if runtime["endpoint_dir"]:
            shutil.rmtree(runtime["endpoint_dir"], ignore_errors=True)

    def invoke(self, name: str, body: bytes, content_type: str, *,
               accept: str = "application/json") -> InvocationResult:
        endpoint = self.describe(name)
        if endpoint.status is not EndpointStatus.IN_SERVICE or not endpoint.url:
            raise InvalidInputError(f"endpoint {name!r} is {endpoint.status.value}: it answers once InService")
        request = urllib.request.Request(
            f"{endpoint.url}/invocations", data=body, method="POST",
            headers={"Content-Type": content_type, "Accept": accept},
        )
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=INVOKE_TIMEOUT_S) as response:
                payload, status, headers = response.read(), response.status, response.headers
        except urllib.error.HTTPError as exc:
            message = error_message(exc.read())
            if exc.code < 500:
                raise InvalidInputError(f"endpoint {name!r} refused the request ({exc.code}): {message}") from None
            raise BackendError(f"endpoint {name!r} failed ({exc.code}): {message}") from None
        except (urllib.error.URLError, OSError) as exc:
            self._reconcile(name)
            raise BackendError(f"endpoint {name!r} did not answer at {endpoint.url}: {exc}") from None
        latency_ms = (time.perf_counter() - started) * 1000
        server_ms = headers.get("X-Inference-Latency-Ms")
        try:
            document = json.loads(payload)
        except json.JSONDecodeError:
            raise BackendError(f"endpoint {name!r} answered something that is not JSON: {payload[:200]!r}") from None
        return InvocationResult(
            status_code=status, body=document, latency_ms=latency_ms,
            server_latency_ms=float(server_ms) if server_ms else None,
            content_type=headers.get("Content-Type", "application/json"),
        )

    def log_tail(self, name: str, max_lines: int = 100) -> list[str]:
        """The last lines of the endpoint's server log. Raises NotFoundError."""
        return _tail(self._log_path(self.store.runtime(name)), max_lines)

    # --- reconciliation ------------------------------------------------------------------

    def _reconcile(self, name: str) -> None:
        """Brings the recorded status in line with the server process and its /ping."""
        endpoint = self.store.get(name)
        runtime = self.store.runtime(name)
        alive = is_process_alive(runtime["pid"], str(runtime["endpoint_dir"]))
        if endpoint.status is EndpointStatus.DELETING:
            if not alive:  # a delete that was interrupted: finish it
                self.store.delete(name)
            return
        if endpoint.status is EndpointStatus.CREATING:
            self._reconcile_creating(endpoint, runtime, alive)
        elif endpoint.status is EndpointStatus.IN_SERVICE and not alive:
            self.store.set_status(
                name, EndpointStatus.FAILED, expected=EndpointStatus.IN_SERVICE,
                failure_reason="the server process stopped (killed, or the machine restarted): "
                + _last_error(self._log_path(runtime)),
            )

    def _reconcile_creating(self, endpoint: Endpoint, runtime: dict[str, object], alive: bool) -> None:
        name, age = endpoint.name, time.time() - endpoint.created_at
        if not alive:
            if runtime["pid"] is None and age < LAUNCH_GRACE_S:
                return
            self.store.set_status(
                name, EndpointStatus.FAILED, expected=EndpointStatus.CREATING,
                failure_reason="the server exited before it was ready: " + _last_error(self._log_path(runtime)),
            )
        elif endpoint.url and ping(endpoint.url):
            self.store.set_status(name, EndpointStatus.IN_SERVICE, expected=EndpointStatus.CREATING)
        elif age > self.create_timeout_s:
            self._stop_server(runtime)
            self.store.set_status(
                name, EndpointStatus.FAILED, expected=EndpointStatus.CREATING,
                failure_reason=f"the server did not pass the /ping health check within {self.create_timeout_s:.0f} s",
            )

    def _stop_server(self, runtime: dict[str, object]) -> None:
        """SIGTERM, then SIGKILL after STOP_GRACE_S. Raises BackendError if it survives."""
        pid = runtime["pid"]
        if isinstance(pid, int) and not stop_process(pid, str(runtime["endpoint_dir"]), grace_s=STOP_GRACE_S):
            raise BackendError(f"the endpoint server (pid {pid}) did not stop")

    @staticmethod
    def _log_path(runtime: dict[str, object]) -> Path:
        return Path(str(runtime["endpoint_dir"])) / LOG_FILE


def local_model_path(model_uri: str) -> Path:
    """The file behind a ``file://`` URI or a plain path: a ``model.tar.gz`` or a model folder.

    Raises:
        InvalidInputError: another scheme (``s3://`` needs the aws backend), or nothing there.
    """
    parsed = urlparse(model_uri)
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path))
    elif parsed.scheme == "":
        path = Path(model_uri)
    else:
        raise InvalidInputError(f"model URI {model_uri!r}: the local backend serves file:// models (a training job's)")
    if not path.exists():
        raise InvalidInputError(f"model URI {model_uri!r}: {path} does not exist")
    return path.resolve()


def ping(url: str, timeout: float = 2.0) -> bool:
    """True if ``GET url/ping`` answers 200."""
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _tail(path: Path, max_lines: int) -> list[str]:
    if not path.exists():
        return []
    with open(path, encoding="utf-8", errors="replace") as log:
        return [line.rstrip("\n") for line in deque(log, maxlen=max_lines)]


def _last_error(log_path: Path) -> str:
    """The server's last ``ERROR:`` message, else its last log lines."""
    lines = _tail(log_path, 50)
    errors = [line.split("ERROR: ", 1)[1] for line in lines if "ERROR: " in line]
    if errors:
        return errors[-1][:500]
    last = " | ".join(line for line in lines[-3:] if line.strip())
    return (last[-500:] if last else "it wrote nothing to its log") + f" (log: {log_path})"
