"""The scaling-form Sinkhorn engine behind :func:`selflabel.ot.sinkhorn_equipartition`.

A float32 working matrix holds the kernel ``W = exp(lam * log_p + f + g)`` (row-shifted, tiny
entries stored as exact zeros); the iterations update scaling vectors ``u`` (rows) and ``v``
(clusters), over-relaxed, absorbing them back into ``W`` before they leave a safe range. See
``docs/ot.md``. Internal: the public entry point is :mod:`selflabel.ot.equipartition`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from selflabel.ot import sparse_kernel
from selflabel.ot.distributed import all_reduce_

# Kernel entries below exp(-_DROP) times their row's largest entry are stored as exactly 0
# (exp() would otherwise make float32 subnormals, 10-20x slower in every later pass). The
# scalings are re-absorbed into the kernel before their spread exceeds exp(_SPREAD), and in
# between their common level is re-centred (a change of gauge, no pass over the kernel), so a
# dropped entry never stands for more than exp(_SPREAD - _DROP) = exp(-20) of its row (below
# float32's resolution, 2**-23 = exp(-15.9)), and every product in the iterations stays above
# exp(-_DROP - _SPREAD / 2 - log K) > exp(-75), a normal float (subnormals start at exp(-87.3)).
# The wide safe range matters for speed: each absorption rewrites the kernel (an exp pass).
_DROP = 50.0
_SPREAD = 30.0
_ABSORB = _SPREAD / 2  # scalings stay in [exp(-_ABSORB), exp(_ABSORB)] (gauge-centred)
_TINY = math.exp(-_DROP)


def _exp_dropping_tiny_(x: Tensor) -> Tensor:
    """``x.exp_()`` with every entry whose exponent is below ``-_DROP`` set to exactly 0.

    The clamp matters for speed: CPU ``exp`` of arguments below about -87 (results that are
    subnormal or 0) is 10-100x slower than of ordinary ones, and subnormal results slow down
    every later pass.
    """
    x.clamp_(min=-_DROP - 1.0).exp_()
    return F.threshold(x, _TINY, 0.0, inplace=True)


class _Solver:
    """Scaling-form Sinkhorn on a float32 kernel ``W = exp(lam * log_p + f + g)``."""

    def __init__(
        self,
        log_p: Tensor,
        lam: float,
        b: Tensor,
        inplace: bool,
        group: Any,
        chunk: int,
        workspace: Tensor | None = None,
    ) -> None:
        self.log_p = log_p
        self.lam = lam
        self.b = b
        self.inplace = inplace
        self.group = group
        self.chunk = chunk
        N, K = log_p.shape
        self.n_local = N
        dev = log_p.device
        # the dense working matrix; allocated on first use (a sparse kernel needs none)
        self._W: Tensor | None = log_p if inplace else workspace
        # CPU: keep only the kept entries in compressed rows when the kernel is sparse enough
        self.sparse_ok = (
            not inplace
            and dev.type == "cpu"
            and N * K >= sparse_kernel.MIN_ENTRIES
            and sparse_kernel.available()
        )
        self.csr: sparse_kernel.CsrKernel | None = None
        self.f = torch.zeros(N, dtype=torch.float32, device=dev)  # W = exp(lam lp + f + g)
        self.g = torch.zeros(K, dtype=torch.float32, device=dev)
        self.u = torch.ones(N, dtype=torch.float32, device=dev)
        self.v = torch.ones(K, dtype=torch.float32, device=dev)
        self.kernel_written = False
        # rows per fused chunk: ~64 MiB. Cache-sized blocks (~2 MiB) would let the two products
        # share one read from memory, but every torch call then pays a thread wake-up
        # (OMP_WAIT_POLICY=PASSIVE): measured at 60k x 3000 on 2 cores, 174-row blocks took
        # 0.13 s per iteration and 5.6k-row blocks 0.07 s
        self.fused_rows = max(1, (1 << 24) // max(K, 1)) if dev.type == "cpu" else max(N, 1)

    @property
    def W(self) -> Tensor:  # noqa: N802 - the kernel matrix of the maths
        if self._W is None:
            N, K = self.log_p.shape
            self._W = torch.empty((N, K), dtype=torch.float32, device=self.log_p.device)
        return self._W

    def _lp(self, lo: int, hi: int) -> Tensor:
        return self.log_p[lo:hi]

    # ----------------------------------------------------------------- kernel (re)writing
    def write_kernel(self, g: Tensor) -> None:
        """W = exp(lam * log_p + f + g) with f making each row's largest entry 1; u = 1/rowsum."""
        if self.inplace and self.kernel_written:
            raise AssertionError("in-place kernels are rescaled, not rewritten")
        self.g = g.clone()
        if self.sparse_ok:
            built = sparse_kernel.CsrKernel.build(self.log_p, self.g, self.lam, _DROP)
            if built is not None:
                self.csr, self.f, rowsum = built
                self.u = rowsum.reciprocal_()
                self.v.fill_(1.0)
                self.kernel_written = True
                return
            self.sparse_ok = False  # too dense: the dense kernel for the rest of this solve
        self.csr = None
        for lo in range(0, self.n_local, self.chunk):
            hi = min(lo + self.chunk, self.n_local)
            w = self.W[lo:hi]
            lp = self._lp(lo, hi)
            if lp.dtype == torch.float32:
                torch.add(self.g, lp, alpha=self.lam, out=w)
            else:
                w.copy_(lp).mul_(self.lam).add_(self.g)
            m = w.amax(dim=1, keepdim=True)
            m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
            w.sub_(m)
            _exp_dropping_tiny_(w)
            self.f[lo:hi] = -m.squeeze(1)
            self.u[lo:hi] = w.sum(dim=1).reciprocal_()
        self.v.fill_(1.0)
        self.kernel_written = True

    def rescale_kernel(self) -> None:
        """In-place absorption: W <- W * v (and re-thresholded), g += log v, u = 1/rowsum."""
        self.g += torch.log(self.v)
        for lo in range(0, self.n_local, self.chunk):
            hi = min(lo + self.chunk, self.n_local)
            w = self.W[lo:hi]
            w.mul_(self.v)
            m = w.amax(dim=1, keepdim=True)
            m = torch.where(m > 0, m, torch.ones_like(m))
            w.div_(m)
            F.threshold(w, _TINY, 0.0, inplace=True)
            self.f[lo:hi] -= torch.log(m.squeeze(1))
            self.u[lo:hi] = w.sum(dim=1).reciprocal_()
        self.v.fill_(1.0)

    def column_logsumexp(self) -> Tensor:
        """log sum_n exp(lam * log_p + f + log u) per cluster, over all processes (exp pass)."""
        K = self.g.numel()
        dev = self.g.device
        M = torch.full((K,), -math.inf, dtype=torch.float32, device=dev)
        S = torch.zeros(K, dtype=torch.float32, device=dev)
        f = self.f + torch.log(self.u)
        for lo in range(0, self.n_local, self.chunk):
            hi = min(lo + self.chunk, self.n_local)
            x = self._lp(lo, hi).to(torch.float32) * self.lam
            x += f[lo:hi, None]
            cm = x.amax(dim=0)
            newM = torch.maximum(M, cm)
            safe = torch.where(torch.isfinite(newM), newM, torch.zeros_like(newM))
            S = S * torch.exp(M - safe) + _exp_dropping_tiny_(x.sub_(safe)).sum(dim=0)
            M = newM
        Mg = M.clone()
        all_reduce_(Mg, self.group, "max")
        safe = torch.where(torch.isfinite(Mg), Mg, torch.zeros_like(Mg))
        S = S * torch.exp(M - safe)
        all_reduce_(S, self.group)
        return safe + torch.log(S)

    # ----------------------------------------------------------------- iterations
    def fused_pass(self, omega: float) -> Tensor:
        """Sample update ``u = u^(1-omega) (1 / (W v))^omega`` fused with the cluster sums.

        Returns ``W^T u`` (K,) with the new plan's row error ``sum |u * (W v) - 1|`` appended,
        reduced over the group. On CPU the rows are processed in cache-sized chunks, so each
        chunk is read from memory once for both products: one pass over W per iteration.
        """
        K = self.v.numel()
        out = torch.zeros(K + 1, dtype=torch.float32, device=self.v.device)
        if self.n_local == 0:
            return all_reduce_(out, self.group)
        if self.csr is not None:
            out[:-1], err = self.csr.products(self.v, self.u, omega)
            out[-1] = err
            return all_reduce_(out, self.group)
        c = out[:-1]
        row_sums = torch.empty_like(self.u)
        step = self.fused_rows
        for lo in range(0, self.n_local, step):
            hi = min(lo + step, self.n_local)
            w = self.W[lo:hi]
            rs = torch.mv(w, self.v, out=row_sums[lo:hi])
            u = self.u[lo:hi]
            if omega == 1.0:
                torch.reciprocal(rs, out=u)
            else:
                lu = torch.log(u).mul_(1.0 - omega).sub_(torch.log(rs), alpha=omega)
                torch.exp(lu, out=u)
            c.addmv_(w.t(), u)
        if omega != 1.0:
            out[-1] = (self.u * row_sums - 1.0).abs_().sum()
        return all_reduce_(out, self.group)

    def column_sums(self, extra: Tensor) -> Tensor:
        """``W^T u`` (K,) with ``extra`` (1,) appended, summed over the group in one reduction."""
        c = torch.empty(self.v.numel() + 1, dtype=torch.float32, device=self.v.device)
        if self.n_local and self.csr is not None:
            c[:-1] = self.csr.products(self.v, self.u, None)[0]
        elif self.n_local:
            torch.mv(self.W.t(), self.u, out=c[:-1])
        else:
            c[:-1] = 0
        c[-1:] = extra
        return all_reduce_(c, self.group)


# Over-relaxation (Thibault et al. 2017): after _PLAIN_ITERS plain iterations the contraction
# rate rho of the marginal error is measured and the scalings are over-relaxed with the SOR
# factor omega = 2 / (1 + sqrt(1 - rho)); if the error grows, omega is halved towards 1. The
# iterations that decide convergence use a plain sample update, so the reported error is that
# of a plan whose rows are exact.
_PLAIN_ITERS = 4
_RATE_WINDOW = 2
_OMEGA_MAX = 1.9
_PATIENCE = 5
_CHECK_FACTOR = 8.0  # a relaxed plan's error is a few times its exact-rows error


def _iterate(s: _Solver, b: Tensor, N: float, tol: float, max_iter: int) -> tuple[int, int, float]:
    """Run the scaling iterations on ``s`` until the marginal error is <= tol."""
    log_b = torch.log(b)
    n_iter, n_absorb = 0, 0
    omega = 1.0
    errors: list[float] = []  # error per iteration
    best, since_best = math.inf, 0
    last_check = -_PATIENCE
    row_err = torch.zeros(1, dtype=torch.float32, device=b.device)  # rows exact
    rows_exact = True
    pending: Tensor | None = None
    while True:
        c = s.column_sums(extra=row_err) if pending is None else pending
        pending = None
        c, row_err_all = c[:-1], c[-1]
        col_err = (c * s.v - b).abs().sum() / N
        bad_t = ~(torch.isfinite(c).all() & (c > 0).all())
        err, bad = (
            float(x) for x in torch.stack([col_err + row_err_all / N, bad_t.float()]).tolist()
        )
        if (rows_exact and err <= tol and not bad) or n_iter >= max_iter:
            return n_iter, n_absorb, err
        n_iter += 1
        errors.append(err)
        if bad:  # a cluster without support in the stored kernel: log-domain column step
            if s.inplace:
                raise RuntimeError(
                    "a cluster lost all support in the in-place kernel; "
                    "use inplace=False (or a warm start)"
                )
            g_new = log_b - s.column_logsumexp()
            s.f += torch.log(s.u)
            s.kernel_written = False
            s.write_kernel(g_new)
            n_absorb += 1
            row_err.zero_()
            rows_exact = True
            continue
        # adapt the relaxation
        if omega == 1.0 and len(errors) == _PLAIN_ITERS and errors[-1] > 0:
            rho = (errors[-1] / errors[-1 - _RATE_WINDOW]) ** (1.0 / _RATE_WINDOW)
            if 0 < rho < 1:
                omega = min(_OMEGA_MAX, 2.0 / (1.0 + math.sqrt(1.0 - rho)))
                best, since_best = math.inf, 0
        elif omega > 1.0 and not rows_exact:
            # the error of a relaxed plan (rows not exact) must keep falling
            if err < best:
                best, since_best = err, 0
            else:
                since_best += 1
                if since_best >= _PATIENCE:
                    omega = 1.0 + (omega - 1.0) / 2
                    best, since_best = math.inf, 0
        # cluster update
        log_v_plain = log_b - torch.log(c)
        if omega == 1.0:
            log_v = log_v_plain
        else:
            log_v = torch.log(s.v).mul_(1.0 - omega).add_(log_v_plain, alpha=omega)
        lo, hi = torch.aminmax(log_v)
        lo_f, hi_f = (float(x) for x in torch.stack([lo, hi]).tolist())
        if hi_f - lo_f <= 2 * _ABSORB and max(-lo_f, hi_f) > _ABSORB:
            # the scalings' spread is still safe, only their level drifted: move the gauge
            # (v e^-t, u e^t, g + t, f - t leave the kernel and the plan unchanged)
            shift = (hi_f + lo_f) / 2
            log_v -= shift
            s.g += shift
            s.f -= shift
            s.u *= math.exp(shift)
        if hi_f - lo_f > 2 * _ABSORB:
            n_absorb += 1
            if s.inplace:
                s.v = torch.exp(log_v)
                s.rescale_kernel()
            else:
                s.write_kernel(s.g + log_v)
            row_err.zero_()
            rows_exact = True
            continue
        s.v = torch.exp(log_v)
        # sample update fused with the next cluster sums (plain when close to tol, so that the
        # next check has exact rows)
        plain = omega == 1.0 or (err <= _CHECK_FACTOR * tol and n_iter - last_check >= _PATIENCE)
        if plain:
            last_check = n_iter
        pending = s.fused_pass(1.0 if plain else omega)
        rows_exact = plain


def _row_potentials(s: _Solver) -> None:
    """f = -logsumexp_k(lam * log_p + g) for every row (an exp pass; u = 1)."""
    for lo in range(0, s.n_local, s.chunk):
        hi = min(lo + s.chunk, s.n_local)
        x = s._lp(lo, hi).to(torch.float32) * s.lam
        x += s.g
        m = x.amax(dim=1, keepdim=True)
        m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
        s.f[lo:hi] = -(m.squeeze(1) + torch.log(_exp_dropping_tiny_(x.sub_(m)).sum(dim=1)))
    s.u.fill_(1.0)
