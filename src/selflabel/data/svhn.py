"""SVHN cropped digits (``{train,test,extra}_32x32.mat``): 32×32 colour, 10 classes.

The files store ``X`` as ``32×32×3×N`` and ``y`` with digit 0 as label 10; here label ``10`` → 0.
Splits: ``train`` (73,257), ``test`` (26,032), ``extra`` (531,131), ``train+extra``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from selflabel.data.source import ArraySource


def _load_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import scipy.io

    if not path.is_file():
        raise ValueError(
            f"svhn: {path} is missing; download it with `selflabel download svhn {path.parent}`"
        )
    mat = scipy.io.loadmat(path)
    if "X" not in mat or "y" not in mat:
        raise ValueError(f"{path}: not an SVHN file (needs variables X and y)")
    x = np.asarray(mat["X"])
    y = np.asarray(mat["y"], dtype=np.int64).reshape(-1)
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        raise ValueError(f"{path}: X must be 32×32×3×N, got {x.shape}")
    if x.shape[3] != y.shape[0]:
        raise ValueError(f"{path}: {y.shape[0]} labels for {x.shape[3]} images")
    y = np.where(y == 10, 0, y)
    return np.ascontiguousarray(x.astype(np.uint8).transpose(3, 2, 0, 1)), y


def load_svhn(root: str | os.PathLike[str], split: str = "train") -> ArraySource:
    """Load an SVHN split. Example: ``load_svhn("~/data/svhn", "test")``."""
    parts = split.split("+")
    if not parts or any(p not in ("train", "test", "extra") for p in parts):
        raise ValueError(f"svhn: split must be train, test, extra or train+extra; got {split!r}")
    root = Path(root).expanduser()
    loaded = [_load_mat(root / f"{p}_32x32.mat") for p in parts]
    x = np.concatenate([a for a, _ in loaded])
    y = np.concatenate([b for _, b in loaded])
    return ArraySource(torch.from_numpy(x), torch.from_numpy(y), name=f"svhn:{split}",
                       classes=[str(d) for d in range(10)])
