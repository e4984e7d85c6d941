"""Benchmark: selflabel's clustering benchmark vs the seed paper's pipeline rebuilt in scikit-learn.

Both pipelines run on the same features in the same run, each in a fresh subprocess so that its
peak resident memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``; tracemalloc cannot see numpy
or faiss buffers) is its own:

* **selflabel** — :func:`selflabel.cluster.cluster_benchmark` on the memory-mapped ``.npy``:
  streamed L2 + exact PCA, faiss k-means on all points, Hungarian on the train labels.
* **scikit-learn** (the seed paper's pipeline) — features loaded and L2-normalised in memory,
  ``IncrementalPCA(n_components, batch_size=max(4096, 2·D))``, ``MiniBatchKMeans(k)`` with its
  defaults, Hungarian (``linear_sum_assignment`` on a vectorised contingency table, so matching
  is not where the difference comes from).

Features (deterministic from ``--seed``): ``k`` classes whose means lie in a random
``--subspace``-dimensional subspace of R^D (``B z_c``, ``B`` orthonormal, ``z_c ~ N(0, s²)``), plus
isotropic Gaussian noise, a positive offset and a ReLU, like pooled CNN activations; equal class
sizes, rows shuffled; a validation set of ``n/10`` rows from the same classes. They are written
chunk by chunk to ``.npy`` files and memory-mapped.

Usage::

    python benchmarks/cluster_eval.py                  # N=100k, D=2048, k=1000, PCA 128
    python benchmarks/cluster_eval.py --quick          # N=20k, D=512, k=100: a minute
    python benchmarks/cluster_eval.py --skip-sklearn   # only selflabel
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def generate(out: Path, n: int, dim: int, k: int, subspace: int, spread: float, noise: float,
             seed: int) -> dict[str, Any]:
    """Write train/val features and labels to ``out`` (chunked, never all in memory)."""
    from numpy.lib.format import open_memmap

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((dim, subspace)))
    means = (rng.standard_normal((k, subspace)) * spread) @ basis.T
    offset = 0.5
    for name, rows in (("train", n), ("val", max(k, n // 10))):
        labels = rng.permutation(np.arange(rows) % k)
        np.save(out / f"{name}_labels.npy", labels.astype(np.int64))
        feats = open_memmap(out / f"{name}_features.npy", mode="w+", dtype=np.float32,
                            shape=(rows, dim))
        step = 8192
        for start in range(0, rows, step):
            y = labels[start : start + step]
            chunk = rng.standard_normal((y.shape[0], dim), dtype=np.float32) * noise
            chunk += (means[y] + offset).astype(np.float32)
            np.maximum(chunk, 0.0, out=chunk)
            feats[start : start + y.shape[0]] = chunk
        feats.flush()
        del feats
    return {"n": n, "n_val": max(k, n // 10), "dim": dim, "k": k, "subspace": subspace,
            "spread": spread, "noise": noise, "seed": seed}


def _peak_rss_bytes() -> int:
    """``ru_maxrss`` of this process (Linux reports KiB)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _vm_hwm_bytes() -> int | None:
    """This process's own resident high-water mark (VmHWM), reset at exec; None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def worker_selflabel(data: Path, k: int, pca_dim: int, seed: int) -> dict[str, Any]:
    from selflabel.cluster import cluster_benchmark

    rss0 = _vm_hwm_bytes()
    x = np.load(data / "train_features.npy", mmap_mode="r")
    xv = np.load(data / "val_features.npy", mmap_mode="r")
    y = np.load(data / "train_labels.npy")
    yv = np.load(data / "val_labels.npy")
    r = cluster_benchmark(x, y, xv, yv, k=k, pca_dim=pca_dim, seeds=[seed], progress=False)
    s = r.per_seed[0]

    def stages(t: dict[str, float]) -> dict[str, float]:
        return {"load+l2": 0.0, "pca": t["pca_fit"] + t["pca_project"], "kmeans": t["kmeans"],
                "match+assign+scores": t["match"] + t["assign"] + t["scores"],
                "total": t["total"]}

    return {"acc": s["acc"], "nmi": s["nmi"], "ami": s["ami"], "ari": s["ari"],
            "seconds": stages(r.timings), "cpu_seconds": stages(r.cpu_timings),
            "detail": r.timings, "rss_after_imports": rss0,
            "kmeans_points": r.protocol["kmeans_points"]}


def worker_sklearn(data: Path, k: int, pca_dim: int, seed: int, log: Path) -> dict[str, Any]:
    from scipy.optimize import linear_sum_assignment
    from sklearn.cluster import MiniBatchKMeans
    from sklearn.decomposition import IncrementalPCA
    from sklearn.metrics import normalized_mutual_info_score
    from sklearn.metrics.cluster import contingency_matrix
    from sklearn.preprocessing import normalize

    rss0 = _vm_hwm_bytes()
    sec: dict[str, float] = {}
    cpu: dict[str, float] = {}
    c0 = 0.0

    def note(stage: str, t0: float) -> None:
        sec[stage] = time.perf_counter() - t0
        cpu[stage] = time.process_time() - c0
        with open(log, "a") as f:  # partial results survive a timeout
            f.write(json.dumps({"stage": stage, "seconds": sec[stage],
                                "cpu_seconds": cpu[stage]}) + "\n")

    start, cpu_start = time.perf_counter(), time.process_time()
    t0, c0 = time.perf_counter(), time.process_time()
    x = normalize(np.load(data / "train_features.npy"))
    xv = normalize(np.load(data / "val_features.npy"))
    y = np.load(data / "train_labels.npy")
    yv = np.load(data / "val_labels.npy")
    note("load+l2", t0)
    t0, c0 = time.perf_counter(), time.process_time()
    ipca = IncrementalPCA(n_components=pca_dim, batch_size=max(4096, 2 * x.shape[1]))
    ipca.fit(x)
    z = ipca.transform(x).astype(np.float32)
    zv = ipca.transform(xv).astype(np.float32)
    note("pca", t0)
    t0, c0 = time.perf_counter(), time.process_time()
    km = MiniBatchKMeans(n_clusters=k, random_state=seed).fit(z)
    note("kmeans", t0)
    t0, c0 = time.perf_counter(), time.process_time()
    pred_tr = km.labels_
    pred_va = km.predict(zv)
    table = contingency_matrix(y, pred_tr)
    rows, cols = linear_sum_assignment(table, maximize=True)
    classes = np.unique(y)
    mapping = dict(zip(np.unique(pred_tr)[cols].tolist(), classes[rows].tolist(), strict=True))
    mapped = np.array([mapping.get(int(c), -1) for c in pred_va])
    acc = float(np.mean(mapped == yv))
    nmi = float(normalized_mutual_info_score(yv, pred_va))
    note("match+assign+scores", t0)
    sec["total"] = time.perf_counter() - start
    cpu["total"] = time.process_time() - cpu_start
    return {"acc": acc, "nmi": nmi, "seconds": sec, "cpu_seconds": cpu, "rss_after_imports": rss0}


def worker_kmeans_only(data: Path, k: int, pca_dim: int, seed: int) -> dict[str, Any]:
    """MiniBatchKMeans (the seed paper's k-means) on selflabel's exact PCA projection: isolates
    the k-means quality when the full scikit-learn pipeline is too slow to finish."""
    from sklearn.cluster import MiniBatchKMeans

    from selflabel.cluster import StreamingPCA, clustering_scores, match_clusters

    x = np.load(data / "train_features.npy", mmap_mode="r")
    xv = np.load(data / "val_features.npy", mmap_mode="r")
    y = np.load(data / "train_labels.npy")
    yv = np.load(data / "val_labels.npy")
    pca = StreamingPCA(pca_dim).fit(x)
    z, zv = pca.transform(x), pca.transform(xv)
    t0, c0 = time.perf_counter(), time.process_time()
    km = MiniBatchKMeans(n_clusters=k, random_state=seed).fit(z)
    sec, cpu = time.perf_counter() - t0, time.process_time() - c0
    s = clustering_scores(yv, km.predict(zv), mapping=match_clusters(y, km.labels_))
    return {**s, "kmeans_seconds": sec, "kmeans_cpu_seconds": cpu}


def run_worker(kind: str, args: argparse.Namespace, data: Path, timeout: float
               ) -> dict[str, Any]:
    log = data / f"{kind}_stages.jsonl"
    log.unlink(missing_ok=True)
    cmd = [sys.executable, __file__, "--worker", kind, "--data", str(data), "--k", str(args.k),
           "--pca-dim", str(args.pca_dim), "--seed", str(args.seed)]
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                              check=False)
    except subprocess.TimeoutExpired:
        done = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        return {"timed_out_after_s": timeout, "stages_done": done}
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} worker failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=2048)
    p.add_argument("--k", type=int, default=1000)
    p.add_argument("--pca-dim", type=int, default=128)
    p.add_argument("--subspace", type=int, default=64)
    p.add_argument("--spread", type=float, default=1.0)
    p.add_argument("--noise", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="N=20k, D=512, k=100")
    p.add_argument("--skip-sklearn", action="store_true")
    p.add_argument("--sklearn-timeout", type=float, default=3600.0)
    p.add_argument("--workdir", type=Path, default=None, help="where the .npy files go")
    p.add_argument("--json", type=Path, default=None, help="write all numbers here")
    p.add_argument("--kmeans-only", action="store_true",
                   help="on existing --workdir data: only MiniBatchKMeans on the exact PCA")
    p.add_argument("--worker", choices=["generate", "selflabel", "sklearn", "kmeans-only"],
                   help=argparse.SUPPRESS)
    p.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.worker == "generate":
        spec = generate(args.data, args.n, args.dim, args.k, args.subspace, args.spread,
                        args.noise, args.seed)
        print(json.dumps(spec))
        return
    if args.worker:
        if args.worker == "selflabel":
            res = worker_selflabel(args.data, args.k, args.pca_dim, args.seed)
        elif args.worker == "kmeans-only":
            res = worker_kmeans_only(args.data, args.k, args.pca_dim, args.seed)
        else:
            res = worker_sklearn(args.data, args.k, args.pca_dim, args.seed,
                                 args.data / "sklearn_stages.jsonl")
        res["peak_rss"] = _peak_rss_bytes()
        res["vm_hwm"] = _vm_hwm_bytes()
        print(json.dumps(res))
        return

    if args.quick:
        args.n, args.dim, args.k = 20_000, 512, 100
    if args.kmeans_only:
        res = run_worker("kmeans-only", args, args.workdir, timeout=3600)
        print("MiniBatchKMeans on exact PCA:", json.dumps(res))
        return
    tmp = tempfile.TemporaryDirectory() if args.workdir is None else None
    data = Path(tmp.name) if tmp is not None else args.workdir
    t0 = time.perf_counter()
    # generated in a child process: the parent stays small, so the workers' ru_maxrss (which
    # Linux carries over from the forking parent) is their own
    gen = subprocess.run(
        [sys.executable, __file__, "--worker", "generate", "--data", str(data), "--n", str(args.n),
         "--dim", str(args.dim), "--k", str(args.k), "--subspace", str(args.subspace),
         "--spread", str(args.spread), "--noise", str(args.noise), "--seed", str(args.seed)],
        capture_output=True, text=True, check=True)
    spec = json.loads(gen.stdout.strip().splitlines()[-1])
    feat_bytes = sum((data / f"{s}_features.npy").stat().st_size for s in ("train", "val"))
    print(f"features: {spec} ({feat_bytes / 2**20:.0f} MiB on disk, generated in "
          f"{time.perf_counter() - t0:.1f}s)", flush=True)

    results: dict[str, Any] = {"spec": spec, "feature_bytes": feat_bytes,
                               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                               "cpus": os.cpu_count()}
    results["selflabel"] = run_worker("selflabel", args, data, timeout=3600)
    print("selflabel:", json.dumps(results["selflabel"]), flush=True)
    if not args.skip_sklearn:
        results["sklearn"] = run_worker("sklearn", args, data, timeout=args.sklearn_timeout)
        print("sklearn:", json.dumps(results["sklearn"]), flush=True)

    ours = results["selflabel"]
    base = results.get("sklearn", {})
    rows = [("selflabel", ours)] + ([("scikit-learn", base)] if "seconds" in base else [])
    stages = ("load+l2", "pca", "kmeans", "match+assign+scores", "total")
    print("\n| pipeline | " + " | ".join(f"{st} s (cpu s)" for st in stages)
          + " | ACC | NMI | peak RSS / features |")
    print("|---" * (len(stages) + 4) + "|")
    for name, r in rows:
        cells = [f"{r['seconds'][st]:.1f} ({r['cpu_seconds'][st]:.1f})" for st in stages]
        print(f"| {name} | " + " | ".join(cells) + f" | {r['acc'] * 100:.2f} | "
              f"{r['nmi'] * 100:.2f} | {r['vm_hwm'] / feat_bytes:.2f} |")
    if "seconds" in base:
        results["speedup_wall"] = base["seconds"]["total"] / ours["seconds"]["total"]
        results["speedup_cpu"] = base["cpu_seconds"]["total"] / ours["cpu_seconds"]["total"]
        print(f"\nspeed-up, sklearn / selflabel end to end: {results['speedup_wall']:.1f}× wall, "
              f"{results['speedup_cpu']:.1f}× CPU time")
    elif base:
        print(f"\nscikit-learn did not finish: {json.dumps(base)}")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
