"""Image folders `root/<class>/**/*.jpg` (torchvision ImageFolder layout; classes sorted by name).

An image's class is the top-level folder it is in, at any depth below it (`cat/2019/001.jpg` is a cat); the
formats are image_file.READABLE's and the walk is image_tree.walk's. A class folder's files of other formats,
and images beside the class folders, are listed in the dataset's `skipped` with the reason, never dropped
unsaid. Every file's header is read first (`probe_image`: the pixel cap, the size, the mode); unreadable files are
skipped and listed (or, strictly, refused); the images must share one size unless a size to resize them to
is given. They are decoded by `read_image` on a thread pool (Pillow's decoders release the GIL; fewer
threads for large images, see DECODE_BUDGET) and the result is cached per split as
`<cache>/image_folder/<name>-<split>-<key>.images.npy` plus `.labels.npz`, where `key` hashes every file's
relative path, size and mtime (and the size and mode asked for), so an edited folder is decoded again and an
unchanged one reloads from the cache in a fraction of a second (read with `allow_pickle=False`, checked
against the listing, rebuilt when damaged). The images are decoded straight into the cache file and the
dataset's `images` is that file memory-mapped read-only (image_cache.py), never copied into memory whole.
A `.tar.gz` of such folders (the shared `cifar10-jpg.tar.gz`, with `train/<class>/*.jpg` and
`test/<class>/*.jpg`, optionally under one top-level folder) is extracted once into the cache and read from
there; a member that would land outside the extraction folder (`..`, absolute paths, links pointing out) is
refused by name before anything is extracted. Symbolic links in a folder are followed; a loop or a dangling
link is an error naming it.

Pillow is imported only when images are actually decoded.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import shutil
import tarfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..rows import release
from . import partial
from .base import Dataset
from .download import cache_dir
from .image_cache import cache_target, load_cache, save_cache
from .image_file import FORMAT_NAMES, MAX_PIXELS, probe_image, read_image, readable_name
from .image_tree import entry_kind, listdir, visible, walk

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
_DONE = ".extracted"
DECODE_BUDGET = 512 << 20  # bytes of images being decoded at once, across threads


def is_archive(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(ARCHIVE_SUFFIXES)


def _archive_stem(path: Path) -> str:
    name = path.name
    for suffix in ARCHIVE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def unsafe_member(member: tarfile.TarInfo) -> str | None:
    """Why extracting `member` could write outside the target folder (or create a device), else None.

    Refused: absolute paths, '..' components, links whose target is absolute or leaves the archive's root
    (a symlink's target is relative to its own folder, a hard link's to the root), devices and FIFOs.
    """
    name = member.name.replace("\\", "/")
    parts = name.split("/")
    if name.startswith("/") or (len(parts[0]) == 2 and parts[0][1] == ":") or ".." in parts:
        return f"unsafe member path {member.name!r}"
    if member.issym() or member.islnk():
        link = member.linkname.replace("\\", "/")
        base = posixpath.dirname(name) if member.issym() else ""
        resolved = posixpath.normpath(posixpath.join(base, link))
        if link.startswith("/") or resolved == ".." or resolved.startswith("../"):
            kind = "symbolic" if member.issym() else "hard"
            return f"unsafe {kind} link {member.name!r} -> {member.linkname!r}"
    elif not (member.isfile() or member.isdir()):
        return f"unsupported member type (device or FIFO) {member.name!r}"
    return None


def _checked_members(tar: tarfile.TarFile, archive: Path):
    for member in tar:
        reason = unsafe_member(member)
        if reason is not None:
            raise DataError(f"{reason} in archive {archive}: refusing to extract it")
        yield member


def extract_archive(archive: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """Extract `archive` once into `<cache>/image_folder/<stem>-<key>/` and return that folder.

    The key hashes the archive's size and mtime; extraction goes to a partial folder (`partial.py`) renamed
    into place only when complete, so an interrupted run leaves nothing that looks finished, and the partial
    folder of a killed run is removed by the next one. Each member is checked (`unsafe_member`) before it is
    extracted: a path traversal is refused by name, never extracted, and the partial folder removed.
    """
    archive = Path(archive)
    if not archive.is_file():
        raise DataError(f"archive not found: {archive}")
    st = archive.stat()
    key = hashlib.sha256(f"{archive.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:12]
    base = cache_dir(root) / "image_folder"
    base.mkdir(exist_ok=True)
    target = base / f"{_archive_stem(archive)}-{key}"
    if (target / _DONE).exists():
        return target
    partial.remove_stale(base)
    tmp = partial.make_dir(target)
    from ...console import note

    note(f"extracting {archive.name} into {base} (once: later runs read the extracted copy) …")
    try:
        with tarfile.open(archive, "r:*") as tar:
            # One pass: each member is checked before it is extracted (into tmp, removed on failure), and
            # the "data" filter stays as a second line of defence.
            tar.extractall(tmp, members=_checked_members(tar, archive), filter="data")
        (tmp / _DONE).touch()
        if target.exists():  # a stale, incomplete earlier attempt
            _rmtree(target)
        os.replace(tmp, target)
    except tarfile.FilterError as err:
        _rmtree(tmp)
        name = getattr(getattr(err, "tarinfo", None), "name", "?")
        raise DataError(f"unsafe member {name!r} in archive {archive}: {err}") from err
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        _rmtree(tmp)
        raise DataError(f"corrupt or truncated archive {archive}: {err}") from err
    except BaseException:
        _rmtree(tmp)
        raise
    return target


def _rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


class MissingSplit(DataError):
    """A folder without the requested split's subfolder (`split`: 'train', 'test', …): a flat `<class>/` folder,
    or one with a training split only. Callers that accept either catch this type, not the message."""

    def __init__(self, message: str, split: str):
        super().__init__(message)
        self.split = split


def find_split(folder: str | os.PathLike, split: str | None) -> Path:
    """The folder holding `<class>/` subfolders for `split`: `folder/split`, or `folder/<top>/split` when the
    tree sits under one top-level folder; `folder` itself when `split` is None; MissingSplit when neither."""
    folder = Path(folder)
    if split is None:
        return folder
    if (folder / split).is_dir():
        return folder / split
    subdirs = [Path(e.path) for e in listdir(folder) if not e.name.startswith(".") and entry_kind(e) == "dir"] \
        if folder.is_dir() else []
    if len(subdirs) == 1 and (subdirs[0] / split).is_dir():
        return subdirs[0] / split
    raise MissingSplit(f"no {split!r} folder in {folder} (looked for {folder / split} and <top>/{split})", split)


def scan(folder: str | os.PathLike) -> tuple[list[str], list[tuple[str, int, int, int]], list[tuple[str, str]]]:
    """Classes (the top-level subfolders' names, sorted), the images (relative path, label, size, mtime_ns) at
    any depth below each class folder (image_tree.walk's order), and the files left out with the reason:
    a class folder's files of other formats, and images beside the class folders rather than in one."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"image folder not found: {folder}")
    entries = [e for e in listdir(folder) if visible(e)]
    kinds = [entry_kind(e) for e in entries]
    classes = [e.name for e, kind in zip(entries, kinds, strict=True) if kind == "dir"]
    loose = [e.name for e, kind in zip(entries, kinds, strict=True) if kind != "dir" and readable_name(e.name)]
    if not classes:
        raise DataError(_no_class_folders(folder, loose, len(entries)))
    files, left_out = [], [(name, "an image outside the class folders (its class would be the top-level "
                                  "folder it is in)") for name in loose]
    for label, cls in enumerate(classes):
        below = walk(folder / cls)
        images, others = [rel for rel, image in below if image], [rel for rel, image in below if not image]
        if not images:
            also = f"; it holds {len(others)} other files, e.g. {others[0]}" if others else ""
            raise DataError(f"class folder {folder / cls} holds no images ({FORMAT_NAMES}){also}")
        for rel in images:
            try:
                st = (folder / cls / rel).stat()
            except OSError as err:  # removed or replaced since it was listed
                raise DataError(f"cannot read {folder / cls / rel}: {err.strerror or err}") from None
            files.append((f"{cls}/{rel}", label, st.st_size, st.st_mtime_ns))
        left_out += [(f"{cls}/{rel}", f"not a format striate reads ({FORMAT_NAMES})") for rel in others]
    return classes, files, sorted(left_out)


def _no_class_folders(folder: Path, images: list[str], entries: int) -> str:
    example = f"{folder / 'cat' / '001.jpg'}, {folder / 'dog' / '002.jpg'}"
    if images:
        return (f"image folder {folder} holds {len(images)} image{'s' if len(images) != 1 else ''} (e.g. "
                f"{images[0]}) but no class folders: put each class's images in a folder named after the class, "
                f"e.g. {example} (folders nested in a class folder belong to that class)")
    what = "empty image folder" if not entries else f"no class folders and no images ({FORMAT_NAMES}) in"
    return f"{what} {folder}: expected <class>/ subfolders of images, e.g. {example}"


class MixedSizes(DataError):
    """Images of several sizes in one folder, without a size to resize them to."""


def probe_folder(folder: Path, relpaths: list[str], workers: int, max_pixels: int = MAX_PIXELS):
    """Every file's header, read in parallel: ({relpath: ImageHeader}, {relpath: reason it is unreadable})."""
    def probe(rel):
        try:
            return rel, probe_image(folder / rel, max_pixels=max_pixels), None
        except DataError as err:
            return rel, None, str(err)

    headers, bad = {}, {}
    with ThreadPoolExecutor(max_workers=workers) as pool:  # headers only: a few KB each, any thread count
        for lo in range(0, len(relpaths), 2048):  # tasks submitted a slice at a time: few futures alive at once
            for rel, header, reason in pool.map(probe, relpaths[lo:lo + 2048]):
                if header is None:
                    bad[rel] = reason
                else:
                    headers[rel] = header
    return headers, bad


def common_size(folder: Path, headers: dict) -> tuple[int, int]:
    """The one (H, W) of the images, or MixedSizes naming the most common size and listing the odd files."""
    counts: dict[tuple[int, int], int] = {}
    for h in headers.values():
        counts[h.size] = counts.get(h.size, 0) + 1
    if len(counts) == 1:
        return next(iter(counts))
    (mh, mw), n = max(counts.items(), key=lambda kv: (kv[1], kv[0]))
    odd = [f"{rel} ({h.height}x{h.width})" for rel, h in headers.items() if h.size != (mh, mw)]
    shown = ", ".join(odd[:8]) + (f" and {len(odd) - 8} more" if len(odd) > 8 else "")
    raise MixedSizes(f"the images in {folder} differ in size (H×W): {n} of {len(headers)} are {mh}x{mw}, the "
                     f"others are not: {shown}; give --image-size {mh}x{mw} to resize them all, or remove them")


def decode_images(folder: Path, relpaths: list[str], size: tuple[int, int], mode: str, workers: int,
                  max_pixels: int = MAX_PIXELS, strict: bool = False, bad: dict | None = None,
                  title: str | None = None, shorter_side: int = 0, out: np.ndarray | None = None) -> np.ndarray:
    """Decode images into uint8 (N, H, W, C) of `size` (H, W) and `mode` ('L' or 'RGB') with `read_image`,
    resizing those of another size; in parallel, with a progress display. A file that fails to decode is
    recorded in `bad` (relpath → reason) and left out, or with `strict` aborts. Returns the decoded images
    in `relpaths` order, without the failed ones. `title` names the step in the progress display ("": none).
    `shorter_side`: resize the shorter side to it and centre-crop `size` instead (`image_file.resize_crop`).
    out: the (N, H, W, C) uint8 array to decode into (a cache file's memory map); returned itself when every
    file decoded, else its first rows, the decoded images moved up in place."""
    from ...console import steps

    h, w = size
    out = np.empty((len(relpaths), h, w, 1 if mode == "L" else 3), dtype=np.uint8) if out is None else out
    ok = np.ones(len(relpaths), dtype=bool)
    bad = {} if bad is None else bad

    def work(lo: int, hi: int) -> int:
        for i in range(lo, hi):
            try:
                out[i] = read_image(folder / relpaths[i], size=size, mode=mode, max_pixels=max_pixels,
                                    shorter_side=shorter_side)
            except DataError as err:
                if strict:
                    raise
                ok[i] = False
                bad[relpaths[i]] = str(err)
        return hi - lo

    step = 256
    title = f"decoding {len(relpaths):,} images of {folder} (cached afterwards)" if title is None else title
    with steps(len(relpaths), title, "img") if title else contextlib.nullcontext() as bar:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(work, lo, min(lo + step, len(relpaths))) for lo in range(0, len(relpaths), step)]
            try:
                for f in futures:
                    done = f.result()
                    release(out)  # a cache file's pages leave the process as they are written
                    if bar is not None:
                        bar.update(done)
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)  # stop decoding the rest after the first bad file
                raise
    if ok.all():
        return out
    keep = np.flatnonzero(ok)
    for j, i in enumerate(keep):  # in place (rows only move down), so a memory-mapped `out` is never copied whole
        out[j] = out[i]
    return out[:len(keep)]


def decode_workers(size: tuple[int, int], mode: str, workers: int | None = None) -> int:
    """Threads for decoding: within DECODE_BUDGET bytes of images in flight (about three copies each)."""
    per_image = 3 * size[0] * size[1] * (1 if mode == "L" else 3)
    return max(1, min(workers or min(8, os.cpu_count() or 1), DECODE_BUDGET // per_image))


# what a file decodes to; a change here keys new cache entries, so no image decoded the old way is reused
# (2: EXIF Orientation applied, image_file.py)
DECODING = 2


def kept_paths(folder: Path, files: list, skipped: list) -> list[str]:
    """The absolute path of every image kept, in the listing's order (the order of the decoded images): the
    listed files (relative path first) less the skipped ones ((relative path, reason) pairs)."""
    left_out = {rel for rel, _ in skipped}
    base = os.path.abspath(folder)
    return [os.path.join(base, *f[0].split("/")) for f in files if f[0] not in left_out]


def load_image_folder(path: str | os.PathLike, split: str | None = None, name: str | None = None,
                      root: str | os.PathLike | None = None, workers: int | None = None, cache: bool = True,
                      mode: str | None = None, max_pixels: int = MAX_PIXELS, size: tuple[int, int] | None = None,
                      strict: bool = False, shorter_side: int = 0) -> Dataset:
    """A split of an image-folder dataset, from a folder or a .tar(.gz) archive of one.

    path: `<path>/<split>/<class>/**/*.jpg` (or `<path>/<top>/<split>/...`), or `<path>/<class>/**/*.jpg`
    with split=None. size: (H, W) to resize every image to (with `shorter_side`: resize the shorter side to it,
    aspect kept, and centre-crop `size`); None: the images must share one size (MixedSizes
    names the most common one and the odd files otherwise). mode: 'L' or 'RGB' (None: RGB if any image is
    in colour). An unreadable file (a corrupt or oversized one, another format, an image outside the class
    folders) is skipped and listed in the dataset's `skipped` ((relative path, reason) pairs); with `strict` it
    aborts instead. root: the cache
    folder (default `$STRIATE_DATA` or `~/.cache/striate`). A damaged cache entry is rebuilt.
    """
    path = Path(path)
    name = name or (_archive_stem(path) if is_archive(path) else path.name)
    folder = find_split(extract_archive(path, root) if is_archive(path) else path, split)
    classes, files, left_out = scan(folder)
    listing = "\n".join(f"{p}|{lab}|{fsize}|{mtime}" for p, lab, fsize, mtime in files)
    shorter_side = shorter_side if size is not None else 0  # a crop needs its size
    resize = f"{size}/{shorter_side}" if shorter_side else size  # the keys without a crop stay as they were
    key = hashlib.sha256(f"{DECODING}|{mode}|{resize}|{strict}\n{'|'.join(classes)}\n{listing}".encode())
    key = key.hexdigest()[:16]
    split_name = split or "all"
    stem = cache_dir(root) / "image_folder" / f"{name}-{split_name}-{key}"
    images_file, labels_file = stem.with_name(stem.name + ".images.npy"), stem.with_name(stem.name + ".labels.npz")
    if cache and labels_file.exists() and images_file.exists():
        cached = load_cache(images_file, labels_file, files, classes)
        if cached is not None:
            images, labels, skipped = cached
            return Dataset(images, labels, classes, name=name, split=split_name, source=str(folder),
                           skipped=sorted([*skipped, *left_out]), paths=kept_paths(folder, files, skipped))
        labels_file.unlink(missing_ok=True)  # a damaged cache is rebuilt from the images
        images_file.unlink(missing_ok=True)
    threads = min(8, os.cpu_count() or 1) if workers is None else workers
    headers, bad = probe_folder(folder, [f[0] for f in files], threads, max_pixels)
    if left_out and strict:
        rel, reason = left_out[0]
        raise DataError(f"{folder / rel}: {reason}" + (f" (and {len(left_out) - 1} more)" if len(left_out) > 1 else ""))
    if bad and strict:
        rel, reason = next(iter(bad.items()))
        raise DataError(f"{reason} (and {len(bad) - 1} more unreadable)" if len(bad) > 1 else reason)
    if not headers:
        raise DataError(f"no readable image in {folder}: {next(iter(bad.values()))}")
    size = tuple(size) if size is not None else common_size(folder, headers)
    mode = mode or ("RGB" if any(h.channels == 3 for h in headers.values()) else "L")
    readable = [f for f in files if f[0] in headers]
    with cache_target(folder, images_file, (len(readable), *size, 1 if mode == "L" else 3), cache) as target:
        images = decode_images(folder, [f[0] for f in readable], size, mode, decode_workers(size, mode, workers),
                               max_pixels, strict, bad, shorter_side=shorter_side,
                               out=None if target is None else target.images)
    labels = np.array([f[1] for f in readable if f[0] not in bad], dtype=np.int64)
    skipped = sorted(bad.items())  # cached with the images; left_out is listed afresh on every run
    if cache:  # the cache entry completed and memory-mapped: no size of folder needs its images in memory
        images = save_cache(folder, images_file, labels_file, images, labels, classes, skipped, target)
    return Dataset(images, labels, classes, name=name, split=split_name, source=str(folder),
                   skipped=sorted([*skipped, *left_out]), paths=kept_paths(folder, files, skipped))
