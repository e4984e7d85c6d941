"""UMAP embedding before k-means: the manifold step of the clustering benchmark (optional).

k-means assumes round clusters of equal spread; learned features may put a class on a curved,
uneven band of the sphere instead. Embedding the rows with UMAP into a few dimensions first (N2D:
as many dimensions as clusters; UMAP's documentation for clustering: ``n_neighbors`` ≈ 30,
``min_dist = 0``) can let k-means find such classes (docs/results.md, session 18, has what it did
on Fashion-MNIST: NMI up, ACC level). This module only wraps ``umap-learn`` with the
benchmark's defaults, checks its input and seeds it (umap-learn is imported only when used).

With a seed UMAP runs single-threaded and gives the same embedding every time on one machine.

Example::

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = np.concatenate([rng.normal(c, 0.1, size=(60, 8)) for c in (0, 3)]).astype("float32")
    >>> emb = UmapEmbedding(dim=2, n_neighbors=10, seed=0).fit(x)
    >>> emb.transform(x[:5]).shape
    (5, 2)
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["UmapEmbedding", "require_umap"]

INSTALL_HINT = "pip install umap-learn (a dependency of selflabel missing from this environment)"


def require_umap() -> Any:
    """The ``umap`` module, or an ImportError that says how to install it."""
    try:
        import umap
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("the UMAP step of the clustering benchmark (umap_dim) needs "
                          f"umap-learn: {INSTALL_HINT}") from err
    return umap


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence umap's warnings that a seed overrides ``n_jobs`` and that a metric's gradient is
    approximated: they say nothing the caller did not ask for."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_jobs.*overridden.*")
        warnings.filterwarnings("ignore", message=".*gradient function is not yet.*")
        yield


@dataclass
class UmapEmbedding:
    """UMAP with the clustering benchmark's settings, scikit-learn style ``fit``/``transform``.

    Args:
        dim: embedding dimensions (the benchmark's ``umap_dim``; N2D uses the number of clusters).
        n_neighbors: neighbourhood size of the k-nearest-neighbour graph (capped to ``n - 1``).
        min_dist: minimum distance between embedded points (0 packs clusters tightly).
        seed: random seed (same seed and data → same embedding on one machine).

    Attributes (after :meth:`fit`): ``embedding_`` (n, dim) float32 of the fitted rows.
    """

    dim: int
    n_neighbors: int = 30
    min_dist: float = 0.0
    seed: int = 0
    embedding_: NDArray[np.float32] = field(init=False, repr=False)
    _model: Any = field(init=False, default=None, repr=False)
    _width: int = field(init=False, default=0, repr=False)

    def validate(self, n: int) -> None:
        """Raise a ValueError naming the fix when the settings cannot embed ``n`` rows."""
        if self.dim < 1:
            raise ValueError(f"umap_dim must be at least 1, got {self.dim}")
        if self.n_neighbors < 2:
            raise ValueError(f"umap n_neighbors must be at least 2, got {self.n_neighbors}")
        if self.min_dist < 0:
            raise ValueError(f"umap min_dist must be non-negative, got {self.min_dist}")
        if n < self.dim + 2:
            raise ValueError(f"UMAP to {self.dim} dimensions needs at least {self.dim + 2} rows, "
                             f"got {n}; lower umap_dim or leave it off")

    def fit(self, x: NDArray[Any]) -> UmapEmbedding:
        """Embed the rows of ``x``; the result is ``embedding_``."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 2:
            raise ValueError(f"expected a 2-D array (samples × dims), got shape {x.shape}")
        self.validate(x.shape[0])
        if not np.isfinite(x).all():
            raise ValueError("the features hold NaN or inf; UMAP needs finite rows")
        umap = require_umap()
        model = umap.UMAP(
            n_components=self.dim,
            n_neighbors=min(self.n_neighbors, x.shape[0] - 1),
            min_dist=self.min_dist,
            metric="euclidean",
            random_state=int(self.seed) % (2**31),
            n_jobs=1,  # a seed makes umap single-threaded anyway
        )
        with _quiet():
            self.embedding_ = np.ascontiguousarray(model.fit_transform(x), dtype=np.float32)
        self._model, self._width = model, x.shape[1]
        return self

    def transform(self, x: NDArray[Any]) -> NDArray[np.float32]:
        """Embed new rows into the fitted embedding (UMAP's out-of-sample transform)."""
        if self._model is None:
            raise ValueError("call fit() before transform()")
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self._width:
            raise ValueError(f"expected rows of size {self._width}, got {x.shape}")
        with _quiet():
            return np.ascontiguousarray(self._model.transform(x), dtype=np.float32)
