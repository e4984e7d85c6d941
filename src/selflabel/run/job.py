"""The main job: train a method on a source, evaluate it, and write the run directory.

Run directory layout::

    RUN/config.yaml            resolved configuration
    RUN/checkpoint_last.pt     atomic per-epoch checkpoint (resume: run the same command again)
    RUN/metrics.csv            training log (also TensorBoard events under RUN/tb/)
    RUN/metrics.json           final figures (acc, nmi, ami, ari, head_*, knn, baseline_kmeans_raw)
    RUN/eval_history.json      figures logged every `train.eval_every` epochs
    RUN/labels.csv             index, cluster, confidence, prototype[, path][, label]
    RUN/plots/*.png            loss/lr curves, cluster sizes, gallery per cluster
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from selflabel.cluster import require_umap
from selflabel.config import RunConfig, dump_config
from selflabel.data import make_loader
from selflabel.engine import Trainer, build_optimizer, cosine_schedule, init_distributed
from selflabel.engine.checkpoint import find_resume
from selflabel.engine.distributed import is_main_process
from selflabel.methods import Method
from selflabel.run.build import (
    ResumableAugment,
    build_augment,
    build_data,
    build_eval_transform,
    build_method,
    resolve_device,
)
from selflabel.run.evaluation import RunMetrics, evaluate_run, kmeans_start, n_eval_clusters
from selflabel.run.export import SELF_LABEL_METHODS, self_labels, write_label_files
from selflabel.run.outputs import write_outputs
from selflabel.run.warm_start import init_backbone

log = logging.getLogger(__name__)


@dataclass
class JobResult:
    run_dir: Path
    metrics: dict[str, Any]
    epochs_done: int
    stopped_early: str | None


def default_run_dir(cfg: RunConfig) -> Path:
    source = cfg.data.source.replace("/", "_").replace(":", "_").strip("_")[:40]
    return Path("runs") / f"{cfg.method}-{source}-{datetime.now():%Y%m%d-%H%M%S}"


def train_job(cfg: RunConfig, run_dir: Path | None = None) -> JobResult:
    """Train, evaluate and write outputs; resumes when ``run_dir`` holds a checkpoint."""
    t_start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    dist_info = init_distributed(device=resolve_device(cfg.train.device))
    device = dist_info.device
    if cfg.eval.umap_dim:
        require_umap()  # fail now, not after training
    data = build_data(cfg)  # before creating the run directory: `--out demo` must not shadow `demo`
    run_dir = Path(run_dir or cfg.out or default_run_dir(cfg))
    run_dir.mkdir(parents=True, exist_ok=True)
    if is_main_process():
        (run_dir / "config.yaml").write_text(dump_config(cfg))

    log.info("data: %s", data.train.describe())
    augment = ResumableAugment(build_augment(cfg, data.train))
    method = build_method(cfg, data.train, world_size=dist_info.world_size)
    kmeans_start(cfg, method, n_eval_clusters(cfg, data.train))  # a bad setting fails now
    if cfg.model.init_from and find_resume(run_dir) is None:  # a resumed run has its own weights
        report = init_backbone(method.backbone, cfg.model.init_from)
        log.info("backbone from model.init_from: %s", report.summary())
    method = method.to(device)
    loader = make_loader(
        data.train,
        cfg.data.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=cfg.data.num_workers,
        seed=cfg.seed,
    )
    iters_per_epoch = len(loader)
    total = iters_per_epoch * cfg.train.epochs
    o = cfg.optim
    scale = cfg.data.batch_size * dist_info.world_size / 256 if o.scale_lr_with_batch else 1.0
    optimizer = build_optimizer(
        o.name, method, lr=o.lr * scale, weight_decay=o.weight_decay, momentum=o.momentum
    )
    schedule = cosine_schedule(
        o.lr * scale, o.final_lr * scale, total, int(o.warmup_epochs * iters_per_epoch)
    )
    history: list[dict[str, Any]] = []
    baseline: dict[str, Any] | None = None
    clock = {"start": time.perf_counter(), "eval": 0.0}

    def eval_fn(m: Method, epoch: int) -> dict[str, float]:
        nonlocal baseline
        t_eval = time.perf_counter()
        res = evaluate_run(m, data.train, data.test, cfg, device, baseline=baseline)
        baseline = res.values.get("baseline_detail", baseline)
        train_s = t_eval - clock["start"] - clock["eval"]
        clock["eval"] += time.perf_counter() - t_eval
        row = {"epoch": epoch, "train_minutes": round(train_s / 60.0, 3), **_scalars(res.values)}
        history.append(row)
        if is_main_process():
            (run_dir / "eval_history.json").write_text(json.dumps(history, indent=1))
        return {k: v for k, v in row.items() if isinstance(v, float)}

    trainer = Trainer(
        method,
        loader,
        augment,
        optimizer,
        schedule,
        epochs=cfg.train.epochs,
        out_dir=run_dir,
        device=device,
        amp=cfg.train.amp,
        channels_last=cfg.train.channels_last,
        grad_clip=o.grad_clip,
        max_minutes=cfg.train.max_minutes,
        checkpoint_every=cfg.train.keep_checkpoint_every,
        log_every=cfg.train.log_every,
        eval_fn=eval_fn if cfg.train.eval_every else None,
        eval_every=cfg.train.eval_every or None,
        config=cfg.model_dump(mode="json"),
        seed=cfg.seed,
        sync_bn=cfg.train.sync_bn,
    )
    clock["start"] = time.perf_counter()
    result = trainer.fit()
    final: RunMetrics = evaluate_run(method, data.train, data.test, cfg, device, baseline=baseline)
    final.values["train_minutes"] = round(result.train_seconds / 60.0, 3)
    final.values["total_minutes"] = round((time.perf_counter() - t_start) / 60.0, 3)
    final.values["epochs_done"] = result.epochs_done
    final.values["stopped_early"] = result.stopped_early
    final.values["device"] = str(device)
    if is_main_process():
        write_outputs(run_dir, cfg, data.train, final, history)
    if cfg.method in SELF_LABEL_METHODS:  # labels.npy + labels_head{t}.csv (every rank computes)
        tf = build_eval_transform(cfg, data.train)
        table = self_labels(method, data.train, device, cfg.eval.batch_size, tf)
        if is_main_process():
            write_label_files(run_dir, table, data.train)
    return JobResult(run_dir, _scalars(final.values), result.epochs_done, result.stopped_early)


def _scalars(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if not k.startswith("_") and k != "baseline_detail"}
