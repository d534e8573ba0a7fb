"""Cache directory and a verified, atomic, retrying download helper.

The cache is `$STRIATE_DATA` if set, else `~/.cache/striate`. A download goes to a temporary file in the
destination folder, is checked (length against Content-Length, then md5/sha256), fsynced and renamed into
place, so a partial file never sits under the final name. Resuming is not supported: a failed attempt is
removed and started again; the partial file of a killed download records its writer's process id and is
removed by the next download into that folder (`partial.py`).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

from ...atomic import fsync_dir
from ..errors import DataError
from . import partial

CHUNK = 1 << 20


def cache_dir(root: str | os.PathLike | None = None) -> Path:
    """The data cache folder: `root` if given, else `$STRIATE_DATA`, else `~/.cache/striate` (created)."""
    if root is None:
        root = os.environ.get("STRIATE_DATA") or Path.home() / ".cache" / "striate"
    path = Path(root).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a file in the way, no permission
        raise DataError(f"cannot use {path} as the data cache folder: {err.strerror or err}") from None
    return path


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: str | os.PathLike, md5: str | None = None, sha256: str | None = None) -> bool:
    """True when the file exists and matches every checksum given (no checksum given: existence only)."""
    path = Path(path)
    if not path.is_file():
        return False
    if md5 is not None and file_digest(path, "md5") != md5.lower():
        return False
    return sha256 is None or file_digest(path, "sha256") == sha256.lower()


class _LocalError(DataError):
    """Writing the file failed (disk full, no permission): retrying the download would not help."""


class _Answered(DataError):
    """The request failed with an answer, not a lost connection: an HTTP error status (`permanent` for 4xx
    other than 408/429), or a URL urllib cannot use (permanent)."""

    def __init__(self, message: str, permanent: bool):
        super().__init__(message)
        self.permanent = permanent


def _content_length(resp) -> int | None:
    value = resp.headers.get("Content-Length")
    return int(value) if value is not None and value.strip().isdigit() else None


def _fetch_once(url: str, dest: Path, timeout: float) -> None:
    """One attempt: stream `url` into a partial file beside `dest`, fsync, rename. Raises on any failure:
    _Answered, _LocalError, DataError (truncated), or the network's URLError/OSError/HTTPException."""
    try:
        fd, tmp = partial.make_file(dest)
    except OSError as err:
        raise _LocalError(f"could not write in {dest.parent}: {err.strerror or err}") from err
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                resp = urllib.request.urlopen(url, timeout=timeout)
            except urllib.error.HTTPError as err:
                err.close()
                raise _Answered(f"HTTP {err.code} ({err.reason}) for {url}",
                                  400 <= err.code < 500 and err.code not in (408, 429)) from None
            except ValueError as err:  # no scheme
                raise _Answered(f"invalid URL {url!r}: {err}", permanent=True) from None
            except urllib.error.URLError as err:
                if isinstance(err.reason, OSError):  # DNS, refused, unreachable, timeout: for the retry loop
                    raise
                raise _Answered(f"invalid URL {url!r}: {err.reason}", permanent=True) from None  # unknown scheme
            with resp:
                expected = _content_length(resp)
                received = 0
                while block := resp.read(CHUNK):
                    try:
                        out.write(block)
                    except OSError as err:
                        raise _LocalError(f"could not write {dest}: {err.strerror or err}") from err
                    received += len(block)
            if expected is not None and received != expected:
                raise DataError(f"truncated download of {url}: {received} of {expected} bytes")
            try:
                out.flush()
                os.fsync(out.fileno())
            except OSError as err:
                raise _LocalError(f"could not write {dest}: {err.strerror or err}") from err
        os.replace(tmp, dest)
        fsync_dir(dest.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _is_connection_failure(err: BaseException) -> bool:
    """No connection could be made at all (DNS, refused, unreachable, connect timeout): perhaps offline."""
    return isinstance(err, urllib.error.URLError) and not isinstance(err, urllib.error.HTTPError)


def download(url: str, dest: str | os.PathLike, md5: str | None = None, sha256: str | None = None,
             retries: int = 3, timeout: float = 60.0, backoff: float = 0.5) -> Path:
    """Download `url` to `dest` unless a verified copy is already there; returns `dest`.

    A cached file that fails its checksum is removed and downloaded again. Each attempt that fails (network
    error, server error 5xx/408/429, short read, checksum mismatch) is discarded and retried up to `retries`
    times in all, sleeping `backoff * 2**attempt` seconds between. Partial files left in dest's folder by
    killed downloads are removed first (see `partial.py`). Raises DataError, always ending with where to
    place the file by hand: 'HTTP 404 (Not Found) for URL' (not retried), 'could not download URL (reason);
    you may be offline' (no connection could be made), 'download of URL interrupted', 'truncated download',
    'checksum mismatch', 'could not write DEST' (not retried).
    """
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial.remove_stale(dest.parent)
        if dest.exists():
            if verify(dest, md5, sha256):
                return dest
            dest.unlink()
    except OSError as err:
        raise DataError(f"could not use {dest}: {err.strerror or err}") from err
    last: BaseException | None = None
    for attempt in range(max(1, retries)):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        try:
            _fetch_once(url, dest, timeout)
        except _LocalError:
            raise
        except _Answered as err:
            if err.permanent:
                raise DataError(f"{err}: place the file at {dest}") from None
            last = err
            continue
        except (urllib.error.URLError, OSError, http.client.HTTPException, DataError) as err:  # incl. short reads
            last = err
            continue
        if verify(dest, md5, sha256):
            return dest
        last = DataError(f"checksum mismatch for {dest} downloaded from {url}")
        dest.unlink(missing_ok=True)
    tries = f"after {max(1, retries)} attempt{'s' if retries > 1 else ''}"
    if isinstance(last, DataError):
        raise DataError(f"{last} ({tries}); place a correct copy of the file at {dest}")
    if _is_connection_failure(last):
        reason = getattr(last, "reason", last)
        raise DataError(f"could not download {url} ({reason}); you may be offline: place the file at {dest}") \
            from last
    raise DataError(f"download of {url} interrupted ({type(last).__name__}: {last}, {tries}): place the file at "
                    f"{dest}") from last
