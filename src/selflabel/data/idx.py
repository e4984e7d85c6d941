"""MNIST-style IDX files (MNIST, Fashion-MNIST, KMNIST, EMNIST), plain or gzipped.

A folder holds ``{train,t10k}-images-idx3-ubyte[.gz]`` and ``{train,t10k}-labels-idx1-ubyte[.gz]``
(also found one or two levels down, e.g. torchvision's ``FashionMNIST/raw/``). ``split`` is
``train`` (60,000 images) or ``test`` (``t10k``, 10,000).
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch

from selflabel.data.source import ArraySource

_DTYPES: dict[int, str] = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4",
                           0x0E: ">f8"}
_PREFIX = {"train": "train", "test": "t10k"}

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot"]
MNIST_CLASSES = [str(d) for d in range(10)]


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one IDX file (``.gz`` or plain) into a numpy array of its declared type and shape."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    ndim = data[3]
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_DTYPES[data[2]])
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(data) - offset != expected:
        raise ValueError(
            f"{path}: IDX header promises {dims} ({expected} bytes) but the file holds "
            f"{len(data) - offset} bytes (truncated or corrupt download?)"
        )
    return np.frombuffer(data, dtype=dtype, offset=offset).reshape(dims)


def find_idx_file(root: Path, stem: str, depth: int = 2) -> Path | None:
    """Find ``stem`` or ``stem.gz`` in ``root`` or up to ``depth`` levels below it."""
    patterns = [stem, f"{stem}.gz", f"*/{stem}", f"*/{stem}.gz", f"*/*/{stem}", f"*/*/{stem}.gz"]
    for pattern in patterns[: 2 * (depth + 1)]:
        hits = sorted(root.glob(pattern))
        if hits:
            return hits[0]
    return None


def load_idx_dir(
    root: str | os.PathLike[str],
    split: str = "train",
    *,
    name: str = "mnist",
    classes: list[str] | None = None,
) -> ArraySource:
    """Load the ``split`` of an IDX folder. Example: ``load_idx_dir("/data/mnist", "test")``."""
    root = Path(root)
    if split not in _PREFIX:
        raise ValueError(f"{name}: split must be 'train' or 'test', got {split!r}")
    prefix = _PREFIX[split]
    img_path = find_idx_file(root, f"{prefix}-images-idx3-ubyte")
    lab_path = find_idx_file(root, f"{prefix}-labels-idx1-ubyte")
    if img_path is None:
        raise ValueError(
            f"{name}: no {prefix}-images-idx3-ubyte[.gz] in {root}; download it with "
            f"`selflabel download {name} {root}`"
        )
    return load_idx_files(img_path, lab_path, name=f"{name}:{split}", classes=classes)


def load_idx_files(
    img_path: Path, lab_path: Path | None, *, name: str, classes: list[str] | None = None
) -> ArraySource:
    """Load one images IDX file and its (optional) labels IDX file."""
    images = read_idx(img_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"{img_path}: expected uint8 images N×H×W, got {images.dtype} {images.shape}"
        )
    labels = None
    if lab_path is not None:
        lab = read_idx(lab_path).astype(np.int64).reshape(-1)
        if lab.shape[0] != images.shape[0]:
            raise ValueError(
                f"{lab_path} has {lab.shape[0]} labels but {img_path} has {images.shape[0]} "
                "images; the files do not belong together"
            )
        labels = torch.from_numpy(lab)
    tensor = torch.from_numpy(images.copy()).unsqueeze(1)
    return ArraySource(tensor, labels, name=name, classes=classes)
