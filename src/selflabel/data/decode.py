"""Decoding image files to uint8 arrays, with every PIL mode mapped to ``L`` or ``RGB``.

Mode policy (the same for every file source):

- ``RGB``, ``YCbCr``, ``LAB``, ``HSV`` and ``CMYK`` → ``RGB`` (PIL's conversion);
- ``RGBA``, ``LA``, ``PA`` and palette (``P``) images with transparency → composited onto **white**,
  then ``RGB``/``L`` (dropping alpha instead would turn transparent areas black);
- 16-bit and 32-bit integer images (``I;16*``, ``I``) → 8-bit by keeping the high byte
  (values / 256), float images (``F``) → scaled from 0..1 when their maximum is ≤ 1, else clipped;
- ``1`` (bilevel) → ``L``;
- EXIF orientation is applied, so photos appear upright.

A source is one-channel (``L``) when every file in it is grayscale, else three-channel (gray files
in a colour source are replicated to RGB).

:func:`check_image` is the cheap up-front validation done when a folder is loaded.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

#: file name extensions recognised as images in folders (lower case).
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm",
     ".pnm", ".jfif"}
)
GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


class BadImageError(ValueError):
    """An image file that cannot be decoded; the message names the file and the reason."""


def check_image(path: str | os.PathLike[str]) -> tuple[str, tuple[int, int]]:
    """Check a file cheaply; return ``(mode, (width, height))`` or raise :class:`BadImageError`.

    Catches zero-byte and non-image files (header), corrupt PNG chunks (``verify``) and truncated
    JPEGs (missing end-of-image marker), without decoding the pixels.
    """
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as err:
        raise BadImageError(f"{p}: cannot read ({err.strerror or err})") from None
    if size == 0:
        raise BadImageError(f"{p}: empty file (0 bytes)")
    try:
        with Image.open(p) as im:
            mode, dims, fmt = im.mode, im.size, im.format
            im.verify()
    except Exception as err:  # PIL raises many types for bad files
        raise BadImageError(f"{p}: not a readable image ({type(err).__name__}: {err})") from None
    if dims[0] < 1 or dims[1] < 1:
        raise BadImageError(f"{p}: image has no pixels ({dims[0]}×{dims[1]})")
    if fmt == "JPEG" and not _jpeg_complete(p, size):
        raise BadImageError(f"{p}: truncated JPEG (no end-of-image marker)")
    return mode, dims


def _jpeg_complete(path: Path, size: int) -> bool:
    """Whether a JPEG ends with its EOI marker (``FF D9``), allowing trailing padding bytes."""
    with path.open("rb") as f:
        f.seek(max(0, size - 1024))
        tail = f.read().rstrip(b"\x00\r\n\t ")
    return tail.endswith(b"\xff\xd9")


def _upright(im: Image.Image) -> Image.Image:
    """Apply the EXIF orientation tag, if any (no copy when there is none)."""
    if im.getexif().get(0x0112, 1) in (0, 1):
        return im
    return ImageOps.exif_transpose(im) or im


def to_array(im: Image.Image, gray: bool) -> np.ndarray:
    """Convert a PIL image of any mode to a uint8 array ``H×W`` (``gray``) or ``H×W×3``."""
    im = _upright(im)
    mode = im.mode
    if (mode == "P" and "transparency" in im.info) or mode == "PA":
        im, mode = im.convert("RGBA"), "RGBA"
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        ints = np.asarray(im).astype(np.int64)
        if ints.max(initial=0) > 255:
            ints = ints >> 8
        im = Image.fromarray(np.clip(ints, 0, 255).astype(np.uint8), "L")
    elif mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        if np.nanmax(arr, initial=0.0) <= 1.0:
            arr = arr * 255.0
        im = Image.fromarray(np.clip(np.nan_to_num(arr), 0, 255).round().astype(np.uint8), "L")
    elif mode in ("RGBA", "LA", "La", "RGBa"):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, im)
    target = "L" if gray else "RGB"
    if im.mode != target:
        im = im.convert(target)
    return np.array(im, dtype=np.uint8)


def decode_file(
    path: str | os.PathLike[str], gray: bool, image_size: int | None = None
) -> np.ndarray:
    """Decode ``path`` to a uint8 array (``H×W`` or ``H×W×3``), optionally resized.

    With ``image_size`` the shorter side is resized to ``image_size`` (up or down, bilinear with
    antialiasing) and the center ``image_size × image_size`` square kept. JPEGs are decoded at a
    reduced scale when they are at least twice the target (``Image.draft``), which is much faster.
    Raises :class:`BadImageError` naming the file when it cannot be decoded.
    """
    try:
        with Image.open(path) as opened:
            im: Image.Image = opened
            if image_size is not None and im.format == "JPEG":
                w, h = im.size
                short = min(w, h)
                if short >= 2 * image_size:
                    scale = image_size / short
                    opened.draft(im.mode, (max(1, int(w * scale)), max(1, int(h * scale))))
            im.load()
            im = _upright(im)
            if image_size is not None:
                im = _resize_center_crop(im, image_size)
            return to_array(im, gray)
    except BadImageError:
        raise
    except Exception as err:
        raise BadImageError(f"{path}: cannot decode ({type(err).__name__}: {err})") from None


def _resize_center_crop(im: Image.Image, size: int) -> Image.Image:
    """Resize the central square of ``im`` to ``size×size`` (bilinear, antialiased by PIL).

    Equivalent to resizing the shorter side to ``size`` and center-cropping, but resamples only
    the pixels that are kept.
    """
    w, h = im.size
    if im.mode not in ("L", "RGB", "RGBA", "LA", "CMYK", "P", "1"):
        im = Image.fromarray(to_array(im, gray=im.mode in GRAY_MODES))
    if im.mode in ("P", "1"):
        im = im.convert("RGBA" if im.mode == "P" else "L")
    side = min(w, h)
    left, top = (w - side) / 2, (h - side) / 2
    if (w, h) == (size, size):
        return im
    return im.resize((size, size), Image.Resampling.BILINEAR,
                     box=(left, top, left + side, top + side))
