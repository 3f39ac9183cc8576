"""The spot interruption notice, read from the instance metadata service (IMDSv2).

EC2 announces the reclaim of a spot instance two minutes ahead at
``/latest/meta-data/spot/instance-action``: HTTP 404 until there is a notice, then
``{"action": "terminate"|"stop"|"hibernate", "time": "2026-11-29T18:02:00Z"}``. With IMDSv2 every
read carries a session token obtained with ``PUT /latest/api/token``; an expired token answers
401 and is renewed. AWS recommends polling every 5 seconds. The local spot simulator serves the
same paths on 127.0.0.1, so this module runs unchanged on EC2 and locally.

Standard library only: the EC2 script imports it before torch is even needed, and tests use it
from the app's environment.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

LOG = logging.getLogger("train.spot")
DEFAULT_METADATA_URL = "http://169.254.169.254"
TOKEN_PATH = "/latest/api/token"
INSTANCE_ACTION_PATH = "/latest/meta-data/spot/instance-action"
TOKEN_TTL_S = 21600
POLL_INTERVAL_S = 5.0
REQUEST_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class InterruptionNotice:
    """A spot interruption notice: what EC2 will do and when (an ISO-8601 UTC time)."""

    action: str
    time: str
    seen_at: float


class MetadataClient:
    """Reads the instance metadata service with IMDSv2 session tokens.

    Args:
        base_url: ``http://169.254.169.254`` on EC2, the simulator's ``http://127.0.0.1:PORT`` locally.
        timeout_s: per-request timeout.
    """

    def __init__(self, base_url: str = DEFAULT_METADATA_URL, *, timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._token: str | None = None
        self._token_expires = 0.0

    def token(self, *, refresh: bool = False) -> str:
        """An IMDSv2 session token (cached until shortly before it expires)."""
        if refresh or self._token is None or time.monotonic() > self._token_expires:
            request = urllib.request.Request(
                self.base_url + TOKEN_PATH, method="PUT",
                headers={"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL_S)},
            )
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                self._token = response.read().decode().strip()
            self._token_expires = time.monotonic() + TOKEN_TTL_S - 60
        return self._token

    def get(self, path: str) -> str | None:
        """The text at a metadata path; None for 404. Renews the token once on 401."""
        for attempt in range(2):
            request = urllib.request.Request(
                self.base_url + path, headers={"X-aws-ec2-metadata-token": self.token(refresh=attempt > 0)}
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    return str(response.read().decode())
            except urllib.error.HTTPError as exc:
                if exc.code == 404:
                    return None
                if exc.code == 401 and attempt == 0:
                    continue
                raise
        return None

    def instance_action(self) -> InterruptionNotice | None:
        """The current interruption notice, or None while there is none."""
        text = self.get(INSTANCE_ACTION_PATH)
        if text is None:
            return None
        data = json.loads(text)
        return InterruptionNotice(action=str(data["action"]), time=str(data["time"]), seen_at=time.time())


class NoticePoller:
    """A daemon thread that polls for the notice and calls ``on_notice`` once when it appears.

    Errors reaching the metadata service are logged (at most once per kind) and polling goes
    on: a transient failure must not stop training, and a missed poll costs one interval.

    Args:
        client: the metadata client.
        on_notice: called from the poller thread with the notice, once.
        interval_s: seconds between polls (5 on EC2).
    """

    def __init__(self, client: MetadataClient, on_notice: Callable[[InterruptionNotice], None], *,
                 interval_s: float = POLL_INTERVAL_S) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s: must be positive, got {interval_s}")
        self.client = client
        self.on_notice = on_notice
        self.interval_s = interval_s
        self.notice: InterruptionNotice | None = None
        self.polls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spot-notice-poller", daemon=True)
        self._errors_seen: set[str] = set()

    def start(self) -> NoticePoller:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=self.interval_s + REQUEST_TIMEOUT_S * 2)

    def poll_once(self) -> InterruptionNotice | None:
        """One poll; fires ``on_notice`` the first time a notice is seen."""
        self.polls += 1
        try:
            notice = self.client.instance_action()
        except (OSError, ValueError, KeyError) as exc:  # URLError is an OSError
            kind = type(exc).__name__
            if kind not in self._errors_seen:
                self._errors_seen.add(kind)
                LOG.warning("spot: cannot read the interruption notice (%s: %s); still polling", kind, exc)
            return None
        if notice is not None and self.notice is None:
            self.notice = notice
            self.on_notice(notice)
        return notice

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.poll_once() is not None:
                return
            self._stop.wait(self.interval_s)
