"""Assemble the HTML report of a run directory: ``RUN_DIR/report/index.html`` plus its PNGs.

Sections: run summary (with the resolved config collapsed), the metric table with each figure's
protocol, training curves (``metrics.csv``), metric curves over epochs (``eval_history.json``),
cluster sizes, galleries of the most confident, least confident and random members of each
cluster (the SeLa paper's pseudo-class figures), and a confusion matrix against ground truth when
``labels.csv`` has labels. A missing part is replaced by a sentence that says why.

The images of the galleries come from the run's own data source, rebuilt from ``config.yaml``
(only the images shown are read). Pass ``source=`` to use another copy of the data.

Example::

    from selflabel.report.build import build_report
    report = build_report("runs/swav-demo-20260101-120000")
    print(report.index)        # runs/swav-demo-20260101-120000/report/index.html
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from selflabel.data import ImageSource, load_source
from selflabel.report import html as h
from selflabel.report.confusion import cluster_confusion, plot_confusion
from selflabel.report.curves import plot_metric_history
from selflabel.report.gallery import GALLERY_ORDERS, gallery_members, plot_member_grid
from selflabel.report.plots import plot_cluster_sizes, plot_curves
from selflabel.report.run_files import LabelsTable, RunFiles, read_run

__all__ = ["Report", "build_report", "load_run_source"]

log = logging.getLogger(__name__)

_CLUSTER_METRICS = ("acc", "nmi", "ami", "ari")
_HISTORY_METRICS = ("acc", "nmi", "ami", "ari", "head_acc", "knn")
_GALLERY_TEXT = {
    "confident": "most confident members of each cluster (highest confidence first; the low-"
    "entropy images of the SeLa paper's figures)",
    "uncertain": "least confident members of each cluster (lowest confidence first)",
    "random": "random members of each cluster",
}


@dataclass
class Report:
    """Where the report was written, the PNG files it references and the notes it shows."""

    index: Path
    images: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def load_run_source(run: RunFiles) -> ImageSource:
    """The training source of ``run``, rebuilt from its ``config.yaml`` (``ValueError`` if not)."""
    if run.config is None:
        why = run.config_error or "config.yaml is missing"
        raise ValueError(f"cannot rebuild the run's data source: {why}")
    d = run.config.data
    try:
        return load_source(d.source, split=d.split, image_size=d.image_size, strict=d.strict)
    except (ValueError, TypeError, OSError) as err:
        raise ValueError(f"cannot load the run's data source {d.source!r}: {err}") from err


def build_report(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    source: ImageSource | None = None,
    images: bool = True,
    per_cluster: int = 8,
    max_clusters: int = 20,
) -> Report:
    """Write ``index.html`` and its PNGs to ``out_dir`` (default ``run_dir/report``).

    ``images=False`` skips the galleries (no data access); ``source`` overrides the data source
    named in ``config.yaml``. Raises ``ValueError`` for a directory without ``metrics.json``.
    """
    run = read_run(run_dir)
    out = Path(out_dir) if out_dir is not None else run.run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    report = Report(index=out / "index.html")
    m = run.metrics
    labelled = run.labels is not None and run.labels.label is not None
    sections = [_summary(run), _metrics(run, labelled)]
    sections.append('<div class="row">' + _training_section(run, out, report)
                    + _history_section(run, out, report) + "</div>")
    sections.append(_sizes_section(run, out, report))
    if images and run.labels is not None and source is None:
        try:
            source = load_run_source(run)
        except ValueError as err:
            report.notes.append(f"galleries skipped: {err}")
    sections.append(_gallery_section(run, source, images, out, report, per_cluster, max_clusters))
    sections.append(_confusion_section(run, source, out, report))
    cfg = run.config
    title = f"{cfg.method} on {cfg.data.source}" if cfg else f"run {run.run_dir.name}"
    subtitle = f"run directory {run.run_dir.resolve()} · {m.get('n_images', '?')} images"
    nav = [("summary", "summary"), ("metrics", "metrics"), ("training", "training"),
           ("history", "metric curves"), ("clusters", "clusters"), ("galleries", "galleries"),
           ("confusion", "confusion")]
    report.index.write_text(h.page(title, sections, subtitle=subtitle, nav=nav))
    log.info("report: %s (%d images)", report.index, len(report.images))
    return report


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "—" if value is None else str(value)


def _summary(run: RunFiles) -> str:
    m, cfg = run.metrics, run.config
    epochs = str(m.get("epochs_done", "?")) + (f" of {cfg.train.epochs}" if cfg else "")
    rows: list[tuple[str, Any]] = [
        ("method", cfg.method if cfg else "?"),
        ("data source", f"{cfg.data.source} (split {cfg.data.split})" if cfg else "?"),
        ("images", m.get("n_images")),
        ("clusters k (evaluation)", m.get("k")),
        ("epochs", epochs),
        ("stopped early", m.get("stopped_early") or "no"),
        ("training minutes", m.get("train_minutes")),
        ("total minutes", m.get("total_minutes")),
        ("device", m.get("device")),
        ("prototypes used (main head)", m.get("prototypes_used")),
    ]
    if cfg:
        rows.insert(4, ("backbone", cfg.model.backbone))
        rows.append(("seed", cfg.seed))
    body = h.table(["field", "value"], [(k, _fmt(v)) for k, v in rows])
    if run.config_text is not None:
        body += h.details("resolved configuration (config.yaml)", h.pre(run.config_text))
    if run.config_error:
        body += h.note(f"config.yaml could not be read: {run.config_error}")
    return h.section("Run summary", body, anchor="summary")


def _protocol(p: dict[str, Any]) -> str:
    keys = ("k", "overcluster", "pca_dim", "l2_normalize", "seeds", "n_iter", "engine",
            "scored_on", "mapping")
    return ", ".join(f"{k}={p[k]}" for k in keys if k in p)


def _metrics(run: RunFiles, labelled: bool) -> str:
    m = run.metrics
    bench = m.get("clustering_benchmark") or {}
    proto = "clustering benchmark of the features: " + _protocol(bench.get("protocol", {}))
    std = m.get("std") or {}
    rows: list[tuple[str, str, str, str]] = []
    head = "arg-max prototype of the main head, scored like acc (Hungarian/greedy matching)"
    raw = (m.get("baseline_detail") or {}).get("detail", {}).get("protocol", {})
    groups: list[tuple[list[str], str]] = [
        (list(_CLUSTER_METRICS), proto),
        ([f"head_{n}" for n in _CLUSTER_METRICS], head),
        (["knn"], str(m.get("knn_protocol", "weighted kNN"))),
        (["baseline_kmeans_raw", "baseline_kmeans_raw_nmi"],
         "acc and nmi of the same benchmark on raw pixels in [0, 1]: " + _protocol(raw)),
        ([f"test_{n}" for n in _CLUSTER_METRICS]
         + [f"test_head_{n}" for n in _CLUSTER_METRICS] + ["test_baseline_kmeans_raw"],
         str(m.get("test_protocol", "held-out test images"))),
    ]
    for names, text in groups:
        first = None
        for name in names:
            if name in m:
                sd = (m.get("test_std") or {}) if name.startswith("test_") else std
                key = name.removeprefix("test_") if name.startswith("test_") else name
                rows.append((name, _fmt(m[name]), _fmt(sd.get(key)) if key in sd else "—",
                             text if first is None else f"same as {first}"))
                first = first or name
    if not rows:
        body = h.note("no ground-truth labels: accuracy, NMI, AMI, ARI and kNN were not measured.")
    else:
        body = h.table(["metric", "value", "± std over seeds", "protocol"], rows,
                       classes=["", "num", "num", "proto"])
        if not labelled:
            body += h.note("labels.csv has no ground-truth labels: no confusion matrix.")
    return h.section("Metrics", body, anchor="metrics")


def _training_section(run: RunFiles, out: Path, report: Report) -> str:
    if not run.training_log:
        body = h.note("no training log (metrics.csv) in the run directory.")
    else:
        path = plot_curves(run.training_log, out / "training.png", xlabel="iteration")
        report.images.append(path)
        names = ", ".join(run.training_log)
        body = h.figure(path.name, f"training curves from metrics.csv: {names}")
    return h.section("Training curves", body, anchor="training")


def _history_section(run: RunFiles, out: Path, report: Report) -> str:
    series = {
        name: ([float(r["epoch"]) for r in run.history if _is_num(r.get(name))],
               [float(r[name]) for r in run.history if _is_num(r.get(name))])
        for name in _HISTORY_METRICS
    }
    series = {k: v for k, v in series.items() if v[0]}
    if not series:
        body = h.note("no metric history: eval_history.json is missing or has no figures "
                      "(train with train.eval_every=N to evaluate every N epochs).")
    else:
        path = plot_metric_history(series, out / "metric_history.png")
        report.images.append(path)
        body = h.figure(path.name, "figures over epochs from eval_history.json: "
                        + ", ".join(series))
    return h.section("Metric curves", body, anchor="history")


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v)


def _labels_origin(run: RunFiles) -> str:
    origin = run.metrics.get("labels_from")
    if origin == "head":
        return "the method's own head, arg-max prototype"
    if origin == "kmeans from the prototypes":
        return "one k-means run on the final features, started at the head's prototypes"
    return "one k-means run on the final features"


def _sizes_section(run: RunFiles, out: Path, report: Report) -> str:
    if run.labels is None or len(run.labels) == 0:
        body = h.note("no labels.csv in the run directory: no cluster sizes.")
    else:
        k = int(run.metrics.get("k") or 0) or None
        k = max(k or 0, int(run.labels.cluster.max()) + 1)
        path = plot_cluster_sizes(run.labels.cluster, out / "cluster_sizes.png", n_clusters=k)
        report.images.append(path)
        caption = (
            f"images per cluster (column `cluster` of labels.csv: {_labels_origin(run)}), "
            "sorted by size; the dashed line is an equal split"
        )
        body = h.figure(path.name, caption)
    return h.section("Cluster sizes", body, anchor="clusters")


def _gallery_section(
    run: RunFiles,
    source: ImageSource | None,
    wanted: bool,
    out: Path,
    report: Report,
    per_cluster: int,
    max_clusters: int,
) -> str:
    labels = run.labels
    reason = None
    if not wanted:
        reason = "galleries were not requested."
    elif labels is None or len(labels) == 0:
        reason = "no labels.csv: nothing to show per cluster."
    elif source is None:
        reason = next((n for n in report.notes if n.startswith("galleries")), "no data source.")
    elif len(source) != len(labels):
        reason = (f"the data source has {len(source)} images but labels.csv has {len(labels)} "
                  "rows: it is not the data this run was trained on.")
    if reason is not None or labels is None or source is None:
        return h.section("Cluster galleries", h.note(f"galleries skipped: {reason}"),
                         anchor="galleries")
    picks = {o: gallery_members(labels.cluster, labels.confidence, order=o,
                                per_cluster=per_cluster, max_clusters=max_clusters)
             for o in GALLERY_ORDERS}
    needed = sorted({int(i) for p in picks.values() for idx in p.values() for i in idx})
    _, batch, _ = source.get_batch(torch.as_tensor(labels.index[needed], dtype=torch.int64))
    pixels = dict(zip(needed, batch.numpy(), strict=True))
    ids, counts = np.unique(labels.cluster, return_counts=True)
    sizes = {int(c): int(n) for c, n in zip(ids, counts, strict=True)}
    notes = _row_notes(labels, list(picks["confident"]), source.classes)
    figs = []
    for order in GALLERY_ORDERS:
        path = plot_member_grid(pixels, picks[order], sizes, out / f"gallery_{order}.png",
                                per_cluster=per_cluster, row_notes=notes)
        report.images.append(path)
        fig_html = h.figure(path.name, _GALLERY_TEXT[order])
        figs.append(f"<div><h3>{h.esc(order)}</h3>{fig_html}</div>")
    shown = len(picks["confident"])
    intro = (f"<p>{shown} of {len(sizes)} non-empty clusters (largest first); each row is "
             "labelled with its cluster id and size"
             + (" and its majority class with that class's share." if notes else ".") + "</p>")
    grid = '<div class="row wide">' + "".join(figs) + "</div>"
    return h.section("Cluster galleries", intro + grid, anchor="galleries")


def _row_notes(
    labels: LabelsTable, shown: list[int], class_names: list[str] | None
) -> dict[int, str]:
    """Majority class and its share for each shown cluster (empty without labels)."""
    if labels.label is None:
        return {}
    out = {}
    for c in shown:
        y = labels.label[labels.cluster == c]
        values, counts = np.unique(y, return_counts=True)
        top = int(values[np.argmax(counts)])
        name = class_names[top] if class_names and 0 <= top < len(class_names) else str(top)
        out[int(c)] = f"{name[:12]} {100.0 * counts.max() / len(y):.0f}%"
    return out


def _confusion_section(
    run: RunFiles, source: ImageSource | None, out: Path, report: Report
) -> str:
    labels = run.labels
    if labels is None or labels.label is None:
        body = h.note("no ground-truth labels in labels.csv: no confusion matrix.")
        return h.section("Confusion matrix", body, anchor="confusion")
    conf = cluster_confusion(labels.label, labels.cluster)
    names = source.classes if source is not None else None
    path = plot_confusion(conf, out / "confusion.png", class_names=names)
    report.images.append(path)
    mapping = ", ".join(f"{c}→{k}" for c, k in sorted(conf.mapping.items()))
    body = h.figure(path.name, "rows: true class; columns: class matched to the image's cluster "
                    "(Hungarian, extra clusters to their majority class); rows sum to 1")
    body += (f"<p>Accuracy of these clusters: <b>{conf.accuracy:.4f}</b> "
             f"({int(np.trace(conf.matrix))} of {conf.total} images). These are the "
             f"clusters of labels.csv ({_labels_origin(run)}), so the figure can "
             "differ from <code>acc</code> above, the features' k-means mean over seeds.</p>")
    body += h.details("cluster → class mapping", h.pre(mapping))
    return h.section("Confusion matrix", body, anchor="confusion")
