"""``load_source(spec)``: one entry point for every kind of image source.

Spec strings (also accepted as :class:`pathlib.Path`):

============================  ================================================================
``demo``                      bundled Fashion-MNIST test split: 10,000 28×28 gray, 10 classes
``digits``                    scikit-learn's digits: 1,797 8×8 gray, 10 classes (native 8×8)
``fashion-mnist[:DIR]``       Fashion-MNIST IDX files; without DIR searched in
                              ``$SELFLABEL_DATA/fashion-mnist`` and Debian's
                              ``/usr/share/datasets/fashion-mnist``
``mnist:DIR``                 MNIST IDX files (``split=train|test``)
``cifar10:DIR``               CIFAR-10 python batches (``split=train|test``)
``cifar100:DIR``              CIFAR-100 (``split=train|test``, ``label_type=fine|coarse``)
``stl10:DIR``                 STL-10 binaries (``split=train|test|unlabeled|train+unlabeled``)
``svhn:DIR``                  SVHN ``.mat`` files (``split=train|test|extra|train+extra``)
``PATH/`` (a folder)          images; class sub-folders → labels, otherwise unlabelled
``PATH.csv|.txt|.lst|.tsv``   a list of image paths with optional labels
``PATH.npz`` / ``PATH.npy``   uint8 arrays ``N×H×W[×C]`` (+ ``labels``)
============================  ================================================================

Options: ``strict`` (bad inputs raise instead of being skipped), ``image_size`` (resize the
shorter side and center-crop, at decode time for files, once up front for arrays), ``split``, and
per-source extras (``label_type``, ``labels``, ``channels``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from selflabel.data.arrays import load_digits_source, load_npy, load_npz
from selflabel.data.cifar import load_cifar10, load_cifar100
from selflabel.data.files import FileSource
from selflabel.data.folder import LIST_EXTENSIONS, load_folder, load_list
from selflabel.data.idx import (
    FASHION_CLASSES,
    MNIST_CLASSES,
    find_idx_file,
    load_idx_dir,
    load_idx_files,
)
from selflabel.data.source import ArraySource, ImageSource, resize_uint8
from selflabel.data.stl10 import load_stl10
from selflabel.data.svhn import load_svhn

log = logging.getLogger(__name__)

#: where Debian's dataset-fashion-mnist package installs its files.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


@dataclass(frozen=True)
class SourceInfo:
    """A named source: its spec syntax and a one-line description."""

    name: str
    syntax: str
    description: str
    needs_dir: bool


SOURCES: tuple[SourceInfo, ...] = (
    SourceInfo("demo", "demo", "bundled Fashion-MNIST test split (10k 28×28 gray, 10 classes)",
               False),
    SourceInfo("digits", "digits", "scikit-learn digits (1,797 8×8 gray, 10 classes)", False),
    SourceInfo("fashion-mnist", "fashion-mnist[:DIR]",
               "Fashion-MNIST IDX (60k/10k 28×28 gray); found automatically on Debian", False),
    SourceInfo("mnist", "mnist:DIR", "MNIST IDX (60k/10k 28×28 gray)", True),
    SourceInfo("cifar10", "cifar10:DIR", "CIFAR-10 python batches (50k/10k 32×32)", True),
    SourceInfo("cifar100", "cifar100:DIR", "CIFAR-100 python batches (fine/coarse labels)", True),
    SourceInfo("stl10", "stl10:DIR", "STL-10 binaries (5k/8k 96×96 + 100k unlabeled)", True),
    SourceInfo("svhn", "svhn:DIR", "SVHN .mat files (73k/26k/531k 32×32)", True),
    SourceInfo("folder", "PATH/", "image folder: class sub-folders → labels, else unlabelled",
               True),
    SourceInfo("list", "PATH.csv|.txt", "list of image paths with optional labels", True),
    SourceInfo("arrays", "PATH.npz|.npy", "uint8 image arrays N×H×W[×C] (+ labels)", True),
)
SOURCE_NAMES: tuple[str, ...] = tuple(s.name for s in SOURCES if s.name not in
                                      ("folder", "list", "arrays"))


def data_roots() -> list[Path]:
    """Folders searched for standard datasets: ``$SELFLABEL_DATA`` (``os.pathsep``-separated),
    ``~/.cache/selflabel/datasets`` and ``/usr/share/datasets``."""
    roots = [Path(p).expanduser() for p in os.environ.get("SELFLABEL_DATA", "").split(os.pathsep)
             if p]
    roots += [Path("~/.cache/selflabel/datasets").expanduser(), Path("/usr/share/datasets")]
    return roots


def find_fashion_mnist() -> Path | None:
    """The first folder holding Fashion-MNIST IDX files among :func:`data_roots`, or ``None``."""
    for root in data_roots():
        for cand in (root / "fashion-mnist", root / "FashionMNIST", root / "fashion_mnist"):
            if cand.is_dir() and find_idx_file(cand, "train-images-idx3-ubyte"):
                return cand
    return None


def _demo(split: str) -> ArraySource:
    del split  # the demo is always the 10k test split
    demo = resources.files("selflabel.data") / "demo"
    with (
        resources.as_file(demo / "t10k-images-idx3-ubyte.gz") as images,
        resources.as_file(demo / "t10k-labels-idx1-ubyte.gz") as labels,
    ):
        return load_idx_files(Path(images), Path(labels), name="demo", classes=FASHION_CLASSES)


def _need_dir(name: str, arg: str | None) -> str:
    if not arg:
        raise ValueError(f"{name} needs a folder: write '{name}:DIR', e.g. '{name}:~/data/{name}'")
    return os.path.expanduser(arg)


def _fashion(arg: str | None, split: str) -> ArraySource:
    root = Path(os.path.expanduser(arg)) if arg else find_fashion_mnist()
    if root is None:
        raise ValueError(
            "fashion-mnist: no IDX files found in "
            + ", ".join(str(r) for r in data_roots())
            + "; install Debian's dataset-fashion-mnist, run `selflabel download fashion-mnist DIR`"
            " and use 'fashion-mnist:DIR', or use the bundled 'demo'"
        )
    return load_idx_dir(root, split, name="fashion-mnist", classes=FASHION_CLASSES)


_NAMED: dict[str, Callable[[str | None, str, dict[str, Any]], ImageSource]] = {
    "demo": lambda arg, split, o: _demo(split),
    "digits": lambda arg, split, o: load_digits_source(),
    "fashion-mnist": lambda arg, split, o: _fashion(arg, split),
    "mnist": lambda arg, split, o: load_idx_dir(_need_dir("mnist", arg), split, name="mnist",
                                                classes=MNIST_CLASSES),
    "cifar10": lambda arg, split, o: load_cifar10(_need_dir("cifar10", arg), split),
    "cifar100": lambda arg, split, o: load_cifar100(_need_dir("cifar100", arg), split,
                                                    o.pop("label_type", "fine")),
    "stl10": lambda arg, split, o: load_stl10(_need_dir("stl10", arg), split),
    "svhn": lambda arg, split, o: load_svhn(_need_dir("svhn", arg), split),
}
_ALIASES = {"fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist",
            "cifar-10": "cifar10", "cifar-100": "cifar100", "stl-10": "stl10"}


def parse_spec(spec: str | os.PathLike[str]) -> tuple[str | None, str | None]:
    """Split a spec into ``(name, argument)``; ``(None, path)`` when it is a path."""
    if isinstance(spec, os.PathLike):
        return None, os.fspath(spec)
    head, sep, tail = spec.partition(":")
    key = _ALIASES.get(head.lower(), head.lower())
    if key in _NAMED and (sep or not Path(spec).exists()):
        return key, tail or None
    return None, spec


def load_source(
    spec: str | os.PathLike[str],
    *,
    strict: bool = False,
    image_size: int | None = None,
    split: str = "train",
    **options: Any,
) -> ImageSource:
    """Load an image source from a spec string or path (see the module docstring).

    Returns an :class:`~selflabel.data.source.ImageSource` of ``(index, uint8 C×H×W, label)``.
    Examples::

        ds = load_source("demo")                                # 10,000 × 1×28×28, 10 classes
        ds = load_source("cifar10:~/data", split="test")
        ds = load_source("~/photos", image_size=128, strict=True)
        train, val = load_source("demo").split(0.1, seed=0)
    """
    name, arg = parse_spec(spec)
    if name is not None:
        ds = _NAMED[name](arg, split, options)
        if options:
            raise TypeError(f"unknown option(s) for {name}: {', '.join(sorted(options))}")
    else:
        ds = _load_path(Path(os.path.expanduser(str(arg))), strict, image_size, split, options)
    if isinstance(ds, ArraySource) and image_size is not None:
        ds = _resized(ds, image_size)
    log.info("loaded %s", ds.describe())
    return ds


def _load_path(path: Path, strict: bool, image_size: int | None, split: str,
               options: dict[str, Any]) -> ImageSource:
    if not path.exists():
        known = ", ".join(s.syntax for s in SOURCES)
        raise ValueError(f"{path} does not exist and is not a known source name ({known})")
    if split != "train":
        log.info("split=%r ignored for %s (a path has no splits; use ds.split())", split, path)
    suffix = path.suffix.lower()
    if path.is_dir():
        return load_folder(path, strict=strict, image_size=image_size, **options)
    if suffix == ".npz":
        return load_npz(path, **options)
    if suffix == ".npy":
        return load_npy(path, **options)
    if suffix in LIST_EXTENSIONS:
        return load_list(path, strict=strict, image_size=image_size, **options)
    return FileSource([path], strict=strict, image_size=image_size, name=str(path), **options)


def _resized(ds: ArraySource, size: int) -> ArraySource:
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"image_size must be a positive int, got {size!r}")
    if ds.image_shape[1:] == (size, size):
        return ds
    out = ArraySource(resize_uint8(ds.images, size), ds.labels, name=ds.name, classes=ds.classes,
                      num_classes=ds.num_classes, skipped=ds.skipped)
    return out
