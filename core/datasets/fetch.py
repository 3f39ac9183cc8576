"""Downloading a dataset archive from an http(s) URL, bounded in size.

This machine may have no internet: every network failure becomes an
:class:`~core.errors.InvalidInputError` whose message says what to check, and nothing is
left on disk. The body is written to a hidden temporary file beside the destination and
renamed into place once complete.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urlparse

import requests

from core.errors import AlreadyExistsError, BackendError, InvalidInputError

DownloadProgress = Callable[[int, int | None], None]
"""Called as ``progress(bytes_done, bytes_total)``; bytes_total is None when unknown."""

_CHUNK = 1024 * 1024
_SCHEMES = ("http", "https")


def download_url(
    url: str,
    dest: Path,
    *,
    max_bytes: int,
    timeout_s: float = 30,
    progress: DownloadProgress | None = None,
) -> Path:
    """Downloads url to dest, refusing bodies larger than max_bytes.

    Args:
        url: an ``http://`` or ``https://`` URL; redirects are followed.
        dest: the file to create; its folder must exist.
        max_bytes: largest body accepted, checked against Content-Length before the download
            and against the bytes received while it runs.
        timeout_s: seconds to wait to connect and between bytes received.
        progress: see :data:`DownloadProgress`.

    Returns:
        dest.

    Raises:
        InvalidInputError: not an http(s) URL, host unreachable, timeout, HTTP error status,
            or the body is larger than max_bytes.
        AlreadyExistsError: dest exists already.
        BackendError: dest could not be written.
    """
    url = url.strip()
    host = _check_url(url)
    dest = Path(dest)
    if os.path.lexists(dest):
        raise AlreadyExistsError(f"{dest} exists already")
    try:
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    except OSError as exc:
        raise BackendError(f"could not create {dest}: {exc.strerror or exc}") from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, _get(url, host, timeout_s) as response:
            total = _declared_length(response, url, max_bytes)
            done = 0
            for chunk in _iter_body(response, host):
                done += len(chunk)
                if done > max_bytes:
                    raise InvalidInputError(f"{url} is larger than the limit of {_mb(max_bytes)}: download stopped")
                try:
                    out.write(chunk)
                except OSError as exc:
                    raise BackendError(f"could not write {dest}: {exc.strerror or exc}") from exc
                if progress:
                    progress(done, total)
        os.rename(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


def _check_url(url: str) -> str:
    """Returns the URL's host; refuses anything but absolute http(s) URLs."""
    parsed = urlparse(url)
    if not parsed.scheme:
        raise InvalidInputError(f"{url!r} is not a full URL: start it with https://")
    if parsed.scheme.lower() not in _SCHEMES:
        raise InvalidInputError(f"only http:// and https:// URLs can be downloaded, not {parsed.scheme}: ({url!r})")
    if not parsed.hostname:
        raise InvalidInputError(f"{url!r} has no host name")
    return parsed.hostname


def _get(url: str, host: str, timeout_s: float) -> requests.Response:
    try:
        response = requests.get(url, stream=True, timeout=timeout_s)
    except requests.exceptions.Timeout:
        raise InvalidInputError(f"{host} did not answer within {timeout_s:g} s") from None
    except requests.exceptions.ConnectionError as exc:
        raise InvalidInputError(f"could not reach {host}: is this machine offline? ({_reason(exc)})") from None
    except requests.exceptions.RequestException as exc:
        raise InvalidInputError(f"could not download {url}: {_reason(exc)}") from None
    if response.status_code >= 400:
        response.close()
        raise InvalidInputError(
            f"download failed: {host} answered HTTP {response.status_code} {response.reason or ''}".rstrip()
        )
    return response


def _declared_length(response: requests.Response, url: str, max_bytes: int) -> int | None:
    """Content-Length as a number, refusing a body announced as too large."""
    header = response.headers.get("Content-Length", "")
    if not header.isdigit():
        return None
    length = int(header)
    if length > max_bytes:
        raise InvalidInputError(f"{url} is {_mb(length)}, larger than the limit of {_mb(max_bytes)}")
    return length


def _iter_body(response: requests.Response, host: str) -> Iterator[bytes]:
    try:
        yield from response.iter_content(chunk_size=_CHUNK)
    except requests.exceptions.RequestException as exc:
        raise InvalidInputError(f"the download from {host} broke off: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    """The innermost cause of a requests error, which names the real problem."""
    seen = {id(exc)}
    while exc.__context__ is not None and id(exc.__context__) not in seen:
        exc = exc.__context__
        seen.add(id(exc))
    return str(exc) or type(exc).__name__


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"
