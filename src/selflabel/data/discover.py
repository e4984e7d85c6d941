"""Find the standard datasets already on this machine (for ``selflabel datasets``)."""

from __future__ import annotations

from pathlib import Path

from selflabel.data.idx import find_idx_file
from selflabel.data.registry import data_roots


def _probe(folder: Path) -> list[tuple[str, str]]:
    hits: list[tuple[str, str]] = []
    for cand in (folder, *(p for p in sorted(folder.iterdir()) if p.is_dir())):
        name = cand.name.lower()
        if find_idx_file(cand, "train-images-idx3-ubyte", depth=0) or find_idx_file(
                cand, "t10k-images-idx3-ubyte", depth=0):
            kind = "fashion-mnist" if "fashion" in name else "mnist"
            hits.append((f"{kind}:{cand}", "IDX files"))
        if (cand / "cifar-10-batches-py" / "batches.meta").is_file() or (
                cand / "batches.meta").is_file():
            hits.append((f"cifar10:{cand}", "CIFAR-10 python batches"))
        if (cand / "cifar-100-python" / "meta").is_file() or ((cand / "meta").is_file() and (
                cand / "train").is_file()):
            hits.append((f"cifar100:{cand}", "CIFAR-100 python batches"))
        if (cand / "stl10_binary").is_dir() or (cand / "train_X.bin").is_file():
            hits.append((f"stl10:{cand}", "STL-10 binaries"))
        svhn = [s for s in ("train", "test", "extra") if (cand / f"{s}_32x32.mat").is_file()]
        if svhn:
            hits.append((f"svhn:{cand}", "SVHN " + ", ".join(svhn)))
    return hits


def find_datasets(extra_roots: list[str] | None = None) -> list[tuple[str, str]]:
    """``(spec, description)`` of every standard dataset found in the data roots (one level deep).

    Example: ``find_datasets()`` → ``[("fashion-mnist:/usr/share/datasets/fashion-mnist", ...)]``.
    """
    seen: set[str] = set()
    out = []
    for root in [Path(r).expanduser() for r in extra_roots or []] + data_roots():
        if not root.is_dir():
            continue
        try:
            hits = _probe(root)
        except OSError:
            continue
        for spec, note in hits:
            if spec not in seen:
                seen.add(spec)
                out.append((spec, note))
    return out
