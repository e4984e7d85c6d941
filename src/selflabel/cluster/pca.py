"""Exact PCA streamed over chunks: one pass for the covariance, one pass to project.

The covariance of the (optionally L2-normalised) rows is accumulated chunk by chunk — float32
products from BLAS, summed in float64 — and its top eigenvectors come from LAPACK
(:func:`scipy.linalg.eigh`). This is the exact PCA of all rows (no subsampling, no randomised
approximation), it never needs the data in memory at once, and it is deterministic, so it does not
depend on the seed. Projection writes straight into one ``(n, dim)`` float32 array.

Example::

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(500, 20)).astype(np.float32)
    >>> pca = StreamingPCA(dim=5).fit(x)
    >>> pca.transform(x).shape
    (500, 5)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.linalg import eigh

from selflabel.cluster.io import iter_chunks

__all__ = ["StreamingPCA", "center_rows", "l2_normalize_rows", "prepare_features", "unit_mean"]

Progress = Callable[[int], None]


def l2_normalize_rows(x: NDArray[np.floating[Any]], eps: float = 1e-12) -> NDArray[Any]:
    """Divide each row by its L2 norm in place (all-zero rows stay zero) and return ``x``."""
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
    x /= np.maximum(norms, eps).astype(x.dtype)[:, None]
    return x


def _checked(chunk: NDArray[np.float32], start: int) -> NDArray[np.float32]:
    if not np.all(np.isfinite(chunk)):
        bad = start + int(np.argmin(np.isfinite(chunk).all(axis=1)))
        raise ValueError(
            f"features hold NaN or infinite values (first at row {bad}); "
            "fix or drop those rows before clustering"
        )
    return chunk


@dataclass
class StreamingPCA:
    """Exact PCA to ``dim`` components, fitted and applied chunk by chunk.

    Args:
        dim: number of components kept.
        l2_normalize: L2-normalise every row before fitting and before projecting.
        whiten: divide the projections by the square root of their variance (off by default).
        chunk_rows: rows per chunk (default: about 16 MiB of float32 per chunk).

    Attributes (after :meth:`fit`): ``mean_`` (D,), ``components_`` (dim, D),
    ``explained_variance_`` (dim,), ``n_samples_``.
    """

    dim: int
    l2_normalize: bool = True
    whiten: bool = False
    chunk_rows: int | None = None
    mean_: NDArray[np.float64] = field(init=False, repr=False)
    components_: NDArray[np.float32] = field(init=False, repr=False)
    explained_variance_: NDArray[np.float64] = field(init=False, repr=False)
    n_samples_: int = field(init=False, default=0)

    def _chunks(self, x: NDArray[Any]) -> Any:
        for start, chunk in iter_chunks(x, self.chunk_rows):
            chunk = _checked(chunk, start)
            yield start, (l2_normalize_rows(chunk) if self.l2_normalize else chunk)

    def fit(self, x: NDArray[Any], progress: Progress | None = None) -> StreamingPCA:
        """Fit on the rows of ``x`` (an array or a memory-mapped array), one streaming pass."""
        n, d = x.shape
        if not 1 <= self.dim <= d:
            raise ValueError(f"pca_dim={self.dim} must be between 1 and the feature size {d}")
        if n < 2:
            raise ValueError("PCA needs at least 2 samples")
        total = np.zeros(d, dtype=np.float64)
        gram = np.zeros((d, d), dtype=np.float64)
        shift: NDArray[np.float32] | None = None
        for _, chunk in self._chunks(x):
            if shift is None:  # centring on a first estimate keeps float32 products accurate
                shift = chunk.mean(axis=0, dtype=np.float64).astype(np.float32)
            chunk -= shift
            total += chunk.sum(axis=0, dtype=np.float64)
            gram += chunk.T @ chunk
            if progress is not None:
                progress(chunk.shape[0])
        if shift is None:  # unreachable for n >= 2; keeps the type checker informed
            raise ValueError("PCA got no rows")
        mean_c = total / n
        cov = (gram - n * np.outer(mean_c, mean_c)) / (n - 1)
        values, vectors = eigh(cov, subset_by_index=(d - self.dim, d - 1), driver="evr")
        order = np.argsort(values)[::-1]
        self.mean_ = mean_c + shift.astype(np.float64)
        self.explained_variance_ = np.maximum(values[order], 0.0)
        self.components_ = np.ascontiguousarray(vectors[:, order].T, dtype=np.float32)
        self.n_samples_ = n
        return self

    def transform(
        self,
        x: NDArray[Any],
        out: NDArray[np.float32] | None = None,
        progress: Progress | None = None,
    ) -> NDArray[np.float32]:
        """Project the rows of ``x`` (normalised first when ``l2_normalize``) into ``out``."""
        if not hasattr(self, "components_"):
            raise ValueError("call fit() before transform()")
        if x.ndim != 2 or x.shape[1] != self.components_.shape[1]:
            raise ValueError(f"expected features of shape (n, {self.components_.shape[1]}), "
                             f"got {x.shape}")
        if out is None:
            out = np.empty((x.shape[0], self.dim), dtype=np.float32)
        w = self.components_.T
        mean = self.mean_.astype(np.float32)
        scale = None
        if self.whiten:
            scale = (1.0 / np.sqrt(np.maximum(self.explained_variance_, 1e-12))).astype(np.float32)
        for start, chunk in self._chunks(x):
            chunk -= mean
            proj = chunk @ w
            if scale is not None:
                proj *= scale
            out[start : start + chunk.shape[0]] = proj
            if progress is not None:
                progress(chunk.shape[0])
        return out


def prepare_features(
    x: NDArray[Any],
    l2_normalize: bool = True,
    chunk_rows: int | None = None,
    progress: Progress | None = None,
) -> NDArray[np.float32]:
    """Features as one contiguous float32 array, rows L2-normalised, without PCA.

    Used when no PCA is asked for: k-means then needs the whole (normalised) array in memory.
    A float32 in-memory array that needs no normalisation is returned as is (no copy).
    """
    if (not l2_normalize and isinstance(x, np.ndarray) and not isinstance(x, np.memmap)
            and x.dtype == np.float32 and x.flags.c_contiguous):
        _checked(x, 0)
        return x
    out = np.empty(x.shape, dtype=np.float32)
    for start, chunk in iter_chunks(x, chunk_rows):
        chunk = _checked(chunk, start)
        out[start : start + chunk.shape[0]] = l2_normalize_rows(chunk) if l2_normalize else chunk
        if progress is not None:
            progress(chunk.shape[0])
    return out


def unit_mean(x: NDArray[Any], chunk_rows: int | None = None) -> NDArray[np.float32]:
    """The mean of the L2-normalised rows of ``x`` (summed in float64 over chunks), as float32.

    Example::

        >>> unit_mean(np.array([[2.0, 0.0], [0.0, 3.0]])).tolist()
        [0.5, 0.5]
    """
    total = np.zeros(x.shape[1], dtype=np.float64)
    for start, chunk in iter_chunks(x, chunk_rows):
        total += l2_normalize_rows(_checked(chunk, start)).sum(0, dtype=np.float64)
    return (total / max(x.shape[0], 1)).astype(np.float32)


def center_rows(
    x: NDArray[Any], mean: NDArray[np.float32], chunk_rows: int | None = None
) -> NDArray[np.float32]:
    """Rows L2-normalised, minus ``mean`` (see :func:`unit_mean`), L2-normalised again ("CL2N"),
    as one float32 array. Centring removes the direction all rows share (ReLU features are all
    positive) before a cosine geometry.

    Example::

        >>> x = np.array([[1.0, 0.1], [0.1, 1.0]])
        >>> np.round(center_rows(x, unit_mean(x)).astype(float), 3).tolist()
        [[0.707, -0.707], [-0.707, 0.707]]
    """
    out = np.empty(x.shape, dtype=np.float32)
    for start, chunk in iter_chunks(x, chunk_rows):
        rows = l2_normalize_rows(_checked(chunk, start)) - mean
        out[start : start + chunk.shape[0]] = l2_normalize_rows(rows)
    return out
