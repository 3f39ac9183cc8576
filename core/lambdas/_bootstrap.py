"""The local Lambda runtime for one invocation: ``python _bootstrap.py CODE_DIR RESULT_FILE``.

Run by ``LocalFunctionManager`` in a fresh process with the function's environment. It does
what Lambda's Python runtime does around a handler: imports the handler (``_HANDLER``, else
``lambda_function.lambda_handler``) from the unpacked package, builds a context object, logs
``START`` / ``END`` / ``REPORT`` lines and the handler's log records in Lambda's format, and
writes the result (or the error Lambda would report) as JSON to RESULT_FILE. The event arrives on stdin. Standard library only; it
imports nothing from the console (it runs in another environment).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import resource
import signal
import sys
import time
import traceback
import uuid
from typing import Any

DEFAULT_HANDLER = "lambda_function.lambda_handler"
"""The handler when ``_HANDLER`` (Lambda's own variable, ``module.function``) is unset."""


class Context:
    """The attributes and method of Lambda's context object that handlers use."""

    def __init__(self, request_id: str, deadline: float) -> None:
        self.aws_request_id = request_id
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = os.environ.get("SMC_FUNCTION_ARN", "")
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class _RequestIdFilter(logging.Filter):
    def __init__(self, request_id: str) -> None:
        super().__init__()
        self.request_id = request_id

    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = self.request_id
        return True


def _configure_logging(request_id: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
                                           "%Y-%m-%dT%H:%M:%S"))
    logging.Formatter.converter = time.gmtime
    handler.addFilter(_RequestIdFilter(request_id))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _error(exc: BaseException) -> dict[str, Any]:
    """The payload Lambda returns for an unhandled exception."""
    return {"errorMessage": str(exc), "errorType": type(exc).__name__,
            "stackTrace": traceback.format_list(traceback.extract_tb(exc.__traceback__))}


class _TimedOut(BaseException):
    """Raised in the handler when the function's timeout passes (not an Exception: the
    handler's own ``except Exception`` cannot swallow it)."""


def _on_alarm(signum: int, frame: object) -> None:
    raise _TimedOut()


def main(code_dir: str, result_file: str) -> int:
    sys.path[0] = code_dir  # the package, not this folder, is the handler's import root
    request_id = str(uuid.uuid4())
    timeout_s = float(os.environ.get("AWS_LAMBDA_FUNCTION_TIMEOUT", "30"))
    _configure_logging(request_id)
    print(f"START RequestId: {request_id} Version: $LATEST", flush=True)
    init_started = time.perf_counter()
    outcome: dict[str, Any]
    try:
        event = json.loads(sys.stdin.buffer.read() or b"null")
        module_name, _, function_name = os.environ.get("_HANDLER", DEFAULT_HANDLER).rpartition(".")
        handler = getattr(importlib.import_module(module_name), function_name)
    except Exception as exc:
        init_ms = (time.perf_counter() - init_started) * 1000
        outcome, duration_ms = {"error": _error(exc)}, 0.0
        traceback.print_exc(file=sys.stdout)
    else:
        init_ms = (time.perf_counter() - init_started) * 1000
        started = time.perf_counter()
        signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
        try:
            outcome = {"result": handler(event, Context(request_id, time.monotonic() + timeout_s))}
            json.dumps(outcome)
        except _TimedOut:
            message = f"Task timed out after {timeout_s:.2f} seconds"
            outcome = {"error": {"errorType": "Sandbox.Timedout", "errorMessage": message}}
            print(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {request_id} {message}", flush=True)
        except Exception as exc:
            outcome = {"error": _error(exc)}
            print(f"[ERROR] {type(exc).__name__}: {exc}", flush=True)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        duration_ms = (time.perf_counter() - started) * 1000
    memory_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"END RequestId: {request_id}", flush=True)
    print(f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\tBilled Duration: "
          f"{max(1, round(duration_ms + 0.5))} ms\tMemory Size: {os.environ.get('AWS_LAMBDA_FUNCTION_MEMORY_SIZE')} MB"
          f"\tMax Memory Used: {memory_mb} MB\tInit Duration: {init_ms:.2f} ms", flush=True)
    outcome["duration_ms"] = duration_ms
    with open(result_file, "w", encoding="utf-8") as out:
        json.dump(outcome, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
