"""SeLa label step at ImageNet-like shape on the CPU: N samples, K clusters, T heads.

Times :meth:`selflabel.methods.sela.SeLa.label_step`'s solver part — per head: logits from fixed
features, then the equipartition solver (cold, then warm-started from the previous potentials after
a small change of the features, as between two label steps) — and, in the same run, a **one-pass
floor**: per head, the logits and one ``exp`` pass over the N x K matrix (what any label step must
at least do). The ratio step/floor is what to compare
across noisy, shared machines.

Usage::

    OMP_WAIT_POLICY=PASSIVE python benchmarks/label_step.py            # N=60000 K=3000 T=3
    python benchmarks/label_step.py --n 6000 --k 300 --repeats 1     # quick
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from selflabel.methods.sela import SeLa, head_scores


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

    rows: list[dict[str, Any]] = []
    for rep in range(args.repeats):
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
        rows.append({
            "repeat": rep,
            "floor_s": round(floor, 3),
            "cold_s": round(cold["label_step_seconds"], 3),
            "warm_s": round(warm["label_step_seconds"], 3),
            "cold_iters": cold["label_solver_iters"],
            "warm_iters": warm["label_solver_iters"],
            "cold_error": cold["label_solver_error"],
            "warm_error": warm["label_solver_error"],
            "cold_over_floor": round(cold["label_step_seconds"] / floor, 2),
            "warm_over_floor": round(warm["label_step_seconds"] / floor, 2),
            "cluster_size_min_max": [int(sizes.min()), int(sizes.max())],
        })
        print(json.dumps(rows[-1]), flush=True)
    best = {
        k: min(r[k] for r in rows)
        for k in ("floor_s", "cold_s", "warm_s", "cold_over_floor", "warm_over_floor")
    }
    print(json.dumps({"n": args.n, "k": args.k, "heads": args.heads, "lam": args.lam,
                      "tol": args.tol, "threads": args.threads, "best": best}))


if __name__ == "__main__":
    main()
