"""Cache directory and a verified, atomic, retrying, resuming download helper.

The cache is `$STRIATE_DATA` if set, else `~/.cache/striate`. A download goes to `<dest>.part` beside the
destination, is checked (length against Content-Length, then md5/sha256), fsynced and renamed into place,
so a partial file never sits under the final name. A broken download keeps its `.part` file: the next
attempt (or the next run) asks for the rest with `Range: bytes=N-` and appends it when the server answers
206 Partial Content, or starts over when it answers 200 with the whole file; the checksums are verified on
the whole file at the end, and a file that fails them is removed, never resumed. One process writes a
`.part` file at a time (an exclusive `flock` while it does). Other partial files (extractions, caches) record
their writer's process id and are removed by the next writer in that folder (`partial.py`).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

from ...atomic import fsync_dir
from ..errors import DataError
from . import partial

CHUNK = 1 << 20
PART = ".part"  # `<dest>.part`: a download in progress, resumed by the next attempt
MIN_PREFIX = 8  # hex digits of a sha256 prefix (torchvision's file names carry 8)


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


def _check_sha256(sha256: str | None) -> None:
    if sha256 is not None and not re.fullmatch(f"[0-9a-fA-F]{{{MIN_PREFIX},64}}", sha256):
        raise ValueError(f"sha256 {sha256!r}: expected the hex digest or a prefix of at least {MIN_PREFIX} hex "
                         "digits of it")


def mismatch(path: str | os.PathLike, md5: str | None = None, sha256: str | None = None) -> str | None:
    """Why the file fails its checksums ('sha256 9f1c… does not start with f37072fd'), None when it passes.
    `sha256` is the full digest or a prefix of at least 8 hex digits (the file's digest starts with it)."""
    _check_sha256(sha256)
    if md5 is not None and (got := file_digest(path, "md5")) != md5.lower():
        return f"md5 {got}, expected {md5.lower()}"
    if sha256 is not None and not (got := file_digest(path, "sha256")).startswith(sha256.lower()):
        return f"sha256 {got}, expected {sha256.lower()}" + ("" if len(sha256) == 64 else "…")
    return None


def verify(path: str | os.PathLike, md5: str | None = None, sha256: str | None = None) -> bool:
    """True when the file exists and matches every checksum given (no checksum given: existence only);
    `sha256` may be a prefix of the digest (at least 8 hex digits)."""
    return Path(path).is_file() and mismatch(path, md5, sha256) is None


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


def _range_start(resp) -> int | None:
    """N of a 206 answer's `Content-Range: bytes N-M/T`, None when the header is missing or malformed."""
    m = re.fullmatch(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)\s*", resp.headers.get("Content-Range") or "")
    return int(m.group(1)) if m else None


def _open(url: str, have: int, timeout: float):
    """The server's answer to GET `url`, asking for the bytes from `have` on when there are some already;
    None for 416 (nothing past `have`: the part may be whole already). Raises _Answered for an HTTP error or
    an unusable URL, URLError/OSError when no connection could be made."""
    try:
        request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        err.close()
        if err.code == 416 and have:
            return None
        raise _Answered(f"HTTP {err.code} ({err.reason}) for {url}",
                        400 <= err.code < 500 and err.code not in (408, 429)) from None
    except ValueError as err:  # no scheme
        raise _Answered(f"invalid URL {url!r}: {err}", permanent=True) from None
    except urllib.error.URLError as err:
        if isinstance(err.reason, OSError):  # DNS, refused, unreachable, timeout: for the retry loop
            raise
        raise _Answered(f"invalid URL {url!r}: {err.reason}", permanent=True) from None  # unknown scheme


def _exclusive(out, part: Path) -> None:
    """An exclusive lock on the open `.part` file, or DataError when another process is writing it."""
    try:
        import fcntl
    except ImportError:  # no flock here: one writer is the caller's business
        return
    try:
        fcntl.flock(out.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise _LocalError(f"another process is downloading into {part}; wait for it to finish") from None


def _fetch_once(url: str, part: Path, timeout: float) -> None:
    """One attempt: continue (or start) `part` from `url` and fsync it. What arrived stays in `part` when the
    attempt fails: _Answered, _LocalError, DataError (truncated), or the network's URLError/OSError/
    HTTPException."""
    try:
        out = open(part, "ab+", buffering=0)  # unbuffered: a killed process keeps every byte it received
    except OSError as err:
        raise _LocalError(f"could not write {part}: {err.strerror or err}") from err
    with out:
        _exclusive(out, part)
        have = out.seek(0, os.SEEK_END)
        resp = _open(url, have, timeout)
        if resp is None:
            return  # 416: the part already holds the whole file (or more: the checksums decide)
        with resp:
            start = _range_start(resp) if resp.status == 206 else 0  # 200: the whole file (ranges ignored)
            if start != have:
                out.truncate(0)  # start over
                if start != 0:
                    raise DataError(f"the server sent {url} from byte {start}, asked from {have}: starting over")
                have = 0
            length = _content_length(resp)
            expected = None if length is None else have + length
            while block := resp.read1(CHUNK):  # what has arrived: a stalled server loses none of it
                try:
                    out.write(block)
                except OSError as err:
                    raise _LocalError(f"could not write {part}: {err.strerror or err}") from err
        received = out.seek(0, os.SEEK_END)
        if expected is not None and received != expected:
            raise DataError(f"truncated download of {url}: {received} of {expected} bytes")
        try:
            os.fsync(out.fileno())
        except OSError as err:
            raise _LocalError(f"could not write {part}: {err.strerror or err}") from err


def _is_connection_failure(err: BaseException) -> bool:
    """No connection could be made at all (DNS, refused, unreachable, connect timeout): perhaps offline."""
    return isinstance(err, urllib.error.URLError) and not isinstance(err, urllib.error.HTTPError)


def download(url: str, dest: str | os.PathLike, md5: str | None = None, sha256: str | None = None,
             retries: int = 3, timeout: float = 60.0, backoff: float = 0.5) -> Path:
    """Download `url` to `dest` unless a verified copy is already there; returns `dest`.

    `sha256`: the full hex digest, or a prefix of it of at least 8 hex digits. A cached file that fails its
    checksum is removed and downloaded again. Each attempt that fails (network error, server error
    5xx/408/429, short read, checksum mismatch) is retried up to `retries` times in all, sleeping
    `backoff * 2**attempt` seconds between; an interrupted transfer resumes where it stopped (`Range`, see
    the module docstring), a file that fails its checksum starts over. Raises DataError, always ending with
    where to place the file by hand: 'HTTP 404 (Not Found) for URL' (not retried), 'could not download URL
    (reason); you may be offline' (no connection could be made), 'download of URL interrupted', 'truncated
    download', 'checksum mismatch', 'could not write DEST' (not retried).
    """
    _check_sha256(sha256)
    dest = Path(dest)
    part = dest.with_name(dest.name + PART)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial.remove_stale(dest.parent)
        if dest.exists():
            if verify(dest, md5, sha256):
                return dest
            dest.unlink()
    except OSError as err:
        raise DataError(f"could not use {dest}: {err.strerror or err}") from err
    try:
        return _attempts(url, dest, part, md5, sha256, retries, timeout, backoff)
    finally:
        with contextlib.suppress(OSError):
            if part.exists() and part.stat().st_size == 0:  # nothing arrived: nothing to resume
                part.unlink()


def _attempts(url: str, dest: Path, part: Path, md5, sha256, retries: int, timeout: float, backoff: float) -> Path:
    """`download`'s retry loop (see there)."""
    last: BaseException | None = None
    for attempt in range(max(1, retries)):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        try:
            _fetch_once(url, part, timeout)
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
        why = mismatch(part, md5, sha256)
        if why is None:
            os.replace(part, dest)
            fsync_dir(dest.parent)
            return dest
        last = DataError(f"checksum mismatch for {dest.name} downloaded from {url}: {why}")
        part.unlink(missing_ok=True)  # a wrong file is never resumed
    tries = f"after {max(1, retries)} attempt{'s' if retries > 1 else ''}"
    if isinstance(last, DataError):
        raise DataError(f"{last} ({tries}); place a correct copy of the file at {dest}")
    if _is_connection_failure(last):
        reason = getattr(last, "reason", last)
        raise DataError(f"could not download {url} ({reason}); you may be offline: place the file at {dest}") \
            from last
    raise DataError(f"download of {url} interrupted ({type(last).__name__}: {last}, {tries}; what arrived is kept in "
                    f"{part} and the next download resumes it): place the file at {dest}") from last
