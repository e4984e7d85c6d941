"""numba kernels of :mod:`selflabel.ot.sparse_kernel` (imported on first use: numba's import
and its on-disk cache load cost ~0.4 s, which ``import selflabel`` should not pay)."""

# mypy: ignore-errors
from __future__ import annotations

import numpy as np
from numba import njit, prange

# reassociation lets LLVM vectorise the row sums; no 'nnan'/'ninf' (scores may be -inf) and no
# 'contract' (the counting and the filling pass must compute bit-identical scores)
_FASTMATH = {"reassoc", "nsz", "arcp"}
# the row maxima vectorise only without NaN semantics (NaN scores are invalid input anyway)
_FASTMATH_MAX = _FASTMATH | {"nnan"}
_LANES = 16


@njit(parallel=True, cache=True, fastmath=_FASTMATH_MAX)
def count(lp, g, lam, drop, rowmax, counts):  # type: ignore[no-untyped-def]
    n, k = lp.shape
    body = k - k % _LANES
    for i in prange(n):
        # row maximum in _LANES independent lanes (a single running max does not vectorise)
        lanes = np.full(_LANES, -np.inf, np.float32)
        for j0 in range(0, body, _LANES):
            for q in range(_LANES):
                x = lam * lp[i, j0 + q] + g[j0 + q]
                if x > lanes[q]:
                    lanes[q] = x
        m = np.float32(-np.inf)
        for q in range(_LANES):
            if lanes[q] > m:
                m = lanes[q]
        for j in range(body, k):
            x = lam * lp[i, j] + g[j]
            if x > m:
                m = x
        if not np.isfinite(m):
            m = np.float32(0.0)
        rowmax[i] = m
        thr = m - drop
        c = np.int32(0)
        for j in range(k):
            c += np.int32(lam * lp[i, j] + g[j] > thr)
        counts[i] = c


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def fill(lp, g, lam, drop, rowmax, indptr, indices, values, rowsum):  # type: ignore[no-untyped-def]
    n, k = lp.shape
    for i in prange(n):
        m = rowmax[i]
        thr = m - drop
        p = indptr[i]
        end = indptr[i + 1]
        s = np.float32(0.0)
        for j in range(k):
            x = lam * lp[i, j] + g[j]
            if x > thr and p < end:
                e = np.exp(x - m)
                indices[p] = j
                values[p] = e
                s += e
                p += 1
        rowsum[i] = s


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def products(indptr, indices, values, v, u, omega, update, partial, errs):  # type: ignore[no-untyped-def]
    # one read of the kernel: per row its sum against v, the row update of u (when
    # `update`), and the row's contribution u_i * W_i to the cluster sums (per block)
    n = u.shape[0]
    blocks = partial.shape[0]
    step = (n + blocks - 1) // blocks
    one = np.float32(1.0)
    for b in prange(blocks):
        acc = partial[b]
        acc[:] = 0
        e = 0.0
        for i in range(b * step, min(n, (b + 1) * step)):
            lo = indptr[i]
            hi = indptr[i + 1]
            ui = u[i]
            if update:
                s = np.float32(0.0)
                for q in range(lo, hi):
                    s += values[q] * v[indices[q]]
                if omega == 1.0:
                    ui = one / s
                else:
                    ui = np.exp((one - omega) * np.log(ui) - omega * np.log(s))
                    e += abs(ui * s - one)
                u[i] = ui
            for q in range(lo, hi):
                acc[indices[q]] += ui * values[q]
        errs[b] = e
