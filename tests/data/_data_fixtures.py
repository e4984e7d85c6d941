"""Tiny on-disk fixtures for the data tests: image folders, IDX, CIFAR, STL-10 and SVHN files."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image


def rgb(h: int = 12, w: int = 10, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def write_image(path: Path, arr: np.ndarray, mode: str | None = None, **save: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(arr)
    if mode is not None:
        im = im.convert(mode)
    im.save(path, **save)
    return path


def class_folder(root: Path, per_class: int = 3, classes: tuple[str, ...] = ("cat", "dog"),
                 size: tuple[int, int] = (12, 10)) -> Path:
    for c, name in enumerate(classes):
        for i in range(per_class):
            write_image(root / name / f"{i}.png", rgb(*size, seed=10 * c + i))
    return root


def write_idx(path: Path, arr: np.ndarray, gz: bool = True) -> Path:
    codes = {np.dtype(np.uint8): 0x08}
    header = bytes([0, 0, codes[arr.dtype], arr.ndim]) + b"".join(
        struct.pack(">I", d) for d in arr.shape)
    data = header + arr.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


def idx_dir(root: Path, n_train: int = 6, n_test: int = 4, gz: bool = True) -> Path:
    rng = np.random.default_rng(0)
    sfx = ".gz" if gz else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(root / f"{prefix}-images-idx3-ubyte{sfx}",
                  rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), gz)
        write_idx(root / f"{prefix}-labels-idx1-ubyte{sfx}",
                  (np.arange(n) % 10).astype(np.uint8), gz)
    return root


def cifar10_dir(root: Path, per_batch: int = 2) -> Path:
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for k, name in enumerate(names):
        batch = {b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 b"labels": [(k + j) % 10 for j in range(per_batch)]}
        (base / name).write_bytes(pickle.dumps(batch))
    meta = {b"label_names": [f"c{i}".encode() for i in range(10)]}
    (base / "batches.meta").write_bytes(pickle.dumps(meta))
    return root


def cifar100_dir(root: Path, n: int = 5) -> Path:
    base = root / "cifar-100-python"
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 b"fine_labels": list(range(90, 90 + n)), b"coarse_labels": [19] * n}
        (base / split).write_bytes(pickle.dumps(batch))
    meta = {b"fine_label_names": [f"f{i}".encode() for i in range(100)],
            b"coarse_label_names": [f"g{i}".encode() for i in range(20)]}
    (base / "meta").write_bytes(pickle.dumps(meta))
    return root


def stl10_dir(root: Path, n_train: int = 3, n_test: int = 2, n_unl: int = 4) -> Path:
    base = root / "stl10_binary"
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test), ("unlabeled", n_unl)):
        x = rng.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8)
        # the files store each channel column-major
        x.transpose(0, 1, 3, 2).tofile(base / f"{split}_X.bin")
        if split != "unlabeled":
            (np.arange(n) % 10 + 1).astype(np.uint8).tofile(base / f"{split}_y.bin")
        np.save(root / f"{split}_expected.npy", x)
    (base / "class_names.txt").write_text("\n".join(f"k{i}" for i in range(10)))
    return root


def svhn_dir(root: Path, n: int = 5) -> Path:
    import scipy.io

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = np.array([[10], [1], [2], [3], [10]][:n], dtype=np.uint8)
        scipy.io.savemat(root / f"{split}_32x32.mat", {"X": x, "y": y})
    return root
