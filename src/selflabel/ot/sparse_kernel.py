"""A sparse (CSR) Sinkhorn kernel for CPUs, compiled with numba.

The scaling engine (:mod:`selflabel.ot.scaling`) stores kernel entries below ``exp(-drop)`` of
their row's largest entry as exact zeros. With SeLa's ``lam = 25`` most entries are such zeros
as soon as the heads are somewhat confident (on the label-step benchmark, 97 % of a 60k x 3000
kernel), so on a CPU, where every Sinkhorn iteration is bound by memory bandwidth, keeping only
the other entries in compressed rows makes an iteration read ~20x less memory; the kernel is
also built straight from the scores in two passes, without a dense ``N x K`` working matrix.

The kept entries, their values and the arithmetic (float32) are those of the dense kernel, so
the solver's results agree with the dense path up to float rounding of the sums. Internal: used
by :class:`selflabel.ot.scaling._Solver` when numba is installed, the device is a CPU and the
kernel is sparse enough (:data:`MAX_DENSITY`).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["MAX_DENSITY", "MIN_ENTRIES", "CsrKernel", "available"]

#: above this fraction of kept entries, the dense kernel (one float per entry) is cheaper than
#: CSR (a float and an int32 index per entry, and scattered column updates)
MAX_DENSITY = 0.25
#: below this many entries (N x K) the dense path wins: the per-call overheads of the compiled
#: kernels outweigh the bandwidth saved (measured with benchmarks/label_step.py --compare-dense:
#: sparse/dense 1.3-2x at 1-2M entries, ~1x at 20M, 0.5x at 180M)
MIN_ENTRIES = 1 << 25


def available() -> bool:
    """True when numba is installed (the sparse kernel can be used)."""
    return importlib.util.find_spec("numba") is not None


def _compiled() -> Any:
    """The numba kernels (:mod:`selflabel.ot._csr_numba`), imported and compiled on first use:
    numba caches the machine code on disk, so later processes only load it (~0.4 s)."""
    from selflabel.ot import _csr_numba

    return _csr_numba


@dataclass
class CsrKernel:
    """The kept kernel entries of ``W = exp(lam * log_p + f + g)`` in compressed rows."""

    indptr: np.ndarray  # (N + 1,) int64
    indices: np.ndarray  # (nnz,) int32
    values: np.ndarray  # (nnz,) float32
    n_cols: int

    @property
    def density(self) -> float:
        rows = self.indptr.shape[0] - 1
        return float(self.values.shape[0]) / max(1, rows * self.n_cols)

    @staticmethod
    def build(
        log_p: Tensor, g: Tensor, lam: float, drop: float, max_density: float = MAX_DENSITY
    ) -> tuple[CsrKernel, Tensor, Tensor] | None:
        """Kernel of ``lam * log_p + g`` with rows shifted to a largest entry of 1.

        Returns ``(kernel, f, rowsum)``: ``f`` (N,) the row shifts (``-`` the row maxima) and
        ``rowsum`` (N,) the kernel's row sums; None when more than ``max_density`` of the
        entries are kept (the caller then writes a dense kernel).
        """
        lp = _as_numpy(log_p)
        gn = _as_numpy(g)
        n, k = lp.shape
        _threads()
        rowmax = np.empty(n, np.float32)
        counts = np.empty(n, np.int64)
        kernels = _compiled()
        kernels.count(lp, gn, np.float32(lam), np.float32(drop), rowmax, counts)
        indptr = np.zeros(n + 1, np.int64)
        np.cumsum(counts, out=indptr[1:])
        nnz = int(indptr[-1])
        if nnz > max_density * n * k:
            return None
        indices = np.empty(nnz, np.int32)
        values = np.empty(nnz, np.float32)
        rowsum = np.empty(n, np.float32)
        kernels.fill(
            lp, gn, np.float32(lam), np.float32(drop), rowmax, indptr, indices, values, rowsum
        )
        kernel = CsrKernel(indptr, indices, values, k)
        return kernel, torch.from_numpy(-rowmax), torch.from_numpy(rowsum)

    def products(self, v: Tensor, u: Tensor, omega: float | None) -> tuple[Tensor, float]:
        """Cluster sums ``W^T u`` (K,), updating ``u`` in place first when ``omega`` is given.

        With ``omega``: ``u = u^(1-omega) (1 / (W v))^omega`` row by row in the same read of
        the kernel; the returned float is then the relaxed rows' error ``sum |u (W v) - 1|``
        (0 for ``omega == 1``, whose rows are exact). ``u`` and ``v`` are float32 CPU tensors.
        """
        n = u.shape[0]
        threads = _threads()
        blocks = max(1, min(n, 4 * threads))
        partial = np.empty((blocks, self.n_cols), np.float32)
        errs = np.zeros(blocks, np.float64)
        un = u.numpy()
        vn = v.numpy()
        _compiled().products(
            self.indptr,
            self.indices,
            self.values,
            vn,
            un,
            np.float32(omega or 1.0),
            omega is not None,
            partial,
            errs,
        )
        return torch.from_numpy(partial.sum(axis=0)), float(errs.sum())


def _as_numpy(x: Tensor) -> np.ndarray:
    return x.detach().to(torch.float32).contiguous().numpy()


def _threads() -> int:
    """Use as many numba threads as torch does (bounded by numba's pool)."""
    import numba

    n = max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
    numba.set_num_threads(n)
    return n
