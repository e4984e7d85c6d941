"""A source of image files, decoded on access: :class:`FileSource`.

Bad-input policy (see docs/data.md):

- every file is checked **when the source is built** (:func:`~selflabel.data.decode.check_image`:
  header, PNG checksums, JPEG end marker, in a thread pool) — unreadable, empty, truncated and
  non-image files are *skipped* and listed in ``.skipped`` (and logged: count and first paths);
  ``strict=True`` raises instead;
- mixed image sizes without ``image_size`` are an error before training, naming two sizes and
  suggesting ``image_size``; with ``image_size`` each image is resized (shorter side, up or down)
  and center-cropped at decode time;
- if a file that passed the check still fails to decode in a worker (it changed on disk, or a
  format without a cheap check is corrupt), the image of the next index that decodes is returned in
  its place **with that index**, so index-keyed labels stay consistent, and a warning names the
  file; ``strict=True`` raises :class:`~selflabel.data.decode.BadImageError` instead. A run never
  crashes mid-epoch on a bad file in the default mode.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import Tensor

from selflabel.data.decode import GRAY_MODES, BadImageError, check_image, decode_file
from selflabel.data.source import (
    GRAY_MEAN,
    GRAY_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    BatchTriple,
    ImageSource,
    _as_index_tensor,
)

log = logging.getLogger(__name__)

#: how many later indices a failed decode may try before giving up.
MAX_FALLBACK_TRIES = 16


def report_skipped(name: str, skipped: list[tuple[str, str]], strict: bool, shown: int = 5) -> None:
    """Log (or with ``strict`` raise for) the skipped inputs of a source: count and first paths."""
    if not skipped:
        return
    lines = "\n".join(f"  {p}: {why}" for p, why in skipped[:shown])
    more = f"\n  ... and {len(skipped) - shown} more" if len(skipped) > shown else ""
    if strict:
        raise ValueError(
            f"source {name!r}: {len(skipped)} bad input(s) (strict mode):\n{lines}{more}\n"
            "Fix or remove these files, or load without strict=True to skip them."
        )
    log.warning("source %r: skipped %d bad input(s):\n%s%s", name, len(skipped), lines, more)


class FileSource(ImageSource):
    """Image files with optional labels; decoded (and resized) on access.

    Example::

        ds = FileSource(["a.png", "b.jpg"], [0, 1], image_size=64)
        idx, images, labels = ds.get_batch([0, 1])   # images: (2, 3, 64, 64) uint8
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        labels: Sequence[int] | None = None,
        *,
        name: str = "files",
        classes: list[str] | None = None,
        image_size: int | None = None,
        strict: bool = False,
        skipped: list[tuple[str, str]] | None = None,
        channels: int | None = None,
        check_threads: int = 8,
    ) -> None:
        if image_size is not None and (not isinstance(image_size, int) or image_size < 1):
            raise ValueError(f"image_size must be a positive int, got {image_size!r}")
        if channels not in (None, 1, 3):
            raise ValueError(f"channels must be 1, 3 or None (auto), got {channels!r}")
        all_paths = [os.fspath(p) for p in paths]
        all_labels = list(labels) if labels is not None else [-1] * len(all_paths)
        if len(all_labels) != len(all_paths):
            raise ValueError(f"{len(all_labels)} labels for {len(all_paths)} files")
        self.skipped = list(skipped or [])
        with ThreadPoolExecutor(max_workers=max(1, check_threads)) as pool:
            results = list(pool.map(_safe_check, all_paths))
        keep_paths, keep_labels, modes, sizes = [], [], [], []
        for p, y, res in zip(all_paths, all_labels, results, strict=True):
            if isinstance(res, str):
                self.skipped.append((p, res))
                continue
            keep_paths.append(p)
            keep_labels.append(int(y))
            modes.append(res[0])
            sizes.append(res[1])
        report_skipped(name, self.skipped, strict)
        if not keep_paths:
            raise ValueError(
                f"source {name!r} is empty: no readable images"
                + (f" ({len(self.skipped)} skipped)" if self.skipped else "")
            )
        if image_size is None and len(set(sizes)) > 1:
            distinct = sorted(set(sizes), key=sizes.index)
            a, b = distinct[0], distinct[1]
            pa, pb = keep_paths[sizes.index(a)], keep_paths[sizes.index(b)]
            raise ValueError(
                f"source {name!r} has images of {len(distinct)} different sizes, e.g. "
                f"{a[0]}×{a[1]} ({pa}) and {b[0]}×{b[1]} ({pb}); batches need one size: pass "
                "image_size=N (e.g. 256, or --image-size) to resize the shorter side to N and "
                "center-crop N×N"
            )
        gray = all(m in GRAY_MODES for m in modes) if channels is None else channels == 1
        self.name = name
        self.strict = strict
        self.image_size = image_size
        self.gray = gray
        self.channels = 1 if gray else 3
        self.paths = keep_paths
        self.labels = torch.tensor(keep_labels, dtype=torch.long)
        self.classes = classes
        known = self.labels[self.labels >= 0]
        n_known = int(known.max()) + 1 if known.numel() else 0
        self.num_classes = len(classes) if classes else n_known
        w, h = (image_size, image_size) if image_size is not None else sizes[0]
        self.image_shape = (self.channels, h, w)
        self.mean, self.std = (GRAY_MEAN, GRAY_STD) if gray else (IMAGENET_MEAN, IMAGENET_STD)
        self.in_memory = False

    def _decode(self, i: int) -> np.ndarray:
        arr = decode_file(self.paths[i], self.gray, self.image_size)  # type: ignore[index]
        _, h, w = self.image_shape
        if arr.shape[:2] != (h, w):
            raise BadImageError(
                f"{self.paths[i]}: size changed on disk to {arr.shape[1]}×{arr.shape[0]}"  # type: ignore[index]
            )
        return arr

    def _decode_or_fallback(self, i: int) -> tuple[int, np.ndarray]:
        n = len(self)
        for step in range(MAX_FALLBACK_TRIES):
            j = (i + step) % n
            try:
                return j, self._decode(j)
            except BadImageError as err:
                if self.strict:
                    raise
                log.warning("%s — using image %d in place of %d", err, (j + 1) % n, i)
        raise BadImageError(
            f"{MAX_FALLBACK_TRIES} consecutive images from {self.paths[i]} on failed to decode; "  # type: ignore[index]
            "check the files on disk"
        )

    def get_batch(self, indices: Sequence[int] | Tensor) -> BatchTriple:
        idx = _as_index_tensor(indices, len(self))
        c, h, w = self.image_shape
        out = torch.empty((idx.numel(), c, h, w), dtype=torch.uint8)
        used = idx.clone()
        for k, i in enumerate(idx.tolist()):
            j, arr = self._decode_or_fallback(i)
            used[k] = j
            t = torch.from_numpy(arr)
            out[k] = t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1)
        return used, out, self.labels.index_select(0, used)


def _safe_check(path: str) -> str | tuple[str, tuple[int, int]]:
    try:
        return check_image(path)
    except BadImageError as err:
        return str(err).removeprefix(f"{path}: ")
