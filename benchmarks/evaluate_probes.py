"""Benchmark: selflabel's kNN and linear probes against common baselines, in the same run.

Features: Fashion-MNIST (60k train, 10k test) pixels through a fixed random projection to
``--dim`` dimensions and a ReLU (deterministic from ``--seed``) — a stand-in for pooled CNN
features; with ``--features DIR`` any ``DIR/train.npy``/``test.npy`` (+ ``.labels.npy``) instead.

kNN (k=200, T=0.07; neighbours searched once, then the three default settings voted):

* **selflabel** — :func:`selflabel.evaluate.knn_accuracy`: train read in chunks, running top-k;
  shown with the default chunk (65536 rows) and a small chunk (8192 rows, as for memory-mapped
  ImageNet features);
* **DINO-style baseline** — test batches of 1024 against the whole train matrix in memory
  (``B × N_train`` similarities, ``topk``), the usual implementation;
* **faiss** — exact ``IndexFlatIP`` search on L2-normalised float32 features.

Linear probe (same recipe: standardised features, SGD momentum 0.9, batch 256, lr 0.1 cosine,
``--epochs``, weight decays ``0, 1e-5, 1e-4, 1e-3, 1e-2`` swept on a 10 % held-out split, then
retrained on all of train):

* **selflabel** — :func:`selflabel.evaluate.linear_probe`: all candidates stacked in one pass,
  gradient written out;
* **baseline** — ``nn.Linear`` + autograd + ``torch.optim.SGD``, one run per candidate.

Every timing is the median of ``--repeats`` runs; ratios are baseline / selflabel.

Usage::

    python benchmarks/evaluate_probes.py              # full Fashion-MNIST, dim 512
    python benchmarks/evaluate_probes.py --quick      # 20k train / 5k test
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from selflabel.data.idx import find_idx_file, read_idx
from selflabel.data.registry import find_fashion_mnist
from selflabel.evaluate import DEFAULT_WEIGHT_DECAYS, knn_accuracy, linear_probe
from selflabel.evaluate.knn import DEFAULT_KNN_SETTINGS

WDS = DEFAULT_WEIGHT_DECAYS


def fashion_features(dim: int, seed: int) -> tuple[np.ndarray, ...]:
    root = find_fashion_mnist()
    if root is None:
        raise SystemExit("Fashion-MNIST IDX files not found (apt install dataset-fashion-mnist)")

    def load(stem: str) -> np.ndarray:
        path = find_idx_file(root, stem)
        if path is None:
            raise SystemExit(f"{stem} missing under {root}")
        return read_idx(path)

    rng = np.random.default_rng(seed)
    proj = rng.normal(size=(784, dim)).astype(np.float32) / 28.0
    xtr = load("train-images-idx3-ubyte").reshape(-1, 784).astype(np.float32) / 255.0
    xte = load("t10k-images-idx3-ubyte").reshape(-1, 784).astype(np.float32) / 255.0
    ytr = load("train-labels-idx1-ubyte").astype(np.int64)
    yte = load("t10k-labels-idx1-ubyte").astype(np.int64)
    return np.maximum(xtr @ proj, 0), ytr, np.maximum(xte @ proj, 0), yte


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def knn_dino_style(train: np.ndarray, ytr: np.ndarray, test: np.ndarray, yte: np.ndarray) -> float:
    """Top-1 (%) of k=200, T=0.07 with the whole train matrix in memory (the usual code)."""
    a = torch.nn.functional.normalize(torch.from_numpy(train), dim=1)
    labels = torch.from_numpy(ytr)
    correct = 0
    for s in range(0, test.shape[0], 1024):
        q = torch.nn.functional.normalize(torch.from_numpy(test[s : s + 1024]), dim=1)
        sim, idx = (q @ a.T).topk(200, dim=1)
        votes = torch.zeros(q.shape[0], 10).scatter_add_(1, labels[idx], (sim / 0.07).exp())
        correct += int((votes.argmax(1) == torch.from_numpy(yte[s : s + 1024])).sum())
    return 100.0 * correct / test.shape[0]


def knn_faiss(train: np.ndarray, ytr: np.ndarray, test: np.ndarray, yte: np.ndarray) -> float:
    import faiss

    a = train / np.linalg.norm(train, axis=1, keepdims=True)
    q = test / np.linalg.norm(test, axis=1, keepdims=True)
    index = faiss.IndexFlatIP(a.shape[1])
    index.add(np.ascontiguousarray(a, dtype=np.float32))
    sim, idx = index.search(np.ascontiguousarray(q, dtype=np.float32), 200)
    votes = np.zeros((q.shape[0], 10))
    np.add.at(votes, (np.arange(q.shape[0])[:, None], ytr[idx]), np.exp(sim / 0.07))
    return 100.0 * float((votes.argmax(1) == yte).mean())


def linear_autograd(
    train: np.ndarray, ytr: np.ndarray, test: np.ndarray, yte: np.ndarray, epochs: int
) -> float:
    """The same recipe with nn.Linear, autograd and torch.optim.SGD, one run per decay."""
    mean, std = train.mean(0), train.std(0)
    std[std < 1e-6] = 1.0
    xtr = torch.from_numpy((train - mean) / std)
    xte = torch.from_numpy((test - mean) / std)
    ytr_t, yte_t = torch.from_numpy(ytr), torch.from_numpy(yte)
    g = torch.Generator().manual_seed(0)

    def fit(idx: torch.Tensor, wd: float) -> torch.nn.Linear:
        layer = torch.nn.Linear(xtr.shape[1], 10)
        torch.nn.init.zeros_(layer.weight)
        torch.nn.init.zeros_(layer.bias)
        opt = torch.optim.SGD(
            [{"params": [layer.weight], "weight_decay": wd}, {"params": [layer.bias]}],
            lr=0.1, momentum=0.9,
        )
        total, step = epochs * math.ceil(len(idx) / 256), 0
        for _ in range(epochs):
            order = idx[torch.randperm(len(idx), generator=g)]
            for b in range(0, len(order), 256):
                rows = order[b : b + 256]
                loss = torch.nn.functional.cross_entropy(layer(xtr[rows]), ytr_t[rows])
                opt.zero_grad()
                loss.backward()
                for group in opt.param_groups:
                    group["lr"] = 0.05 * (1 + math.cos(math.pi * step / total))
                opt.step()
                step += 1
        return layer

    perm = torch.randperm(len(xtr), generator=g)
    n_val = len(xtr) // 10
    val, fit_idx = perm[:n_val], perm[n_val:]
    scores = []
    for wd in WDS:
        layer = fit(fit_idx, wd)
        with torch.no_grad():
            scores.append(float((layer(xtr[val]).argmax(1) == ytr_t[val]).float().mean()))
    best = WDS[int(np.argmax(scores))]
    final = fit(torch.arange(len(xtr)), best)
    with torch.no_grad():
        return 100.0 * float((final(xte).argmax(1) == yte_t).float().mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="20k train, 5k test")
    p.add_argument("--features", type=Path, default=None)
    p.add_argument("--skip-linear", action="store_true")
    args = p.parse_args()
    if args.features is not None:
        d = args.features
        xtr, xte = np.load(d / "train.npy"), np.load(d / "test.npy")
        ytr, yte = np.load(d / "train.labels.npy"), np.load(d / "test.labels.npy")
    else:
        xtr, ytr, xte, yte = fashion_features(args.dim, args.seed)
    if args.quick:
        xtr, ytr, xte, yte = xtr[:20000], ytr[:20000], xte[:5000], yte[:5000]
    print(f"features: train {xtr.shape}, test {xte.shape}; torch threads {torch.get_num_threads()}")

    rows = []
    def ours(chunk: int) -> float:
        return float(knn_accuracy(xtr, ytr, xte, yte, chunk_size=chunk)["results"][1]["top1"])

    for name, fn in [
        ("selflabel kNN, chunk 65536", lambda: ours(65536)),
        ("selflabel kNN, chunk 8192", lambda: ours(8192)),
        ("DINO-style, full train in memory", lambda: knn_dino_style(xtr, ytr, xte, yte)),
        ("faiss IndexFlatIP", lambda: knn_faiss(xtr, ytr, xte, yte)),
    ]:
        sec, top1 = timed(fn, args.repeats)
        rows.append((name, sec, top1))
    base = rows[0][1]
    print(f"\nkNN k=200 T=0.07 top-1 (selflabel runs all of {list(DEFAULT_KNN_SETTINGS)})")
    for name, sec, top1 in rows:
        print(f"  {name:<36} {sec:7.2f} s  ratio to selflabel {sec / base:5.2f}  top-1 {top1:.2f}")

    if not args.skip_linear:
        sec_ours, ours = timed(lambda: linear_probe(xtr, ytr, xte, yte, epochs=args.epochs),
                               args.repeats)
        sec_base, base_top1 = timed(lambda: linear_autograd(xtr, ytr, xte, yte, args.epochs),
                                    args.repeats)
        print(f"\nlinear probe, {args.epochs} epochs, sweep {list(WDS)} + retrain")
        print(f"  selflabel (stacked, explicit grad) {sec_ours:7.2f} s  top-1 {ours['top1']:.2f} "
              f"(wd {ours['weight_decay']:g})")
        print(f"  autograd nn.Linear, sequential    {sec_base:7.2f} s  top-1 {base_top1:.2f}  "
              f"ratio baseline/selflabel {sec_base / sec_ours:.2f}")


if __name__ == "__main__":
    main()
