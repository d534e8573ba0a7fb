"""Cache directory and a verified, atomic, retrying download helper.

The cache is `$STRIATE_DATA` if set, else `~/.cache/striate`. A download goes to a temporary file in the
destination folder, is checked (length against Content-Length, then md5/sha256), fsynced and renamed into
place, so a partial file never sits under the final name. Resuming is not supported: a failed attempt is
removed and started again.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from ...atomic import fsync_dir
from ..errors import DataError

CHUNK = 1 << 20


def cache_dir(root: str | os.PathLike | None = None) -> Path:
    """The data cache folder: `root` if given, else `$STRIATE_DATA`, else `~/.cache/striate` (created)."""
    if root is None:
        root = os.environ.get("STRIATE_DATA") or Path.home() / ".cache" / "striate"
    path = Path(root).expanduser()
    path.mkdir(parents=True, exist_ok=True)
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


def _fetch_once(url: str, dest: Path, timeout: float) -> None:
    """One attempt: stream `url` into a temporary file beside `dest`, fsync, rename. Raises on any failure."""
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            expected = resp.headers.get("Content-Length")
            received = 0
            while True:
                block = resp.read(CHUNK)
                if not block:
                    break
                out.write(block)
                received += len(block)
            if expected is not None and received != int(expected):
                raise DataError(f"truncated download of {url}: {received} of {expected} bytes")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest)
        fsync_dir(dest.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def download(url: str, dest: str | os.PathLike, md5: str | None = None, sha256: str | None = None,
             retries: int = 3, timeout: float = 60.0, backoff: float = 0.5) -> Path:
    """Download `url` to `dest` unless a verified copy is already there; returns `dest`.

    A cached file that fails its checksum is removed and downloaded again. Each attempt that fails (network
    error, short read, checksum mismatch) is discarded and retried up to `retries` times in all, sleeping
    `backoff * 2**attempt` seconds between. Raises DataError: offline ("could not download ... place the
    file at ...") or a file that still fails verification after every attempt.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        if verify(dest, md5, sha256):
            return dest
        dest.unlink()
    last: BaseException | None = None
    for attempt in range(max(1, retries)):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        try:
            _fetch_once(url, dest, timeout)
        except (urllib.error.URLError, OSError, http.client.HTTPException, DataError) as err:  # incl. short reads
            last = err
            continue
        if verify(dest, md5, sha256):
            return dest
        last = DataError(f"checksum mismatch for {dest} downloaded from {url}")
        dest.unlink(missing_ok=True)
    if isinstance(last, DataError):
        raise DataError(f"{last} (after {retries} attempts); place a correct copy of the file at {dest}")
    reason = getattr(last, "reason", last)
    raise DataError(f"could not download {url} ({reason}); you may be offline: place the file at {dest}") \
        from last
