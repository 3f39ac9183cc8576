"""The EC2 script's notice poller (entrypoints/spot_notice.py) against the local IMDSv2 server."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from core.spot.metadata import LocalMetadataServer, iso_utc
from entrypoints import spot_notice  # the script's own module (standard library only)

HANG_GUARD_S = 30


@pytest.fixture
def imds() -> Iterator[LocalMetadataServer]:
    server = LocalMetadataServer(instance_id="i-0123456789abcdef0").start()
    yield server
    server.close()


def test_server_binds_loopback_and_requires_a_token(imds: LocalMetadataServer) -> None:
    assert imds.url.startswith("http://127.0.0.1:")
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(imds.url + spot_notice.INSTANCE_ACTION_PATH, timeout=5)
    assert denied.value.code == 401  # IMDSv2: no token, no answer
    bad_ttl = urllib.request.Request(imds.url + spot_notice.TOKEN_PATH, method="PUT",
                                     headers={"X-aws-ec2-metadata-token-ttl-seconds": "0"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(bad_ttl, timeout=5)
    assert refused.value.code == 400


def test_no_notice_is_a_404_and_the_poller_keeps_waiting(imds: LocalMetadataServer) -> None:
    client = spot_notice.MetadataClient(imds.url)
    assert client.get("/latest/meta-data/instance-id") == "i-0123456789abcdef0"
    seen: list[spot_notice.InterruptionNotice] = []
    poller = spot_notice.NoticePoller(client, seen.append, interval_s=5)
    assert poller.poll_once() is None
    assert poller.poll_once() is None
    assert seen == [] and poller.polls == 2


def test_a_notice_fires_the_callback_once_with_action_and_time(imds: LocalMetadataServer) -> None:
    fired = threading.Event()
    seen: list[spot_notice.InterruptionNotice] = []

    def on_notice(notice: spot_notice.InterruptionNotice) -> None:
        seen.append(notice)
        fired.set()

    poller = spot_notice.NoticePoller(spot_notice.MetadataClient(imds.url), on_notice, interval_s=0.05).start()
    try:
        at = 1_800_000_000.0
        imds.serve_notice(action="terminate", at=at)
        assert fired.wait(HANG_GUARD_S)
    finally:
        poller.stop()
    assert len(seen) == 1
    assert seen[0].action == "terminate" and seen[0].time == iso_utc(at) == "2027-01-15T08:00:00Z"
    assert poller.poll_once() is not None and len(seen) == 1  # never fired twice


def test_an_invalidated_token_is_renewed(imds: LocalMetadataServer) -> None:
    client = spot_notice.MetadataClient(imds.url)
    first = client.token()
    imds.new_instance("i-0fedcba9876543210")  # drops every token, as a new instance would
    imds.serve_notice(action="stop", at=1_800_000_000.0)
    notice = client.instance_action()
    assert notice is not None and notice.action == "stop"
    assert client.token() != first


def test_an_unreachable_service_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    server = LocalMetadataServer().start()
    url = server.url
    server.close()
    poller = spot_notice.NoticePoller(spot_notice.MetadataClient(url, timeout_s=1), lambda n: None, interval_s=5)
    with caplog.at_level("WARNING"):
        assert poller.poll_once() is None
        assert poller.poll_once() is None
    warnings = [r for r in caplog.records if "cannot read the interruption notice" in r.getMessage()]
    assert len(warnings) == 1  # once per kind of error, then quiet


def test_the_poll_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interval_s"):
        spot_notice.NoticePoller(spot_notice.MetadataClient("http://127.0.0.1:9"), lambda n: None, interval_s=0)
