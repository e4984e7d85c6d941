"""Loading features and labels (.npy, .npz, .pt) and reading big feature arrays chunk by chunk.

``.npy`` files are memory-mapped (nothing is read until used); :func:`iter_chunks` then reads a
memory-mapped array block by block and hands each block's pages back to the OS once used, so that
streaming over a 10 GB file neither copies it nor keeps it resident in the process.

Example::

    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "f.npy")
    >>> np.save(path, np.ones((5, 3), dtype=np.float32))
    >>> x = load_array(path)
    >>> type(x).__name__, x.shape
    ('memmap', (5, 3))
    >>> [c.shape for _, c in iter_chunks(x, rows=2)]
    [(2, 3), (2, 3), (1, 3)]
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["SUFFIXES", "chunk_rows", "iter_chunks", "load_array"]

#: File types :func:`load_array` reads.
SUFFIXES: tuple[str, ...] = (".npy", ".npz", ".pt", ".pth")

#: Preferred key names inside .npz/.pt containers, by role.
_KEYS: dict[str, tuple[str, ...]] = {
    "features": ("features", "feats", "x", "X", "embeddings"),
    "labels": ("labels", "targets", "y", "Y"),
}


def _pick(container: dict[str, Any], path: Path, key: str | None, role: str | None) -> Any:
    if key is not None:
        if key not in container:
            raise ValueError(f"{path} has no array {key!r}; it holds {sorted(container)}")
        return container[key]
    if len(container) == 1:
        return next(iter(container.values()))
    for name in _KEYS.get(role or "", ()):
        if name in container:
            return container[name]
    raise ValueError(
        f"{path} holds several arrays {sorted(container)}; name the one to use as "
        f"'{path}:KEY'"
    )


def _split_key(path: str | os.PathLike[str]) -> tuple[Path, str | None]:
    text = os.fspath(path)
    head, sep, tail = text.rpartition(":")
    if sep and Path(head).suffix.lower() in (".npz", ".pt", ".pth") and "/" not in tail:
        return Path(head), tail
    return Path(text), None


def load_array(
    path: str | os.PathLike[str], *, role: str | None = None, mmap_mode: str | None = "r"
) -> NDArray[Any]:
    """Load one array from ``.npy`` (memory-mapped), ``.npz`` or ``.pt``/``.pth``.

    For containers holding several arrays, name one as ``"file.npz:KEY"``; otherwise an array
    named after ``role`` (``"features"``/``"labels"``: e.g. ``features``, ``labels``,
    ``targets``) or the only array is used. ``.npz`` and ``.pt`` are read into memory (they cannot
    be memory-mapped); use ``.npy`` for features bigger than RAM. Tensors become numpy arrays.

    Raises:
        ValueError: missing file, unknown suffix or ambiguous container.
    """
    file, key = _split_key(path)
    if not file.is_file():
        raise ValueError(f"no such file: {file}")
    suffix = file.suffix.lower()
    if suffix == ".npy":
        if key is not None:
            raise ValueError(f"{file} is a single .npy array; drop ':{key}'")
        arr: NDArray[Any] = np.load(file, mmap_mode=mmap_mode, allow_pickle=False)  # type: ignore[arg-type]
        return arr
    if suffix == ".npz":
        with np.load(file, allow_pickle=False) as z:
            return np.asarray(_pick({k: z[k] for k in z.files}, file, key, role))
    if suffix in (".pt", ".pth"):
        import torch  # only for .pt files: the cluster layer does not need torch otherwise

        obj = torch.load(file, map_location="cpu", weights_only=True)
        if isinstance(obj, dict):
            obj = _pick(obj, file, key, role)
        if isinstance(obj, torch.Tensor):
            return obj.detach().cpu().numpy()
        return np.asarray(obj)
    raise ValueError(f"{file}: unsupported file type {suffix!r}; use one of {SUFFIXES}")


def chunk_rows(n_cols: int, itemsize: int = 4, target_bytes: int = 16 << 20) -> int:
    """Rows per chunk so that one chunk holds about ``target_bytes`` (16 MiB by default)."""
    return max(1, int(target_bytes // max(1, n_cols * itemsize)))


def _release(x: NDArray[Any], start: int, stop: int) -> None:
    """Drop the pages of rows ``start:stop`` of a memory-mapped ``x`` from this process.

    The data stays in the OS page cache (re-reading is cheap) but stops counting as this process's
    memory. A no-op for ordinary arrays and where ``madvise`` is unavailable.
    """
    mm = getattr(x, "_mmap", None)
    advice = getattr(mmap, "MADV_DONTNEED", None)
    if not isinstance(mm, mmap.mmap) or advice is None or not x.flags.c_contiguous:
        return
    try:
        base = np.frombuffer(mm, dtype=np.uint8).ctypes.data
        row = x.strides[0] if x.ndim > 0 else x.itemsize
        lo = x.ctypes.data - base + start * row
        hi = x.ctypes.data - base + stop * row
        page = mmap.PAGESIZE
        lo_aligned = -(-lo // page) * page  # only whole pages inside the range
        hi_aligned = (hi // page) * page
        if hi_aligned > lo_aligned:
            mm.madvise(advice, lo_aligned, hi_aligned - lo_aligned)
    except (ValueError, OSError, BufferError, TypeError):
        return


def iter_chunks(
    x: NDArray[Any], rows: int | None = None, dtype: Any = np.float32
) -> Iterator[tuple[int, NDArray[Any]]]:
    """Yield ``(start, chunk)`` over the rows of ``x`` as ``dtype`` arrays.

    Memory-mapped inputs are read block by block and each block's pages are released after use,
    so the process never holds the whole file. Chunks are fresh arrays the caller may modify.
    """
    n = x.shape[0]
    step = rows if rows is not None else chunk_rows(int(np.prod(x.shape[1:], dtype=np.int64)))
    for start in range(0, n, step):
        stop = min(n, start + step)
        chunk = np.array(x[start:stop], dtype=dtype, copy=True)
        yield start, chunk
        _release(x, start, stop)
