"""One image file, opened safely: `probe_image` reads its header only, `read_image` decodes it to uint8 (H, W, C);
and READABLE, the one list of the formats every command reads (FORMAT_NAMES says it to people).

Pillow's `Image.open` is lazy: it parses the header (size, mode) and decodes nothing until the pixels are
asked for. So the declared size is checked first, against a pixel cap and (when given) the size the caller
expects, and a decompression bomb (17 KB of PNG declaring 12000x12000 pixels) is refused before a byte of it
is decoded. Pillow's own DecompressionBombWarning/Error never escape: the header is parsed with that warning
silenced (under a lock, since warning filters are process-wide; decoding itself runs unlocked), and whatever
a malformed file raises becomes a DataError naming the file. Only raster formats are opened (no EPS/PDF,
which would run external programs). 16-bit greyscale is scaled to 8 bits (v * 255 / 65535, rounded), never
clipped. Pillow is imported on first use only.

A photo is read the way it is shown: its EXIF Orientation (a phone's sideways JPEG carries 6, "rotate 90°
clockwise") is applied as Pillow's `ImageOps.exif_transpose` applies it, and every size here, the header's
included, is the size as shown (W and H swapped for orientations 5-8). Only EXIF the header holds is read,
so probing and decoding agree (a PNG's eXIf chunk after the pixels is not read).
"""

from __future__ import annotations

import os
import threading
import warnings
from dataclasses import dataclass

import numpy as np

from ..errors import DataError

MAX_PIXELS = 50_000_000  # 50 MP: a 48 MP phone photo passes; 150 MB decoded as RGB, below Pillow's 89 MP warning
GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_WIDE_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})  # integer pixels beyond 8 bits
_HEADER_LOCK = threading.Lock()

# The one list of readable formats, every command's (training folders and archives, predict, the help texts):
# (Pillow's format name, the name people know, the file name endings that mark it in a folder).
READABLE = (
    ("JPEG", "JPEG", (".jpg", ".jpeg")),
    ("PNG", "PNG", (".png",)),
    ("BMP", "BMP", (".bmp",)),
    ("GIF", "GIF (first frame)", (".gif",)),  # Pillow opens a GIF at its first frame
    ("TIFF", "TIFF", (".tif", ".tiff")),
    ("WEBP", "WebP", (".webp",)),
    ("PPM", "PPM/PGM/PBM", (".ppm", ".pgm", ".pbm", ".pnm")),
)
FORMATS = tuple(fmt for fmt, _, _ in READABLE)
EXTENSIONS = tuple(ext for _, _, exts in READABLE for ext in exts)
FORMAT_NAMES = ", ".join(name for _, name, _ in READABLE)


def readable_name(name: str) -> bool:
    """Whether a file name ends like one of the READABLE formats (case-insensitive): how a folder's images
    are told from its other files (a file named explicitly is read whatever its name)."""
    return name.lower().endswith(EXTENSIONS)


class ImageSizeError(DataError):
    """A file whose size differs from the one expected (raised before decoding it); `.path`, `.size` and
    `.expected` are (H, W) so a caller can collect and summarise the odd files."""

    def __init__(self, message: str, path: str, size: tuple[int, int], expected: tuple[int, int]):
        super().__init__(message)
        self.path, self.size, self.expected = path, size, expected


@dataclass(frozen=True)
class ImageHeader:
    """What a file's header declares: width, height, Pillow mode ('RGB', 'L', 'I;16', ...), format ('PNG')."""

    path: str
    width: int
    height: int
    mode: str
    format: str

    @property
    def size(self) -> tuple[int, int]:
        """(H, W)."""
        return self.height, self.width

    @property
    def channels(self) -> int:
        """1 for greyscale files, else 3: the C that `read_image(path)` returns."""
        return 1 if self.mode in GREY_MODES else 3


def _open(path: str | os.PathLike, max_pixels: int, formats: tuple[str, ...]):
    """The file opened by Pillow, header parsed, nothing decoded; its declared size within `max_pixels`."""
    from PIL import Image

    try:
        with _HEADER_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own cap, below, decides
            img = Image.open(path, formats=list(formats))
    except Image.DecompressionBombError:
        raise DataError(f"image {path} declares more than {2 * (Image.MAX_IMAGE_PIXELS or 0):,} pixels: refused "
                        f"before decoding (a decompression bomb?)") from None
    except Exception as err:  # UnidentifiedImageError, OSError (ELOOP, EISDIR, ...), SyntaxError, struct.error
        raise DataError(f"unreadable image {path}: {err}") from err
    w, h = img.size
    if w * h > max_pixels:
        img.close()
        raise DataError(f"image {path} is {w}x{h} ({w * h:,} pixels), more than the limit of {max_pixels:,}: "
                        f"refused before decoding (a decompression bomb, or an image to shrink first)")
    return img


def _orientation(img) -> int:
    """The EXIF Orientation (1-8) the header declares; 1 (as stored) when there is none or it is malformed."""
    if img.format == "PNG" and "exif" not in img.info:
        return 1  # an eXIf chunk after the pixels would need decoding to find: not looked for
    try:
        value = img.getexif().get(0x0112, 1)
    except Exception:  # a malformed EXIF block does not make the pixels unreadable
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _shown_size(img) -> tuple[int, int]:
    """(W, H) as the image is shown: orientations 5-8 turn it a quarter. Pillow's TIFF reader turns a TIFF
    itself as it decodes, and then already gives the size as shown (not the ImageWidth, ImageLength tags)."""
    w, h = img.size
    tags = getattr(img, "tag_v2", None)
    if _orientation(img) < 5 or (tags is not None and (tags.get(256), tags.get(257)) != (w, h)):
        return w, h
    return h, w


def _orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """(H, W[, C]) pixels as stored → as shown; the transposes of Pillow's `ImageOps.exif_transpose`."""
    if orientation == 2:
        arr = arr[:, ::-1]
    elif orientation == 3:
        arr = arr[::-1, ::-1]
    elif orientation == 4:
        arr = arr[::-1]
    elif orientation == 5:
        arr = arr.swapaxes(0, 1)
    elif orientation == 6:
        arr = np.rot90(arr, -1)
    elif orientation == 7:
        arr = arr[::-1, ::-1].swapaxes(0, 1)
    elif orientation == 8:
        arr = np.rot90(arr, 1)
    return np.ascontiguousarray(arr)


def probe_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS,
                formats: tuple[str, ...] = FORMATS) -> ImageHeader:
    """Read only the header of an image file: its size as shown (EXIF Orientation applied) and mode. Raises
    DataError naming the file when it is unreadable, of another format, or larger than `max_pixels`."""
    with _open(path, max_pixels, formats) as img:
        w, h = _shown_size(img)
        return ImageHeader(str(path), w, h, img.mode, img.format or "")


def _pixels(img, mode: str, path) -> np.ndarray:
    """Decode `img` into uint8 (H, W) for mode 'L' or (H, W, 3) for 'RGB'; wide greyscale scaled, not clipped."""
    from PIL import Image

    if img.mode == "F":
        raise DataError(f"image {path}: 32-bit float pixels (mode 'F') are not supported: expected 8 or 16 bits")
    if img.mode in _WIDE_MODES:  # Pillow's convert('L') would clip 16-bit values at 255
        wide = np.asarray(img)
        if wide.size and (wide.min() < 0 or wide.max() > 65535):
            raise DataError(f"image {path}: {img.mode} pixel values in [{wide.min()}, {wide.max()}], outside the "
                            f"16-bit range [0, 65535]")
        img = Image.fromarray(((wide.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8), "L")
    if img.mode != mode:
        img = img.convert(mode)
    return np.asarray(img, dtype=np.uint8)


def resize_crop(arr: np.ndarray, mode: str, size: tuple[int, int], shorter_side: int = 0) -> np.ndarray:
    """uint8 (H, W[, C]) resized to `size` (H, W), bilinear. With `shorter_side`: torchvision's Resize(S) then
    CenterCrop(size) instead: the shorter side scaled to S (the longer to int(S · long / short)), aspect kept,
    then the centre `size` cut out (top-left at round((H' − h) / 2), round((W' − w) / 2)); S ≥ max(size)."""
    from PIL import Image

    h, w = arr.shape[:2]
    if not shorter_side:
        return np.asarray(Image.fromarray(arr, mode).resize((size[1], size[0]), Image.Resampling.BILINEAR))
    if shorter_side < max(size):
        raise DataError(f"shorter side {shorter_side} is smaller than the crop {size[0]}x{size[1]}")
    short, long = min(h, w), max(h, w)
    scaled = (shorter_side, int(shorter_side * long / short))
    nh, nw = scaled if h <= w else scaled[::-1]
    if (nh, nw) != (h, w):
        arr = np.asarray(Image.fromarray(arr, mode).resize((nw, nh), Image.Resampling.BILINEAR))
    top, left = int(round((nh - size[0]) / 2)), int(round((nw - size[1]) / 2))
    return arr[top:top + size[0], left:left + size[1]]


def read_image(path: str | os.PathLike, size: tuple[int, int] | None = None, mode: str | None = None, *,
               expect: tuple[int, int] | None = None, max_pixels: int = MAX_PIXELS,
               formats: tuple[str, ...] = FORMATS, shorter_side: int = 0) -> np.ndarray:
    """An image file as uint8 (H, W, C), as shown (EXIF Orientation applied), checked before it is decoded.

    mode: 'L' (C=1) or 'RGB' (C=3); None picks 'L' for greyscale files, else 'RGB'. size: (H, W) to resize
    to (bilinear) when the file's size differs; None keeps the file's size. shorter_side (with size): resize
    the shorter side to it, aspect kept, and centre-crop `size` (`resize_crop`). expect: (H, W) the file must
    have, checked from the header (ImageSizeError otherwise). Sizes are as shown. max_pixels caps the
    declared W*H (and size).
    Raises DataError naming the file for anything wrong with it.
    """
    if mode not in (None, "L", "RGB"):
        raise DataError(f"read_image: mode must be 'L', 'RGB' or None, got {mode!r}")
    if size is not None:
        if len(size) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in size):
            raise DataError(f"read_image: size must be (H, W) positive ints, got {size!r}")
        size = (int(size[0]), int(size[1]))
        if size[0] * size[1] > max_pixels:
            raise DataError(f"read_image: size {size[1]}x{size[0]} exceeds the limit of {max_pixels:,} pixels")
    with _open(path, max_pixels, formats) as img:
        orientation = _orientation(img)
        w, h = _shown_size(img)
        if expect is not None and (h, w) != tuple(expect):
            raise ImageSizeError(f"image {path} is {w}x{h}, expected {expect[1]}x{expect[0]}", str(path), (h, w),
                                 (int(expect[0]), int(expect[1])))
        mode = mode or ("L" if img.mode in GREY_MODES else "RGB")
        try:
            arr = _pixels(img, mode, path)
            # a decoder that turned the image itself (Pillow's TIFF reader) has dropped the tag by now
            arr = _orient(arr, orientation if _orientation(img) == orientation else 1)
            if size is not None and (size != (h, w) or shorter_side):
                arr = resize_crop(arr, mode, size, shorter_side)
        except DataError:
            raise
        except Exception as err:  # truncated data (OSError), zlib/struct errors, over-long text chunks (ValueError)
            raise DataError(f"unreadable image {path}: {err}") from err
    return arr.reshape(arr.shape[0], arr.shape[1], 1 if mode == "L" else 3)
