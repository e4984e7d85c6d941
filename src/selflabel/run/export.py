"""Self-label export: ``labels.npy`` (N × T) and ``labels_head{t}.csv`` for every head of a run.

What "the labels" of a method are:

* SeLa: its ``labels`` buffer (the last label step, at t = 1 after the final epoch);
* SeLa-v2 / DeepCluster-v2: a final assignment phase on the memory bank of the last epoch (rows the
  last epoch did not visit — ``drop_last`` leftovers — get their eval-mode embedding first);
* supervised: the labels it was trained from;
* SwAV + SeLa (``swavsela``): the arg-max of SwAV's main head, then SeLa's ``labels`` columns
  (the over-clustered self-labels of its heads);
* anything else (SwAV): the arg-max of the main head on un-augmented images (one column).

Example::

    paths = export_run_labels("runs/sela-demo")       # what `selflabel label RUN_DIR` does
    labels = np.load("runs/sela-demo/labels.npy")     # (N, T) int64, -1 = unassigned
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import yaml

from selflabel.config import build_config
from selflabel.data import EvalTransform, ImageSource
from selflabel.engine import checkpoint as ckpt
from selflabel.methods import Method
from selflabel.methods.offline import MemoryBankMethod
from selflabel.methods.sela import SeLa
from selflabel.methods.supervised import Supervised
from selflabel.methods.swavsela import SwAVSeLa
from selflabel.run.build import build_data, build_eval_transform, build_method

#: methods whose training produces self-labels (exported at the end of `selflabel train`)
SELF_LABEL_METHODS = ("sela", "swavsela", "selav2", "deepclusterv2")


@torch.no_grad()
def self_labels(
    method: Method,
    source: ImageSource,
    device: torch.device,
    batch_size: int = 512,
    transform: EvalTransform | None = None,
) -> np.ndarray:
    """The (N, T) int64 self-labels of ``method`` over ``source`` (see the module docstring).

    Under ``torch.distributed`` every process must call it (memory-bank methods reduce their
    banks); all get the same table.
    """
    if isinstance(method, SeLa | Supervised):
        return np.asarray(method.labels.detach().cpu().numpy(), dtype=np.int64)
    transform = transform or EvalTransform(mean=source.mean, std=source.std)
    was_training = method.training
    method.eval()
    try:
        if isinstance(method, MemoryBankMethod):
            _complete_bank(method, source, transform, device, batch_size)
            method.assignment_phase(epoch=-1)
            return np.asarray(method.assignments.t().cpu().numpy(), dtype=np.int64)
        out = []
        for start in range(0, len(source), batch_size):
            chunk = torch.arange(start, min(start + batch_size, len(source)))
            _, images, _ = source.get_batch(chunk)
            out.append(method.cluster_scores(transform(images.to(device))).argmax(1).cpu())
        main = torch.cat(out).numpy().astype(np.int64)[:, None]
        if isinstance(method, SwAVSeLa):
            sela = method.sela.labels.detach().cpu().numpy().astype(np.int64)
            return np.concatenate([main, sela], axis=1)
        return main
    finally:
        method.train(was_training)


def _complete_bank(
    method: MemoryBankMethod,
    source: ImageSource,
    transform: EvalTransform,
    device: torch.device,
    batch_size: int,
) -> None:
    """Give bank rows that no process wrote in the last epoch their eval-mode embedding."""
    filled = method.bank_filled.to(torch.long)
    distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    if distributed:
        dist.all_reduce(filled)
        if dist.get_rank() != 0:
            return
    missing = (filled == 0).nonzero().flatten().cpu()
    for chunk in missing.split(batch_size):
        _, images, _ = source.get_batch(chunk)
        emb, _ = method.network([transform(images.to(device))])
        rows = chunk.to(method.bank.device)
        method.bank[:, rows] = emb.to(method.bank.dtype)[None]
        method.bank_filled[rows] = True


def write_label_files(out_dir: str | Path, labels: np.ndarray, source: ImageSource) -> list[Path]:
    """``labels.npy`` (N, T) and one ``labels_head{t}.csv`` (index, cluster[, path]) per head."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = np.asarray(labels, dtype=np.int64)
    if table.ndim == 1:
        table = table[:, None]
    if table.ndim != 2 or table.shape[0] != len(source):
        raise ValueError(f"labels {table.shape} do not match the source's {len(source)} images")
    written = [out / "labels.npy"]
    np.save(written[0], table)
    paths = getattr(source, "paths", None)
    for t in range(table.shape[1]):
        path = out / f"labels_head{t}.csv"
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["index", "cluster"] + (["path"] if paths is not None else []))
            for i, c in enumerate(table[:, t].tolist()):
                w.writerow([i, c] + ([str(paths[i])] if paths is not None else []))
        written.append(path)
    return written


def export_run_labels(
    run_dir: str | Path, out_dir: str | Path | None = None, device: str = "cpu"
) -> list[Path]:
    """Rebuild a finished (or interrupted) run from its directory and write its label files.

    Multi-process runs: the memory banks of the other ranks' side checkpoints are merged in.
    """
    run = Path(run_dir)
    cfg_path, ckpt_path = run / "config.yaml", ckpt.find_resume(run)
    if ckpt_path is None or not cfg_path.is_file():
        raise ValueError(
            f"{run} is not a run directory: it needs config.yaml and checkpoint_last.pt "
            "(train one with `selflabel train --out DIR`)"
        )
    cfg = build_config(yaml.safe_load(cfg_path.read_text()))
    source = build_data(cfg).train
    method = build_method(cfg, source)
    state = ckpt.load_checkpoint(ckpt_path)
    method.load_state_dict(state["model"])
    if isinstance(method, MemoryBankMethod):
        _merge_rank_banks(method, ckpt_path)
    dev = torch.device(device)
    method.to(dev)
    labels = self_labels(
        method, source, dev, cfg.eval.batch_size, build_eval_transform(cfg, source)
    )
    return write_label_files(out_dir or run, labels, source)


def _merge_rank_banks(method: MemoryBankMethod, path: Path) -> None:
    rank = 1
    while (side := path.parent / ckpt.rank_checkpoint_name(path.name, rank)).is_file():
        buffers = ckpt.load_checkpoint(side).get("buffers", {})
        if "bank" in buffers and "bank_filled" in buffers:
            rows = buffers["bank_filled"] & ~method.bank_filled
            method.bank[:, rows] = buffers["bank"][:, rows]
            method.bank_filled |= rows
        rank += 1
