"""SeLa label step at ImageNet-like shape on the CPU: N samples, K clusters, T heads.

Times :meth:`selflabel.methods.sela.SeLa.label_step`'s solver part — per head: logits from fixed
features, then the equipartition solver (cold, then warm-started from the previous potentials after
a small change of the features, as between two label steps) — and, in the same run, a **one-pass
floor**: per head, the logits and one ``exp`` pass over the N x K matrix (what any label step must
at least do). The ratio step/floor is what to compare
across noisy, shared machines.

Usage::

    OMP_WAIT_POLICY=PASSIVE python benchmarks/label_step.py            # N=60000 K=3000 T=3
    OMP_WAIT_POLICY=PASSIVE python benchmarks/label_step.py --compare-dense  # + dense kernel
    python benchmarks/label_step.py --n 6000 --k 300 --repeats 1     # quick
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from selflabel.methods.sela import SeLa, head_scores
from selflabel.ot import sinkhorn_equipartition, sparse_kernel


class FeatureTable(nn.Module):
    """A 'backbone' that returns fixed features for dataset indices packed in the images."""

    def __init__(self, feats: Tensor) -> None:
        super().__init__()
        self.out_dim = feats.shape[1]
        self.feats = feats

    def forward(self, x: Tensor) -> Tensor:
        return self.feats[x.view(-1).long()]


def floor_seconds(sela: SeLa, feats: Tensor) -> float:
    t0 = time.perf_counter()
    for head in sela.heads.heads():
        lp = head_scores(feats, head.weight, head.bias)
        lp.exp_()
        float(lp.sum())
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=60000)
    ap.add_argument("--k", type=int, default=3000)
    ap.add_argument("--heads", type=int, default=3)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--lam", type=float, default=25.0)
    ap.add_argument("--tol", type=float, default=1e-2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compare-dense", action="store_true",
                    help="also run every step with the dense kernel (numba hidden) and report "
                         "sparse/dense time ratios measured in the same run")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    # features with cluster structure, scaled so the heads' softmax is moderately confident
    centers = torch.randn(args.k, args.dim, generator=g)
    feats = centers[torch.randint(0, args.k, (args.n,), generator=g)]
    feats += 0.5 * torch.randn(args.n, args.dim, generator=g)
    table = FeatureTable(feats)
    ids = torch.arange(args.n, dtype=torch.float32)

    def label_data(augment: bool) -> Iterator[tuple[Tensor, Tensor]]:
        for chunk in torch.arange(args.n).split(8192):
            yield chunk, ids[chunk].view(-1, 1, 1, 1)

    load_s = _load_sparse_kernel() if sparse_kernel.available() else None
    print(json.dumps({"numba_load_s": load_s}), flush=True)
    rows: list[dict[str, Any]] = []
    kernels = ["sparse", "dense"] if args.compare_dense else ["auto"]
    for rep in range(args.repeats):
        row: dict[str, Any] = {"repeat": rep}
        state = g.get_state()  # every kernel kind solves the same problems
        for kind in kernels:
            g.set_state(state)
            with _kernel(kind):
                row.update(_cold_and_warm(args, table, feats, label_data, g, rep, kind))
        if args.compare_dense:
            for phase in ("cold", "warm"):
                row[f"{phase}_sparse_over_dense"] = round(
                    row[f"{phase}_s_sparse"] / row[f"{phase}_s_dense"], 3
                )
        rows.append(row)
        print(json.dumps(row), flush=True)
    keys = [k for k in rows[0] if k.endswith(("_s", "_floor")) or "_s_" in k or "over" in k]
    best = {k: min(r[k] for r in rows) for k in keys}
    print(json.dumps({"n": args.n, "k": args.k, "heads": args.heads, "lam": args.lam,
                      "tol": args.tol, "threads": args.threads, "best": best}))


def _load_sparse_kernel() -> float:
    """Import numba and load (or compile) the sparse kernel once, outside the timed steps: a
    training process pays this once (~0.4 s; ~3 s the very first time, then cached on disk)."""
    t0 = time.perf_counter()
    log_p = torch.log_softmax(3 * torch.randn(2000, 50), dim=1)
    saved = sparse_kernel.MIN_ENTRIES
    sparse_kernel.MIN_ENTRIES = 0  # this small problem would otherwise stay dense
    try:
        sinkhorn_equipartition(log_p, 25.0)
    finally:
        sparse_kernel.MIN_ENTRIES = saved
    return round(time.perf_counter() - t0, 3)


@contextlib.contextmanager
def _kernel(kind: str) -> Iterator[None]:
    """'dense' hides numba from the solver (its dense torch path); 'sparse'/'auto' leave it."""
    if kind == "sparse" and not sparse_kernel.available():
        raise SystemExit("--compare-dense needs numba (the sparse kernel)")
    saved = sparse_kernel.available
    if kind == "dense":
        sparse_kernel.available = lambda: False  # type: ignore[assignment]
    try:
        yield
    finally:
        sparse_kernel.available = saved  # type: ignore[assignment]


def _cold_and_warm(
    args: argparse.Namespace, table: FeatureTable, feats: Tensor, label_data: Any,
    g: torch.Generator, rep: int, kind: str,
) -> dict[str, Any]:
    sela = SeLa(
        table, n_clusters=args.k, n_heads=args.heads, dataset_size=args.n,
        label_data=label_data, lam=args.lam, tol=args.tol, seed=rep,
    )
    with torch.no_grad():
        for head in sela.heads.heads():
            head.weight.normal_(0, 0.1, generator=g)
    floor = floor_seconds(sela, feats)
    cold = sela.label_step()
    with torch.no_grad():  # a small change of the network between two label steps
        table.feats = feats + 0.05 * torch.randn(feats.shape, generator=g)
    warm = sela.label_step()
    table.feats = feats
    sizes = torch.bincount(sela.labels[:, 0], minlength=args.k)
    sfx = "" if kind == "auto" else f"_{kind}"
    return {
        f"floor_s{sfx}": round(floor, 3),
        f"cold_s{sfx}": round(cold["label_step_seconds"], 3),
        f"warm_s{sfx}": round(warm["label_step_seconds"], 3),
        f"cold_iters{sfx}": cold["label_solver_iters"],
        f"warm_iters{sfx}": warm["label_solver_iters"],
        f"cold_error{sfx}": cold["label_solver_error"],
        f"warm_error{sfx}": warm["label_solver_error"],
        f"cold_over_floor{sfx}": round(cold["label_step_seconds"] / floor, 2),
        f"warm_over_floor{sfx}": round(warm["label_step_seconds"] / floor, 2),
        f"cluster_size_min_max{sfx}": [int(sizes.min()), int(sizes.max())],
    }


if __name__ == "__main__":
    main()
