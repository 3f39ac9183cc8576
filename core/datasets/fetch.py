"""Downloading a dataset archive from an http(s) URL, bounded in size.

This machine may have no internet: every network failure becomes an
:class:`~core.errors.InvalidInputError` whose message says what to check, and nothing is
left on disk. The body is written to a hidden temporary file beside the destination and
renamed into place once complete; a connection that breaks off is resumed from where it stopped
when the server allows byte ranges.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlparse

import requests

from core.errors import AlreadyExistsError, BackendError, InvalidInputError

DownloadProgress = Callable[[int, int | None], None]
"""Called as ``progress(bytes_done, bytes_total)``; bytes_total is None when unknown."""

_CHUNK = 64 * 1024
"""Bytes read at a time: what a broken connection had delivered of its last read is fetched again."""
MAX_RESUMES = 5
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
            the body is larger than max_bytes, or it broke off and could not be resumed.
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
        with os.fdopen(fd, "wb") as out:
            _fetch_into(out, url, host, dest, max_bytes=max_bytes, timeout_s=timeout_s, progress=progress)
        os.rename(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


def _fetch_into(out: BinaryIO, url: str, host: str, dest: Path, *, max_bytes: int, timeout_s: float,
                progress: DownloadProgress | None) -> None:
    """Writes the body to out; a broken connection is resumed with a Range request where the server
    allows byte ranges (``Accept-Ranges: bytes``), at most :data:`MAX_RESUMES` times."""
    done, total, resumes, ranges = 0, None, 0, False
    while True:
        with _get(url, host, timeout_s, {"Range": f"bytes={done}-"} if done else {}) as response:
            if done:
                _check_resumed(response, host, done)
            else:
                total = _declared_length(response, url, max_bytes)
                ranges = response.headers.get("Accept-Ranges", "").lower() == "bytes"
            try:
                for chunk in response.iter_content(chunk_size=_CHUNK):
                    done += len(chunk)
                    if done > max_bytes:
                        raise InvalidInputError(f"{url} is larger than the limit of {_mb(max_bytes)}: download stopped")
                    try:
                        out.write(chunk)
                    except OSError as exc:
                        raise BackendError(f"could not write {dest}: {exc.strerror or exc}") from exc
                    if progress:
                        progress(done, total)
            except requests.exceptions.RequestException as exc:
                resumes += 1
                if not ranges or resumes > MAX_RESUMES:
                    why = "the server cannot resume it" if not ranges else f"{MAX_RESUMES} resumes failed"
                    raise InvalidInputError(f"the download from {host} broke off after {_mb(done)}"
                                            f"{f' of {_mb(total)}' if total else ''} and {why}: {_reason(exc)}"
                                            ) from None
                continue
        if total is not None and done < total:
            raise InvalidInputError(f"the download from {host} ended after {_mb(done)} of {_mb(total)}")
        return


def _check_resumed(response: requests.Response, host: str, done: int) -> None:
    """A resumed answer must carry the rest of the body, from byte done on."""
    content_range = response.headers.get("Content-Range", "")
    if response.status_code != 206 or not content_range.startswith(f"bytes {done}-"):
        response.close()
        raise InvalidInputError(f"the download from {host} broke off after {_mb(done)} and resuming it failed "
                                f"(HTTP {response.status_code}, Content-Range {content_range or 'missing'})")


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


def _get(url: str, host: str, timeout_s: float, headers: dict[str, str]) -> requests.Response:
    try:
        response = requests.get(url, stream=True, timeout=timeout_s, headers=headers)
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


def _reason(exc: BaseException) -> str:
    """The innermost cause of a requests error, which names the real problem."""
    seen = {id(exc)}
    while exc.__context__ is not None and id(exc.__context__) not in seen:
        exc = exc.__context__
        seen.add(id(exc))
    return str(exc) or type(exc).__name__


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"
