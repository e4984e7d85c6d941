"""Read what ``selflabel train`` leaves in a run directory, for the report.

A finished run directory holds ``metrics.json`` (required here) and usually ``config.yaml``,
``labels.csv`` (``index, cluster, confidence, prototype[, path][, label]``), ``metrics.csv`` (the
engine's log: rows of ``kind`` train/epoch/eval with ``iteration``, ``loss``, ``lr``,
``code_entropy``, ``clusters_used``, ...) and ``eval_history.json``. Missing optional files give
empty fields, and the report says what is missing.

Example::

    run = read_run("runs/swav-demo-20260101-120000")
    run.metrics["acc"], run.labels.cluster[:5] if run.labels else None
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from selflabel.config import RunConfig, load_config

__all__ = ["LabelsTable", "RunFiles", "read_labels_csv", "read_run", "read_training_log"]

#: training-log columns drawn as curves, in this order
TRAINING_COLUMNS = ("loss", "lr", "code_entropy", "clusters_used")


@dataclass(frozen=True)
class LabelsTable:
    """The columns of ``labels.csv``; ``label`` is ``None`` when the run had no ground truth."""

    index: NDArray[np.int64]
    cluster: NDArray[np.int64]
    confidence: NDArray[np.float32]
    prototype: NDArray[np.int64]
    label: NDArray[np.int64] | None = None
    path: list[str] | None = None

    def __len__(self) -> int:
        return int(self.index.shape[0])


@dataclass
class RunFiles:
    """Everything the report reads from one run directory."""

    run_dir: Path
    metrics: dict[str, Any]
    config_text: str | None = None
    config: RunConfig | None = None
    config_error: str | None = None
    labels: LabelsTable | None = None
    training_log: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)


def read_run(run_dir: str | Path) -> RunFiles:
    """Read a finished run directory; ``ValueError`` when it has no ``metrics.json``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"run directory {str(run_dir)!r} does not exist")
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.is_file():
        raise ValueError(
            f"{str(run_dir)!r} is not a finished run directory (no metrics.json): run "
            f"`selflabel train --out {run_dir}` first"
        )
    try:
        metrics = json.loads(metrics_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{metrics_path} is not valid JSON ({err}); re-run the training") from err
    if not isinstance(metrics, dict):
        raise ValueError(f"{metrics_path} must hold a JSON object, got {type(metrics).__name__}")
    run = RunFiles(run_dir=run_dir, metrics=metrics)
    cfg_path = run_dir / "config.yaml"
    if cfg_path.is_file():
        run.config_text = cfg_path.read_text()
        try:
            run.config = load_config(cfg_path)
        except (ValueError, TypeError, OSError) as err:
            run.config_error = str(err)
    if (run_dir / "labels.csv").is_file():
        run.labels = read_labels_csv(run_dir / "labels.csv")
    run.training_log = read_training_log(run_dir / "metrics.csv")
    hist_path = run_dir / "eval_history.json"
    if hist_path.is_file():
        history = json.loads(hist_path.read_text())
        rows = history if isinstance(history, list) else []
        run.history = [r for r in rows if isinstance(r, dict)]
    return run


def read_labels_csv(path: str | Path) -> LabelsTable:
    """The columns of a run's ``labels.csv``; ``label`` only when every row has one (>= 0)."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        missing = {"index", "cluster", "confidence", "prototype"} - set(fields)
        if missing:
            raise ValueError(
                f"{path} lacks the column(s) {', '.join(sorted(missing))}; expected "
                "index, cluster, confidence, prototype[, path][, label] as `selflabel train` writes"
            )
        rows = list(reader)
    label = None
    if "label" in fields and rows:
        values = np.array([int(r["label"]) for r in rows], dtype=np.int64)
        label = values if bool((values >= 0).all()) else None
    return LabelsTable(
        index=np.array([int(r["index"]) for r in rows], dtype=np.int64),
        cluster=np.array([int(r["cluster"]) for r in rows], dtype=np.int64),
        confidence=np.array([float(r["confidence"]) for r in rows], dtype=np.float32),
        prototype=np.array([int(r["prototype"]) for r in rows], dtype=np.int64),
        label=label,
        path=[r["path"] for r in rows] if "path" in fields else None,
    )


def read_training_log(path: str | Path) -> dict[str, tuple[list[float], list[float]]]:
    """``column -> (iterations, values)`` of the ``train`` rows of the engine's ``metrics.csv``.

    Only the :data:`TRAINING_COLUMNS` that have at least one value are returned.
    """
    path = Path(path)
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("kind", "train") == "train"]
    out: dict[str, tuple[list[float], list[float]]] = {}
    for name in TRAINING_COLUMNS:
        xs: list[float] = []
        ys: list[float] = []
        for r in rows:
            v, it = r.get(name), r.get("iteration")
            if v and it:
                xs.append(float(it))
                ys.append(float(v))
        if xs:
            out[name] = (xs, ys)
    return out
