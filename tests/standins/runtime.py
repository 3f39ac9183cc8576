"""A loopback SageMaker Runtime in front of a moto server: InvokeEndpoint served by the real model server.

moto 5.2.5 answers ``InvokeEndpoint`` with canned data, and with HTTP 500 to a binary body such
as an image. :class:`RuntimeStandIn` is a small HTTP server on 127.0.0.1 that answers
``POST /endpoints/{name}/invocations`` the way SageMaker Runtime does; point the
``sagemaker-runtime`` service at it (``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME``) and everything else
at moto. For each request it:

1. identifies the caller by the access key in the SigV4 ``Authorization`` header. A key minted
   for a role session (:meth:`RuntimeStandIn.assume_role`, which the Lambda stand-in calls for
   every invocation) acts as that role: its inline policies are read from moto IAM
   (``ListRolePolicies`` / ``GetRolePolicy``) on every request, so a changed policy applies at
   once, and ``sagemaker:InvokeEndpoint`` on the endpoint's ARN (the name lower-cased, as
   SageMaker writes it) is evaluated with the project's evaluator (``entrypoints/iam_eval.py``:
   an explicit deny wins, nothing allowing is an implicit deny). A refusal is HTTP 400
   ``AccessDeniedException`` with AWS's message. Any other key (the console's own) is allowed.
   As on AWS, authorisation comes before the endpoint is looked up;
2. looks the endpoint up in moto: ``DescribeEndpoint`` (it must be InService), its endpoint
   configuration's first production variant, that variant's model and its
   ``PrimaryContainer.ModelDataUrl``. An unknown endpoint, or one not InService, is HTTP 400
   ``ValidationError`` "Endpoint NAME of account ACCOUNT not found." (the code botocore's model
   declares and SageMaker sends);
3. serves the request with the project's endpoint server (``entrypoints/serve.py``, the job
   environment's interpreter), started on the first request for that endpoint as the local
   backend starts it (same arguments, ``GET /ping`` for readiness), with the serving settings
   the serving image reads from the model's ``SERVE_*`` environment. The model.tar.gz is
   downloaded from moto S3 once. The body, ``Content-Type`` and ``Accept`` go to the
   container's ``POST /invocations``; its answer comes back with SageMaker's headers
   (``Content-Type``, ``x-Amzn-Invoked-Production-Variant``). A container answer of 4xx/5xx is
   ``ModelError`` (424) with ``OriginalStatusCode``, ``OriginalMessage`` and ``LogStreamArn``;
   a container that does not answer within 60 s is a ``ModelError`` without them.

Servers are stopped with the stand-in (or by :meth:`RuntimeStandIn.reset`). Every answer is
checked against botocore's ``sagemaker-runtime`` model (members, types, error status codes)
before it is sent. What goes wrong inside the stand-in (a server that cannot start, an answer
that breaks the model) is answered HTTP 500 ``InternalFailure`` and kept in ``errors`` for the
test to assert on.

The HTTP plumbing and the model checks (:class:`LoopbackService`, :func:`rest_answer`,
:func:`rest_error`) are shared with the Lambda stand-in (``tests/standins/lambdas.py``).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.model import ServiceModel, Shape
from botocore.validate import ParamValidator

from core.config import DEFAULT_JOB_PYTHON, ENTRYPOINTS_DIR
from core.endpoints._local import HOST, SERVE_SCRIPT, ping
from core.lambdas.iam import evaluate
from core.processes import free_port

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "te", "trailer", "upgrade"}
MOTO_ACCESS_KEY = "AKIASTANDINFORTESTS1"
"""The stand-ins' own key at moto (moto maps any non-STS key to its default account)."""
MOTO_SECRET = "stand-in-secret-for-tests-only"
INVOKE_ACTION = "sagemaker:InvokeEndpoint"
MAX_BODY_BYTES = 6 * 1024 * 1024
"""SageMaker's real-time InvokeEndpoint payload limit."""
CONTAINER_TIMEOUT_S = 60.0
"""SageMaker Runtime gives the container 60 s to answer."""
SERVER_START_TIMEOUT_S = 120.0
STOP_GRACE_S = 15.0
# The image's `serve` script reads these from the model's environment, with these defaults (docker/serving/Dockerfile).
SERVING_ENVIRONMENT = {"SERVE_MAX_BATCH_SIZE": ("--max-batch-size", "16"), "SERVE_MAX_WAIT_MS": ("--max-wait-ms", "5"),
                       "SERVE_WORKERS": ("--workers", "32")}
_RUNTIME_PATH = re.compile(r"^/endpoints/([^/]+)/invocations$")
_CREDENTIAL = re.compile(r"Credential=([A-Z0-9]{16,128})/\d{8}/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request")
_ASSUMED_ROLE_ARN = re.compile(r"^arn:[\w-]+:sts::(\d{12}):assumed-role/([^/]+)/(.+)$")
_TIMED_OUT = ("Your invocation timed out while waiting for a response from container primary. Review the latency "
              "metrics for each container in Amazon CloudWatch, resolve the issue, and try again.")


class StandInError(Exception):
    """An error answer of a REST-JSON service: its code, message, HTTP status and any other members."""

    def __init__(self, code: str, message: str, status: int, **members: Any) -> None:
        super().__init__(message)
        self.code, self.message, self.status, self.members = code, message, status, members


Answer = tuple[int, dict[str, str], bytes]
"""An HTTP answer: status, headers, body."""


# --- the HTTP plumbing and the model checks, shared with the Lambda stand-in ----------------------


class LoopbackService:
    """A threaded HTTP server on a free 127.0.0.1 port that hands every request to :meth:`answer`.

    Args:
        upstream: the moto server's URL (``http://127.0.0.1:PORT``).
        service: the botocore service whose model the answers follow.
    """

    thread_name = "stand-in"

    def __init__(self, upstream: str, service: str) -> None:
        parsed = urlparse(upstream)
        if parsed.hostname != "127.0.0.1" or parsed.port is None:
            raise ValueError(f"a stand-in talks to a loopback moto server only, not {upstream!r}")
        self.upstream_url = upstream
        self.upstream = (parsed.hostname, parsed.port)
        self.model = botocore.session.get_session().get_service_model(service)
        self.errors: list[str] = []
        """What went wrong inside the stand-in, for tests to assert on."""
        self._boto = boto3.session.Session(aws_access_key_id=MOTO_ACCESS_KEY, aws_secret_access_key=MOTO_SECRET)
        self._clients: dict[tuple[str, str], Any] = {}
        self._clients_lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Where clients reach the stand-in."""
        assert self._server is not None, "start() first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> LoopbackService:
        """Listens on a free loopback port, serving from a daemon thread."""
        service = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                service._serve(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: a test's output is its own."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops serving and closes the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None

    def client(self, service: str, region: str) -> Any:
        """A boto3 client of moto's, as the stand-in itself (one per service and region)."""
        with self._clients_lock:
            if (service, region) not in self._clients:
                self._clients[service, region] = self._boto.client(
                    service, region_name=region, endpoint_url=self.upstream_url,
                    config=Config(retries={"mode": "standard", "max_attempts": 1}))
            return self._clients[service, region]

    def forward(self, method: str, path: str, body: bytes, headers: Mapping[str, str]) -> Answer:
        """moto's status, end-to-end headers and body for one request, unchanged."""
        connection = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            connection.request(method, path, body=body,
                               headers={k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP})
            response = connection.getresponse()
            answer_headers = {k: v for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP}
            return response.status, answer_headers, response.read()
        finally:
            connection.close()

    def answer(self, method: str, path: str, body: bytes, headers: Mapping[str, str]) -> Answer:
        """The answer to one request (subclasses); StandInError becomes the error answer."""
        raise NotImplementedError

    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        headers = dict(request.headers.items())
        try:
            try:
                status, answer_headers, answer = self.answer(request.command, request.path, body, headers)
            except StandInError as error:
                status, answer_headers, answer = rest_error(self.model, error)
        except Exception as exc:  # a stand-in bug: the client sees a 500, the test sees errors
            self.errors.append(f"{request.command} {request.path}: {type(exc).__name__}: {exc}")
            status, answer_headers = 500, {"x-amzn-ErrorType": "InternalFailure", "Content-Type": "application/json"}
            answer = json.dumps({"message": f"the stand-in failed: {exc}"}).encode()
        request.send_response(status)
        if not any(name.lower() == "x-amzn-requestid" for name in answer_headers):
            answer_headers["x-amzn-RequestId"] = str(uuid.uuid4())
        for name, value in answer_headers.items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(answer)))
        request.end_headers()
        if request.command != "HEAD":
            request.wfile.write(answer)


def rest_answer(model: ServiceModel, operation: str, output: Mapping[str, Any], status: int = 200) -> Answer:
    """output as operation's REST-JSON answer: header members as headers, the payload as the body.

    Raises:
        AssertionError: output breaks the operation's output shape in botocore's model.
    """
    shape = model.operation_model(operation).output_shape
    _check(shape, output, f"a {operation} answer")
    headers, body = {}, b""
    for name, value in output.items():
        serialization = shape.members[name].serialization
        if serialization.get("location") == "header":
            headers[serialization["name"]] = str(value)
        elif serialization.get("location") == "statusCode":
            status = int(value)
        elif name == shape.serialization.get("payload"):
            body = bytes(value)
        else:
            raise AssertionError(f"{operation}: the stand-in writes no body member such as {name}")
    return status, headers, body


def rest_error(model: ServiceModel, error: StandInError) -> Answer:
    """The error as a REST-JSON service sends it (``x-amzn-ErrorType`` and a JSON body).

    A code the model declares is checked against its shape: the HTTP status and every member,
    the message under the member name the shape uses (``Message`` or ``message``).

    Raises:
        AssertionError: the error breaks its shape in botocore's model.
    """
    shape = next((s for s in model.error_shapes if s.name == error.code), None)
    message_key = "message" if shape is not None and "message" in shape.members else "Message"
    members = {message_key: error.message, **error.members}
    if shape is not None:
        _check(shape, members, f"a {error.code} error")
        declared = shape.metadata["error"]["httpStatusCode"]
        if error.status != declared:
            raise AssertionError(f"{error.code} is HTTP {declared} in botocore's model, not {error.status}")
    headers = {"x-amzn-ErrorType": error.code, "Content-Type": "application/json"}
    return error.status, headers, json.dumps(members).encode()


def _check(shape: Shape, value: Mapping[str, Any], what: str) -> None:
    report = ParamValidator().validate(dict(value), shape)
    if report.has_errors():
        raise AssertionError(f"{what} that breaks botocore's model:\n{report.generate_report()}")


def credential_scope(authorization: str | None) -> tuple[str, str] | None:
    """The access key id and region of a SigV4 ``Authorization`` header; None when unsigned."""
    match = _CREDENTIAL.search(authorization or "")
    return (match.group(1), match.group(2)) if match else None


# --- role sessions -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoleSession:
    """Who a minted access key acts as: a role's session."""

    account: str
    role_name: str
    session_name: str

    @property
    def arn(self) -> str:
        """The caller as AWS names it in an AccessDenied message."""
        return f"arn:aws:sts::{self.account}:assumed-role/{self.role_name}/{self.session_name}"


@dataclass(frozen=True)
class SessionCredentials:
    """Temporary credentials from moto STS (the secret is never logged)."""

    access_key_id: str
    secret_access_key: str
    session_token: str

    def __repr__(self) -> str:
        return f"SessionCredentials(access_key_id={self.access_key_id!r}, secret=<hidden>)"


# --- the Runtime stand-in ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Deployment:
    """What an InService endpoint serves: its first variant's model and the container's environment."""

    variant: str
    model_data_url: str
    environment: tuple[tuple[str, str], ...]


@dataclass
class _Server:
    deployment: _Deployment
    process: subprocess.Popen[bytes]
    url: str
    log: Path


class RuntimeStandIn(LoopbackService):
    """SageMaker Runtime's InvokeEndpoint on the project's model server (see the module docstring).

    Args:
        upstream: the moto server's URL (``http://127.0.0.1:PORT``).
        region: the region of unsigned requests (a signed one names its own).
        job_python: the job environment's interpreter, which runs ``entrypoints/serve.py``.
    """

    thread_name = "runtime-stand-in"

    def __init__(self, upstream: str, *, region: str = "us-east-1", job_python: Path = DEFAULT_JOB_PYTHON) -> None:
        super().__init__(upstream, "sagemaker-runtime")
        self.region = region
        self.job_python = Path(job_python)
        self._sessions: dict[str, RoleSession] = {}
        self._servers: dict[str, _Server] = {}
        self._models: dict[str, Path] = {}
        self._endpoint_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self._workdir: Path | None = None
        self._account: str | None = None

    def start(self) -> RuntimeStandIn:
        self._workdir = Path(tempfile.mkdtemp(prefix="runtime-stand-in-"))
        super().start()
        return self

    def stop(self) -> None:
        """Stops serving, then every model server; removes the downloaded models."""
        super().stop()
        self._stop_servers()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
        self._workdir = None

    def __enter__(self) -> RuntimeStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Stops every model server and forgets models, role sessions and errors (moto is not touched)."""
        self._stop_servers()
        with self._lock:
            self._models.clear()
            self._sessions.clear()
        self.errors.clear()

    def server_processes(self) -> list[subprocess.Popen[bytes]]:
        """The model servers started so far (running or not)."""
        with self._lock:
            return [server.process for server in self._servers.values()]

    # --- role sessions -------------------------------------------------------------------------------

    def assume_role(self, role_arn: str, session_name: str, region: str) -> SessionCredentials:
        """Credentials of a new session of the role from moto STS; requests signed with them act as the role."""
        answer = self.client("sts", region).assume_role(RoleArn=role_arn, RoleSessionName=session_name)
        match = _ASSUMED_ROLE_ARN.match(answer["AssumedRoleUser"]["Arn"])
        assert match, f"moto named the session {answer['AssumedRoleUser']['Arn']!r}"
        credentials = answer["Credentials"]
        with self._lock:
            self._sessions[credentials["AccessKeyId"]] = RoleSession(*match.groups())
        return SessionCredentials(credentials["AccessKeyId"], credentials["SecretAccessKey"],
                                  credentials["SessionToken"])

    @property
    def account(self) -> str:
        """The account of moto's default identity (the console's keys act in it)."""
        if self._account is None:
            self._account = str(self.client("sts", self.region).get_caller_identity()["Account"])
        return self._account

    # --- InvokeEndpoint --------------------------------------------------------------------------------

    def answer(self, method: str, path: str, body: bytes, headers: Mapping[str, str]) -> Answer:
        match = _RUNTIME_PATH.match(urlparse(path).path)
        if method != "POST" or match is None:
            raise StandInError("UnknownOperationException", f"the stand-in serves InvokeEndpoint only, not {method} "
                               f"{path}", 404)
        name = unquote(match.group(1))
        lowered = {k.lower(): v for k, v in headers.items()}
        scope = credential_scope(lowered.get("authorization"))
        region = scope[1] if scope else self.region
        with self._lock:
            caller = self._sessions.get(scope[0]) if scope else None
        account = caller.account if caller else self.account
        if caller is not None:
            self._authorize(caller, f"arn:aws:sagemaker:{region}:{account}:endpoint/{name.lower()}", region)
        if len(body) > MAX_BODY_BYTES:  # SageMaker's front end answers this one with no error code
            return 413, {"Content-Type": "application/json"}, json.dumps(
                {"message": f"HTTP content length exceeded {MAX_BODY_BYTES} bytes."}).encode()
        deployment = self._deployment(name, account, region)
        server = self._server_for(name, deployment)
        return self._forward_to(server, name, body, lowered, account, region)

    def _authorize(self, caller: RoleSession, resource: str, region: str) -> None:
        """Raises AccessDeniedException unless the role's inline policies allow the invocation."""
        outcome = evaluate(self._role_policies(caller, region), INVOKE_ACTION, resource)
        if not outcome.is_allowed:
            raise StandInError("AccessDeniedException", f"User: {caller.arn} is not authorized to perform: "
                               f"{INVOKE_ACTION} on resource: {resource} {outcome.denial_reason(INVOKE_ACTION)}", 400)

    def denial(self, authorization: str | None, action: str, resource_of: Callable[[str, str], str]) -> str | None:
        """Why a request signed by a session of :meth:`assume_role` may not do ``action`` (AWS's message);
        None when it may, or when no such session signed it (the console's own keys act as the account).

        Args:
            resource_of: the resource's ARN from the caller's account and region.
        """
        scope = credential_scope(authorization)
        with self._lock:
            caller = self._sessions.get(scope[0]) if scope else None
        if scope is None or caller is None:
            return None
        resource = resource_of(caller.account, scope[1])
        outcome = evaluate(self._role_policies(caller, scope[1]), action, resource)
        if outcome.is_allowed:
            return None
        return (f"User: {caller.arn} is not authorized to perform: {action} on resource: {resource} "
                f"{outcome.denial_reason(action)}")

    def _role_policies(self, caller: RoleSession, region: str) -> list[Any]:
        """The inline policies of the caller's role, from moto IAM (none when the role is gone)."""
        iam = self.client("iam", region)
        try:
            names = [n for page in iam.get_paginator("list_role_policies").paginate(RoleName=caller.role_name)
                     for n in page["PolicyNames"]]
            return [iam.get_role_policy(RoleName=caller.role_name, PolicyName=n)["PolicyDocument"] for n in names]
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "NoSuchEntity":
                raise
            return []  # the role is gone: its sessions hold no permissions

    def _deployment(self, name: str, account: str, region: str) -> _Deployment:
        """What the endpoint serves, from moto. Raises ValidationError for an endpoint not InService."""
        sagemaker = self.client("sagemaker", region)
        try:
            endpoint = sagemaker.describe_endpoint(EndpointName=name)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ValidationException":
                raise
            endpoint = {"EndpointStatus": "(none)"}
        if endpoint["EndpointStatus"] != "InService":
            raise StandInError("ValidationError", f"Endpoint {name} of account {account} not found.", 400)
        variant = sagemaker.describe_endpoint_config(
            EndpointConfigName=endpoint["EndpointConfigName"])["ProductionVariants"][0]
        model = sagemaker.describe_model(ModelName=variant["ModelName"])
        container = model.get("PrimaryContainer") or model["Containers"][0]
        return _Deployment(variant=variant["VariantName"], model_data_url=container["ModelDataUrl"],
                           environment=tuple(sorted((container.get("Environment") or {}).items())))

    # --- model servers ---------------------------------------------------------------------------------

    def _server_for(self, name: str, deployment: _Deployment) -> _Server:
        """The endpoint's running server for this deployment, started (or restarted) when needed."""
        with self._lock:
            lock = self._endpoint_locks.setdefault(name, threading.Lock())
        with lock:
            with self._lock:
                server = self._servers.get(name)
            if server is not None and server.deployment == deployment and server.process.poll() is None:
                return server
            if server is not None:
                _stop_process(server.process)
            server = self._start_server(name, deployment)
            with self._lock:
                self._servers[name] = server
            return server

    def _start_server(self, name: str, deployment: _Deployment) -> _Server:
        """serve.py for the model, as the local backend starts it; returns once ``/ping`` answers 200.

        Raises:
            RuntimeError: the server exited, or was not ready in time (the client sees InternalFailure).
        """
        assert self._workdir is not None, "start() first"
        model = self._model_file(deployment.model_data_url)
        folder = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self._workdir))
        environment = dict(deployment.environment)
        port = free_port()
        argv = [str(self.job_python), str(SERVE_SCRIPT), "--model", str(model), "--name", name, "--port", str(port),
                "--scratch-dir", str(folder)]
        for variable, (option, default) in SERVING_ENVIRONMENT.items():
            argv += [option, environment.get(variable, default)]
        log = folder / "server.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(argv, cwd=ENTRYPOINTS_DIR, stdin=subprocess.DEVNULL, stdout=out,
                                       stderr=subprocess.STDOUT, env={**os.environ, **environment,
                                                                      "PYTHONUNBUFFERED": "1"})
        url = f"http://{HOST}:{port}"
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while not ping(url):
            if process.poll() is not None or time.monotonic() > deadline:
                _stop_process(process)
                tail = log.read_text(errors="replace").strip().splitlines()[-3:]
                raise RuntimeError(f"the model server of endpoint {name} did not start: {' | '.join(tail)}")
            time.sleep(0.1)
        return _Server(deployment=deployment, process=process, url=url, log=log)

    def _model_file(self, model_data_url: str) -> Path:
        """The model.tar.gz from moto S3, downloaded once per URL."""
        assert self._workdir is not None, "start() first"
        with self._lock:
            if model_data_url in self._models:
                return self._models[model_data_url]
        parsed = urlparse(model_data_url)
        path = self._workdir / f"{hashlib.sha1(model_data_url.encode()).hexdigest()}.tar.gz"
        self.client("s3", self.region).download_file(parsed.netloc, parsed.path.lstrip("/"), str(path))
        with self._lock:
            self._models[model_data_url] = path
        return path

    def _stop_servers(self) -> None:
        with self._lock:
            servers, self._servers = list(self._servers.values()), {}
        for server in servers:
            _stop_process(server.process)

    # --- the container's answer ------------------------------------------------------------------------

    def _forward_to(self, server: _Server, name: str, body: bytes, headers: Mapping[str, str], account: str,
                    region: str) -> Answer:
        """POST /invocations on the container; its answer as SageMaker Runtime gives it."""
        forwarded = {"Content-Length": str(len(body))}
        for header in ("content-type", "accept"):
            if header in headers:
                forwarded[header.title()] = headers[header]
        parsed = urlparse(server.url)
        connection = http.client.HTTPConnection(parsed.hostname or HOST, parsed.port, timeout=CONTAINER_TIMEOUT_S)
        try:
            connection.request("POST", "/invocations", body=body, headers=forwarded)
            response = connection.getresponse()
            status, content_type, payload = response.status, response.getheader("Content-Type"), response.read()
        except TimeoutError:
            raise StandInError("ModelError", _TIMED_OUT, 424) from None
        finally:
            connection.close()
        if status >= 400:
            original = payload.decode("utf-8", errors="replace")
            group = f"/aws/sagemaker/Endpoints/{name}"
            kind = "client" if status < 500 else "server"
            raise StandInError(
                "ModelError", f'Received {kind} error ({status}) from primary with message "{original}". See '
                f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#logEventViewer:group="
                f"{group} in account {account} for more information.", 424,
                OriginalStatusCode=status, OriginalMessage=original,
                LogStreamArn=f"arn:aws:logs:{region}:{account}:log-group:{group}")
        output = {"Body": payload, "InvokedProductionVariant": server.deployment.variant}
        if content_type:
            output["ContentType"] = content_type
        return rest_answer(self.model, "InvokeEndpoint", output)


def _stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after STOP_GRACE_S."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
