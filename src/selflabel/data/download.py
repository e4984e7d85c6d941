"""Download the standard datasets from their official addresses, with checksum verification.

``download("cifar10", "~/data")`` fetches each file of the dataset (trying its mirrors in order),
verifies its MD5 (as published by the dataset authors and used by torchvision), extracts archives
(``.tar.gz``) safely, and returns the folder to pass as ``cifar10:DIR``. Files already present
with the right checksum are not fetched again. Nothing here runs unless a user asks for it; tests
pass their own ``table`` pointing at a loopback server.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RemoteFile:
    """One file to fetch: its name on disk, candidate URLs, MD5, and whether to extract it."""

    name: str
    urls: tuple[str, ...]
    md5: str
    extract: bool = False


_MNIST = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
          "http://yann.lecun.com/exdb/mnist/")
_FASHION = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/")


def _idx(bases: tuple[str, ...], md5s: Mapping[str, str]) -> tuple[RemoteFile, ...]:
    return tuple(RemoteFile(n, tuple(b + n for b in bases), m) for n, m in md5s.items())


#: dataset name → files. Checksums are the published ones (also torchvision's).
DATASETS: dict[str, tuple[RemoteFile, ...]] = {
    "mnist": _idx(_MNIST, {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    }),
    "fashion-mnist": _idx(_FASHION, {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    }),
    "cifar10": (RemoteFile("cifar-10-python.tar.gz",
                           ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
                           "c58f30108f718f92721af3b95e74349a", extract=True),),
    "cifar100": (RemoteFile("cifar-100-python.tar.gz",
                            ("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",),
                            "eb9058c3a382ffc7106e4002c42a8d85", extract=True),),
    "stl10": (RemoteFile("stl10_binary.tar.gz",
                         ("http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz",),
                         "91f7769df0f17e558f3565bffb0c7dfb", extract=True),),
    "svhn": tuple(
        RemoteFile(f"{s}_32x32.mat", (f"http://ufldl.stanford.edu/housenumbers/{s}_32x32.mat",), m)
        for s, m in (("train", "e26dedcc434d2e4c54c9b2d4a06d8373"),
                     ("test", "eb5a983be6a315427106f1b164d9cef3"),
                     ("extra", "a93ce644f1a588dc4d68dda5feec44a7"))
    ),
}


def md5sum(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """The hex MD5 of a file."""
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _fetch(url: str, dest: Path, timeout: float, progress: Callable[[int], None] | None) -> None:
    tmp = dest.with_name(dest.name + ".part")
    with urllib.request.urlopen(url, timeout=timeout) as resp, tmp.open("wb") as out:
        while block := resp.read(1 << 20):
            out.write(block)
            if progress is not None:
                progress(len(block))
    tmp.replace(dest)


def _extract(archive: Path, root: Path) -> None:
    with tarfile.open(archive) as tar:
        tar.extractall(root, filter="data")  # refuses absolute paths, .., links out of root


def download(
    name: str,
    root: str | os.PathLike[str],
    *,
    table: Mapping[str, tuple[RemoteFile, ...]] | None = None,
    only: tuple[str, ...] | None = None,
    timeout: float = 60.0,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Download dataset ``name`` into ``root`` and return ``root``.

    ``only`` restricts to some file names (e.g. SVHN without ``extra_32x32.mat``). Raises
    ``ValueError`` for an unknown name and ``OSError`` when no mirror delivers a file with the
    right checksum (bad downloads are deleted). Example::

        root = download("cifar10", "~/data")      # then load_source(f"cifar10:{root}")
    """
    table = DATASETS if table is None else table
    key = name.lower().replace("_", "-")
    if key not in table:
        raise ValueError(f"unknown dataset {name!r}; downloadable: {', '.join(sorted(table))}")
    root_path = Path(root).expanduser()
    root_path.mkdir(parents=True, exist_ok=True)
    for item in table[key]:
        if only is not None and item.name not in only:
            continue
        dest = root_path / item.name
        if dest.is_file() and md5sum(dest) == item.md5:
            log.info("%s already present and verified", dest)
        else:
            errors = []
            for url in item.urls:
                try:
                    log.info("downloading %s", url)
                    _fetch(url, dest, timeout, progress)
                except OSError as err:
                    errors.append(f"{url}: {err}")
                    continue
                got = md5sum(dest)
                if got == item.md5:
                    break
                dest.unlink()
                errors.append(f"{url}: checksum mismatch (MD5 {got}, expected {item.md5})")
            else:
                raise OSError(f"could not download {item.name}:\n  " + "\n  ".join(errors))
        if item.extract:
            with tempfile.TemporaryDirectory(dir=root_path) as tmp:
                _extract(dest, Path(tmp))
                for entry in Path(tmp).iterdir():
                    target = root_path / entry.name
                    if target.exists():
                        shutil.rmtree(target) if target.is_dir() else target.unlink()
                    entry.replace(target)
    return root_path
