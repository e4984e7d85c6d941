"""SeLa's imbalance study (paper Table 8) at CPU scale, on Fashion-MNIST.

Three versions of the training set — ``full``; ``light`` (half of class 0 removed); ``heavy``
(10 % of class 1, 20 % of class 2, …, 90 % of class 9 removed) — are each self-labelled by SeLa
with (a) the equipartition solver (``ot``) and (b) spherical k-means on the label-step features in
its place (``kmeans``; the head is re-initialised after each clustering, as in DeepCluster, since
k-means cluster ids carry no meaning from one step to the next). The backbone is then scored on
the test split by weighted kNN and a linear probe (features of the training version → test).

Usage (CPU-sized defaults; the paper's setting is far larger)::

    OMP_WAIT_POLICY=PASSIVE python benchmarks/imbalance.py --per-class 600 --epochs 6
    python benchmarks/imbalance.py --per-class 100 --epochs 1 --test 500     # smoke run

Prints one JSON line per (version, labeler) and a markdown table at the end.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import torch
from torch import Tensor

from selflabel.cluster import KMeans
from selflabel.config import load_config
from selflabel.data import EvalTransform, ImageSource, SubsetSource, load_source, make_loader
from selflabel.engine import Trainer, build_optimizer, cosine_schedule
from selflabel.evaluate import knn_accuracy, linear_probe
from selflabel.methods.sela import SeLa
from selflabel.run.build import (
    ResumableAugment,
    build_augment,
    build_backbone_from,
    build_label_data,
)


class KMeansSeLa(SeLa):
    """SeLa with spherical k-means on the label-step features in place of the OT solver."""

    def assign_head(self, h: int, feats: Tensor, group: Any) -> tuple[Tensor, int, float]:
        x = torch.nn.functional.normalize(feats.mean(0), dim=1).cpu().numpy()
        km = KMeans(self.n_clusters, n_iter=20, seed=h, spherical=True, use_gpu=False).fit(x)
        head = self.heads.heads()[h]
        torch.nn.init.normal_(head.weight, 0.0, 0.01)
        torch.nn.init.zeros_(head.bias)
        return torch.from_numpy(km.labels_), 0, 0.0


def version_indices(labels: np.ndarray, version: str, per_class: int, seed: int) -> np.ndarray:
    """Indices of one training version (``per_class`` images per class before removal)."""
    rng = np.random.default_rng(seed)
    keep = []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(labels == c))[:per_class]
        removed = 0.0
        if version == "light" and c == 0:
            removed = 0.5
        elif version == "heavy":
            removed = 0.1 * c
        keep.append(idx[: round(len(idx) * (1.0 - removed))])
    return np.sort(np.concatenate(keep))


@torch.no_grad()
def features(method: SeLa, source: ImageSource) -> np.ndarray:
    t = EvalTransform(mean=source.mean, std=source.std)
    method.eval()
    out = []
    for chunk in torch.arange(len(source)).split(1024):
        _, images, _ = source.get_batch(chunk)
        out.append(method.features(t(images)).float())
    method.train()
    return torch.cat(out).numpy()


def train_one(
    source: ImageSource, labeler: str, args: argparse.Namespace, run_dir: str
) -> SeLa:
    cfg = load_config("demo-sela", [
        f"train.epochs={args.epochs}", f"model.n_prototypes=[{args.k}]",
        f"sela.n_heads={args.heads}", f"sela.label_steps={args.label_steps}",
        f"data.batch_size={args.batch_size}", f"seed={args.seed}",
    ])
    cls = SeLa if labeler == "ot" else KMeansSeLa
    torch.manual_seed(args.seed)
    method = cls(
        build_backbone_from(cfg, 1), n_clusters=args.k, dataset_size=len(source),
        label_data=build_label_data(cfg, source), n_heads=args.heads,
        label_steps=args.label_steps, lam=cfg.sela.lam, tol=cfg.sela.tol, seed=args.seed,
    )
    loader = make_loader(source, args.batch_size, shuffle=True, drop_last=True, seed=args.seed)
    total = len(loader) * args.epochs
    lr = cfg.optim.lr * args.batch_size / 256
    opt = build_optimizer("sgd", method, lr=lr, weight_decay=cfg.optim.weight_decay, momentum=0.9)
    trainer = Trainer(
        method, loader, ResumableAugment(build_augment(cfg, source)), opt,
        cosine_schedule(lr, lr * 1e-3, total, len(loader)), epochs=args.epochs, out_dir=run_dir,
        progress=False, tensorboard=False, resume=False, seed=args.seed, monitor=False,
    )
    trainer.fit()
    return method


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-class", type=int, default=600)
    ap.add_argument("--test", type=int, default=2000, help="test images used (0: all 10k)")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--k", type=int, default=30)
    ap.add_argument("--heads", type=int, default=1)
    ap.add_argument("--label-steps", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="/tmp/selflabel-imbalance")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    train_all = load_source("fashion-mnist", split="train")
    test_all = load_source("fashion-mnist", split="test")
    test_idx = np.arange(len(test_all))
    if args.test:
        test_idx = np.random.default_rng(1).permutation(len(test_all))[: args.test]
    test = SubsetSource(test_all, torch.from_numpy(np.sort(test_idx)))
    y_all = train_all.labels.numpy()
    rows = []
    for version in ("full", "light", "heavy"):
        idx = version_indices(y_all, version, args.per_class, args.seed)
        source = SubsetSource(train_all, torch.from_numpy(idx))
        for labeler in ("ot", "kmeans"):
            t0 = time.perf_counter()
            method = train_one(source, labeler, args, f"{args.out}/{version}-{labeler}")
            f_tr, f_te = features(method, source), features(method, test)
            y_tr, y_te = source.labels.numpy(), test.labels.numpy()
            knn = knn_accuracy(f_tr, y_tr, f_te, y_te, k=20, temperature=0.07)
            lin = linear_probe(f_tr, y_tr, f_te, y_te, epochs=20, n_classes=10, seed=args.seed)
            row = {
                "version": version, "labeler": labeler, "n_train": len(source),
                "knn": round(float(knn["top1"]), 2), "linear": round(float(lin["top1"]), 2),
                "seconds": round(time.perf_counter() - t0, 1),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\n| version | n train | kNN (ot) | kNN (k-means) | linear (ot) | linear (k-means) |")
    print("|---|---|---|---|---|---|")
    for version in ("full", "light", "heavy"):
        r = {x["labeler"]: x for x in rows if x["version"] == version}
        print(f"| {version} | {r['ot']['n_train']} | {r['ot']['knn']} | {r['kmeans']['knn']} | "
              f"{r['ot']['linear']} | {r['kmeans']['linear']} |")


if __name__ == "__main__":
    main()
