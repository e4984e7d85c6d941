"""The result of a clustering benchmark: per-seed scores, mean ± std, protocol and timings.

Example::

    >>> r = ClusterBenchmarkResult(
    ...     protocol={"k": 2, "n_clusters": 2, "pca_dim": None, "l2_normalize": True,
    ...               "seeds": [0, 1], "overcluster": 1.0, "scored_on": "train"},
    ...     per_seed=[{"seed": 0, "acc": 0.5, "nmi": 0.1, "ami": 0.1, "ari": 0.0},
    ...               {"seed": 1, "acc": 0.7, "nmi": 0.3, "ami": 0.3, "ari": 0.2}],
    ...     timings={"kmeans": 0.1, "total": 0.2})
    >>> round(r.mean()["acc"], 3), round(r.std()["acc"], 3)
    (0.6, 0.1)
    >>> print(r.table().splitlines()[2])
    ACC        60.00 ±  10.00     50.00     70.00
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from selflabel.cluster.scores import METRICS

__all__ = ["ClusterBenchmarkResult"]


@dataclass
class ClusterBenchmarkResult:
    """Scores of :func:`~selflabel.cluster.cluster_benchmark`.

    Attributes:
        protocol: how the numbers were made (k, clusters, PCA size, L2, seeds, over-clustering,
            points used by k-means, engine, where it was scored, ...).
        per_seed: one dict per seed: ``seed``, ``acc``, ``nmi``, ``ami``, ``ari`` (fractions) and
            that seed's k-means objective and stage seconds.
        timings: wall-clock seconds per stage, summed over seeds, and ``total``.
        cpu_timings: the same in process CPU seconds (all threads; less sensitive than wall-clock
            time to other programs sharing the machine).

    ``mean()``/``std()`` summarise each metric over seeds (``std`` is numpy's population standard
    deviation, ``ddof=0``); ``table()`` prints them in percent.
    """

    protocol: dict[str, Any]
    per_seed: list[dict[str, float]]
    timings: dict[str, float] = field(default_factory=dict)
    cpu_timings: dict[str, float] = field(default_factory=dict)

    def values(self, metric: str) -> np.ndarray:
        """The per-seed values of one metric (``"acc"``, ``"nmi"``, ``"ami"`` or ``"ari"``)."""
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; choose from {METRICS}")
        return np.array([float(s[metric]) for s in self.per_seed], dtype=np.float64)

    def mean(self) -> dict[str, float]:
        """Mean over seeds of every metric."""
        return {m: float(self.values(m).mean()) for m in METRICS}

    def std(self) -> dict[str, float]:
        """Standard deviation over seeds (``ddof=0``) of every metric."""
        return {m: float(self.values(m).std()) for m in METRICS}

    def table(self) -> str:
        """A plain-text table: metric, mean ± std, min and max over seeds, in percent."""
        p = self.protocol
        pca = f"PCA {p['pca_dim']}" if p.get("pca_dim") else "no PCA"
        l2 = "L2-normalised" if p.get("l2_normalize") else "not normalised"
        n_seeds = len(self.per_seed)
        head = (f"k={p.get('k')} → {p.get('n_clusters')} clusters (overcluster "
                f"{p.get('overcluster')}), {pca}, {l2}, {n_seeds} seed{'s' * (n_seeds != 1)}, "
                f"scored on {p.get('scored_on')}")
        lines = [head, f"{'metric':<8} {'mean ± std (%)':>16} {'min':>9} {'max':>9}"]
        mean, std = self.mean(), self.std()
        for m in METRICS:
            v = self.values(m) * 100
            lines.append(f"{m.upper():<8} {mean[m] * 100:>7.2f} ± {std[m] * 100:>6.2f} "
                         f"{v.min():>9.2f} {v.max():>9.2f}")
        if self.timings:
            parts = ", ".join(f"{k} {v:.1f}s" for k, v in self.timings.items())
            lines.append(f"time: {parts}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def to_dict(self) -> dict[str, Any]:
        """Everything as plain JSON-able Python: protocol, per-seed, mean, std, timings."""
        return {
            "protocol": _plain(self.protocol),
            "per_seed": _plain(self.per_seed),
            "mean": self.mean(),
            "std": self.std(),
            "timings": _plain(self.timings),
            "cpu_timings": _plain(self.cpu_timings),
        }

    def to_json(self, path: str | os.PathLike[str] | None = None, indent: int = 2) -> str:
        """The :meth:`to_dict` as JSON text, also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=indent)
        if path is not None:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text + "\n")
        return text

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClusterBenchmarkResult:
        """Rebuild a result from :meth:`to_dict` output (mean/std are recomputed)."""
        return cls(dict(data["protocol"]), [dict(s) for s in data["per_seed"]],
                   dict(data.get("timings", {})), dict(data.get("cpu_timings", {})))


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
