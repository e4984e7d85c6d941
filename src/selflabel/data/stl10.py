"""STL-10 binaries (``stl10_binary/``): 96×96 colour, 10 classes, and 100,000 unlabelled images.

Splits: ``train`` (5,000 labelled), ``test`` (8,000), ``unlabeled`` (100,000, label −1) and
``train+unlabeled`` (105,000, the usual self-supervised training set). Images are stored
column-major per channel in the files; they are transposed to the usual orientation here. The
100k split is memory-mapped and copied once (2.8 GB of RAM as uint8).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from selflabel.data.source import ArraySource

SPLITS = ("train", "test", "unlabeled", "train+unlabeled")


def _base(root: Path) -> Path:
    for cand in (root, root / "stl10_binary"):
        if any((cand / f).is_file() for f in ("train_X.bin", "test_X.bin", "unlabeled_X.bin")):
            return cand
    raise ValueError(
        f"no STL-10 binaries (train_X.bin, ...) in {root} or {root / 'stl10_binary'}; download "
        f"them with `selflabel download stl10 {root}`"
    )


def _read_x(path: Path) -> np.ndarray:
    if not path.is_file():
        raise ValueError(f"stl10: {path} is missing")
    size = path.stat().st_size
    if size % (3 * 96 * 96):
        raise ValueError(f"{path}: {size} bytes is not a whole number of 96×96×3 images")
    raw = np.memmap(path, dtype=np.uint8, mode="r").reshape(-1, 3, 96, 96)
    return np.ascontiguousarray(raw.transpose(0, 1, 3, 2))


def _read_y(path: Path, n: int) -> np.ndarray:
    if not path.is_file():
        raise ValueError(f"stl10: {path} is missing")
    y = np.fromfile(path, dtype=np.uint8).astype(np.int64) - 1
    if y.shape[0] != n:
        raise ValueError(f"{path}: {y.shape[0]} labels for {n} images in the matching _X.bin")
    return y


def load_stl10(root: str | os.PathLike[str], split: str = "train") -> ArraySource:
    """Load an STL-10 split. Example: ``load_stl10("~/data", "train+unlabeled")``."""
    if split not in SPLITS:
        raise ValueError(f"stl10: split must be one of {', '.join(SPLITS)}; got {split!r}")
    base = _base(Path(root).expanduser())
    xs, ys = [], []
    for part in split.split("+"):
        x = _read_x(base / f"{part}_X.bin")
        xs.append(x)
        ys.append(np.full(x.shape[0], -1, dtype=np.int64) if part == "unlabeled"
                  else _read_y(base / f"{part}_y.bin", x.shape[0]))
    classes = None
    names = base / "class_names.txt"
    if names.is_file():
        classes = [line.strip() for line in names.read_text().splitlines() if line.strip()]
    x = xs[0] if len(xs) == 1 else np.concatenate(xs)
    y = ys[0] if len(ys) == 1 else np.concatenate(ys)
    return ArraySource(torch.from_numpy(x), torch.from_numpy(y), name=f"stl10:{split}",
                       classes=classes, num_classes=10)
