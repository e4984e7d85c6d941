"""Benchmark of selflabel.ot: SeLa's label step and SwAV's codes, against baselines in the same run.

(a) label step, N x K log-probabilities (log_softmax of N(0, 2^2) logits), lam=25:
    seconds per iteration and to ``tol`` for :func:`selflabel.ot.sinkhorn_equipartition`, against
    the floor (one read pass over the N x K float32 matrix, ``x.sum()``, measured here) and POT's
    ``ot.sinkhorn`` (method "sinkhorn", float64) and ``method="sinkhorn_log"`` where they fit in
    memory, with the hard-label agreement between POT's plan and ours.
(b) codes, B x K cosine scores, eps=0.05, 3 iterations: ms per call of
    :func:`selflabel.ot.sinkhorn_codes` against SwAV's plain algorithm.

Prints a table and appends a dated section to docs/benchmarks.md (``--no-write`` to skip)::

    python benchmarks/sinkhorn.py            # the full run (N = 100k and 500k, K = 3000)
    python benchmarks/sinkhorn.py --quick    # a few-second smoke run on small sizes

POT protocol: POT's standard solver runs with ``stopThr = tol / sqrt(K)`` (its error is the L2 norm
of the cluster-marginal error, ours the L1 norm: for errors spread evenly over K clusters the two
thresholds agree) and the agreement of its argmax labels with ours is reported. POT's
``sinkhorn_log`` computes the same iterates, so it needs the same number of iterations; when a full
run would exceed ``--pot-budget`` seconds its time is extrapolated from timed runs of 10 and 20
iterations (marked "extrapolated").
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import datetime as _dt
import math
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from selflabel.ot import (
    balanced_labels,
    plain_sinkhorn_codes,
    sinkhorn_codes,
    sinkhorn_equipartition,
)

ROOT = Path(__file__).resolve().parents[1]
NO_GPU_LINE = "ImageNet-size GPU label step: not measured (no GPU lent in this task)"


def make_log_p(N: int, K: int, seed: int = 0, chunk: int = 8192) -> torch.Tensor:
    """log_softmax of N(0, 2^2) logits, generated in chunks (no N x K temporary)."""
    gen = torch.Generator().manual_seed(seed)
    out = torch.empty(N, K)
    for lo in range(0, N, chunk):
        hi = min(lo + chunk, N)
        out[lo:hi] = torch.log_softmax(2.0 * torch.randn(hi - lo, K, generator=gen), dim=1)
    return out


def best_of(fn: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def available_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def label_step(
    N: int,
    K: int,
    lam: float,
    tol: float,
    pot: str,
    pot_budget: float,
    repeats: int,
    pot_log_iters: int | None = None,
) -> dict[str, Any]:
    print(f"[label step] N={N} K={K}: generating log_p ...", flush=True)
    log_p = make_log_p(N, K)
    row: dict[str, Any] = {"N": N, "K": K}
    ones = torch.ones(K)

    def floor(x: torch.Tensor = log_p) -> float:  # the faster of two one-read-pass kernels
        return min(best_of(lambda: x.sum(), repeats), best_of(lambda: x @ ones, repeats))

    row["floor_s"] = floor()
    inplace = 0.8 * available_memory() < 2 * N * K * 4
    t0 = time.perf_counter()
    res = sinkhorn_equipartition(log_p, lam=lam, tol=tol, inplace=inplace)
    row["ours_s"] = time.perf_counter() - t0
    row["floor_after_s"] = floor() if not inplace else math.nan
    row["floor_s"] = min(row["floor_s"], row["floor_after_s"]) if not inplace else row["floor_s"]
    row.update(
        inplace=inplace,
        n_iter=res.n_iter,
        error=res.error,
        per_iter_s=res.timings["iterations"] / max(res.n_iter, 1),
        kernel_s=res.timings["kernel"],
        rounding_s=res.timings["rounding"],
    )
    row["per_iter_over_floor"] = row["per_iter_s"] / row["floor_s"]
    counts = torch.bincount(res.labels, minlength=K)
    row["balanced"] = bool(counts.min() >= N // K and counts.max() <= -(-N // K))
    print(
        f"  ours: {row['ours_s']:.2f} s, {res.n_iter} it, err {res.error:.2e}, "
        f"{row['per_iter_s']:.3f} s/it = {row['per_iter_over_floor']:.2f}x floor "
        f"({row['floor_s']:.3f} s)",
        flush=True,
    )
    if inplace:
        print("  (in place: not enough memory for a second N x K matrix; POT skipped)")
        return row
    ours_labels = res.labels
    ours_argmax = torch.empty(N, dtype=torch.long)
    for lo in range(0, N, 8192):
        ours_argmax[lo : lo + 8192] = res.soft_plan(log_p[lo : lo + 8192]).argmax(1)
    # POT needs M (float64), its kernel and a scaled copy, and the plan: ~5 float64 N x K
    if pot == "none" or 0.85 * available_memory() < 5 * N * K * 8:
        print("  POT: skipped (does not fit in memory)" if pot != "none" else "  POT: skipped")
        return row
    import numpy as np

    import ot

    M = (-log_p).double().numpy()
    del log_p, res  # POT's log-domain solver needs ~5 float64 N x K buffers of its own
    a, b = np.full(N, 1.0 / N), np.full(K, 1.0 / K)
    if pot_log_iters is None:
        thr = tol / math.sqrt(K)
        t0 = time.perf_counter()
        P, log = ot.sinkhorn(
            a, b, M, 1.0 / lam, method="sinkhorn", stopThr=thr, numItermax=10000, log=True
        )
        row["pot_std_s"] = time.perf_counter() - t0
        row["pot_iter"] = int(log["niter"])
        pot_labels = torch.from_numpy(P.argmax(1))
        plan = torch.from_numpy(P)  # shares memory

        def pot_rows(rows: slice | torch.Tensor, plan: torch.Tensor = plan) -> torch.Tensor:
            return torch.log(plan[rows].float() * N)

        pot_rounded = balanced_labels(pot_rows, N, K)
        del P, plan, pot_rows
        row["agree_argmax"] = float((pot_labels == ours_argmax).double().mean())
        row["agree_balanced"] = float((pot_labels == ours_labels).double().mean())
        row["agree_rounded"] = float((pot_rounded == ours_labels).double().mean())
        print(
            f"  POT sinkhorn: {row['pot_std_s']:.1f} s, {row['pot_iter']} it; agreement "
            f"argmax {row['agree_argmax']:.4f}, balanced {row['agree_balanced']:.4f}, "
            f"both rounded {row['agree_rounded']:.4f}",
            flush=True,
        )
    else:
        row["pot_iter"] = pot_log_iters

    def pot_log(n_iter: int) -> float:
        t0 = time.perf_counter()
        ot.sinkhorn(a, b, M, 1.0 / lam, method="sinkhorn_log", stopThr=0.0, numItermax=n_iter)
        return time.perf_counter() - t0

    n_target = row["pot_iter"]
    # sinkhorn_log holds ~9 float64 N x K buffers at once: measured OOM at N=100k, K=3000 in 24 GiB
    if 0.9 * available_memory() < 9 * N * K * 8:
        row["pot_log_s"] = None
        print("  POT sinkhorn_log: skipped (needs ~9 float64 N x K buffers: does not fit)")
        return row
    t10 = pot_log(10)
    t20 = pot_log(20)
    per_it = max((t20 - t10) / 10, 1e-9)
    estimate = t10 + (n_target - 10) * per_it
    if estimate <= pot_budget:
        row["pot_log_s"] = pot_log(n_target)
        row["pot_log_extrapolated"] = False
    else:
        row["pot_log_s"] = estimate
        row["pot_log_extrapolated"] = True
    print(
        f"  POT sinkhorn_log: {row['pot_log_s']:.1f} s"
        f"{' (extrapolated)' if row['pot_log_extrapolated'] else ''}",
        flush=True,
    )
    return row


def codes(B: int, K: int, repeats: int) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(1)
    z = torch.nn.functional.normalize(torch.randn(B, 128, generator=gen), dim=1)
    c = torch.nn.functional.normalize(torch.randn(K, 128, generator=gen), dim=1)
    scores = z @ c.t()
    ours, plain = [], []
    for _ in range(repeats):  # interleaved, so that both see the same machine load
        t0 = time.perf_counter()
        q = sinkhorn_codes(scores, eps=0.05, n_iters=3)
        ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        p = plain_sinkhorn_codes(scores, eps=0.05, n_iters=3)
        plain.append(time.perf_counter() - t0)
    rel = float(((q - p).abs() / p.abs().clamp_min(1e-30)).max())
    row = {
        "B": B,
        "K": K,
        "ours_ms": 1e3 * statistics.median(ours),
        "plain_ms": 1e3 * statistics.median(plain),
        "max_rel_err": rel,
    }
    row["ratio"] = row["ours_ms"] / row["plain_ms"]
    print(
        f"[codes] B={B} K={K}: ours {row['ours_ms']:.1f} ms, plain {row['plain_ms']:.1f} ms "
        f"({row['ratio']:.2f}x), max rel. difference {rel:.1e}",
        flush=True,
    )
    return row


def fmt(x: Any, spec: str = ".2f") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return format(x, spec)


def report(
    labels: list[dict[str, Any]], code_rows: list[dict[str, Any]], args: argparse.Namespace
) -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    lines = [
        f"## selflabel.ot Sinkhorn — {_dt.date.today().isoformat()}"
        f"{' (quick smoke run)' if args.quick else ''}",
        "",
        f"`python benchmarks/sinkhorn.py{' --quick' if args.quick else ''}` on {cpu}, "
        f"{torch.get_num_threads()} torch threads, torch {torch.__version__}, "
        f"load average {load:.1f} at the end of the run. lam={args.lam}, tol={args.tol} "
        "(L1 cluster-marginal error), log_p = log_softmax of N(0, 2²) logits.",
        "",
        "### (a) label step (`sinkhorn_equipartition`)",
        "",
        "| N | K | floor s (1 read pass) | s / iteration | ÷ floor | iterations | s to tol "
        "(total) | POT sinkhorn s (it) | ×faster | POT sinkhorn_log s | ×faster | label "
        "agreement (argmax / rounded / POT argmax vs our rounded) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in labels:
        pot_std = r.get("pot_std_s")
        pot_log = r.get("pot_log_s")
        pot_it = f" ({r['pot_iter']})" if pot_std else ""
        extra = " (extrapolated)" if r.get("pot_log_extrapolated") else ""
        where = " (in place)" if r["inplace"] else ""
        lines.append(
            f"| {r['N']:,} | {r['K']} | {fmt(r['floor_s'], '.3f')} | {fmt(r['per_iter_s'], '.3f')} "
            f"| {fmt(r['per_iter_over_floor'])} | {r['n_iter']} | {fmt(r['ours_s'])}{where} "
            f"| {fmt(pot_std, '.1f')}{pot_it} "
            f"| {fmt(pot_std / r['ours_s'] if pot_std else None, '.1f')} "
            f"| {fmt(pot_log, '.1f')}{extra} "
            f"| {fmt(pot_log / r['ours_s'] if pot_log else None, '.1f')} "
            f"| {fmt(r.get('agree_argmax'), '.4f')} / {fmt(r.get('agree_rounded'), '.4f')} / "
            f"{fmt(r.get('agree_balanced'), '.4f')} |"
        )
    lines += [
        "",
        "s to tol includes writing the kernel and the balanced rounding; POT's time includes "
        "building its kernel from M. Label agreement, as fractions of samples: POT's plan's "
        "argmax vs our plan's argmax / POT's plan rounded by our balanced rounding vs our hard "
        "labels / POT's argmax vs our hard labels. POT is skipped where it does not fit in memory.",
        "",
        "### (b) codes (`sinkhorn_codes`, eps=0.05, 3 iterations)",
        "",
        "| B | K | ours ms | plain algorithm ms | ours ÷ plain | max rel. difference |",
        "|---|---|---|---|---|---|",
    ]
    for r in code_rows:
        lines.append(
            f"| {r['B']} | {r['K']} | {fmt(r['ours_ms'], '.1f')} | "
            f"{fmt(r['plain_ms'], '.1f')} | {fmt(r['ratio'])} | {r['max_rel_err']:.1e} |"
        )
    lines += ["", NO_GPU_LINE if not torch.cuda.is_available() else "", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes: a few-second smoke run")
    ap.add_argument("--sizes", type=int, nargs="+", help="label-step N values")
    ap.add_argument("--k", type=int, default=None, help="clusters K (default 3000; quick: 100)")
    ap.add_argument("--batches", type=int, nargs="+", help="codes batch sizes B")
    ap.add_argument("--lam", type=float, default=25.0)
    ap.add_argument("--tol", type=float, default=1e-3)
    ap.add_argument("--pot", choices=["auto", "none"], default="auto")
    ap.add_argument(
        "--pot-budget",
        type=float,
        default=None,
        help="seconds allowed for a full POT sinkhorn_log run before extrapolating",
    )
    ap.add_argument(
        "--pot-log-iters",
        type=int,
        default=None,
        help="skip POT's standard solver; time sinkhorn_log for this many iterations",
    )
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--no-write", action="store_true", help="do not append to docs/benchmarks.md")
    ap.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    K = args.k or (100 if args.quick else 3000)
    sizes = args.sizes or ([2000] if args.quick else [100_000, 500_000])
    batches = args.batches or ([256] if args.quick else [4096, 7936])
    repeats = args.repeats or (3 if args.quick else 10)
    budget = args.pot_budget if args.pot_budget is not None else (1.0 if args.quick else 300.0)
    label_rows = [
        label_step(N, K, args.lam, args.tol, args.pot, budget, 3, args.pot_log_iters) for N in sizes
    ]
    code_rows = [codes(B, K, repeats) for B in batches]
    text = report(label_rows, code_rows, args)
    print()
    print(text)
    if not args.no_write:
        if not args.output.exists():
            args.output.write_text(
                "# Benchmarks\n\nEvery speed claim, as a ratio against a "
                "baseline measured in the same run.\n"
            )
        with open(args.output, "a") as f:
            f.write("\n" + text)
        print(f"appended to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
