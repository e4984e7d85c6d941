"""Benchmark: CPU training throughput of the backbones, as ratios to ResNet-18 (small stem).

Every model does full SGD steps (forward, backward, update) on random grey images, in the same
process and interleaved round by round, so background load hits all of them alike. Two workloads:

* ``28px``: one 28×28 crop per image (batch ``--batch``);
* ``multicrop``: SwAV's small-image multi-crop, 2×28 + 4×12 crops per image, each resolution group
  concatenated into one forward pass as :class:`selflabel.methods.network.EmbeddingNetwork` does.

Images/s counts source images (a multi-crop image is six crops). Each cell is the median over
``--repeats`` rounds; each round runs a model until ``--seconds`` have passed (at least 2 steps).

Run: ``python benchmarks/models_throughput.py [--batch 32] [--repeats 3] [--seconds 2]`` (about
3 minutes on an idle 2-core CPU). Prints a Markdown table: parameters, images per wall-clock second,
images per CPU-second, and the ratio to ``resnet18 (small stem)``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from selflabel.models import build_backbone

BASELINE = "resnet18 (small stem)"

MODELS: dict[str, Callable[[], nn.Module]] = {
    "smallcnn width 0.5": lambda: build_backbone("smallcnn", in_channels=1, width=0.5),
    "smallcnn width 1": lambda: build_backbone("smallcnn", in_channels=1),
    "smallcnn width 2": lambda: build_backbone("smallcnn", in_channels=1, width=2),
    "smallcnn width 1, 2 convs/block": lambda: build_backbone(
        "smallcnn", in_channels=1, convs_per_block=2
    ),
    "alexnet (small stem, hidden 1024)": lambda: build_backbone(
        "alexnet", in_channels=1, small_stem=True, hidden_dim=1024
    ),
    BASELINE: lambda: build_backbone("resnet18", in_channels=1, small_stem=True),
}

WORKLOADS: dict[str, list[tuple[int, int]]] = {  # (side, crops per image) per resolution group
    "28px": [(28, 1)],
    "multicrop": [(28, 2), (12, 4)],
}


def _step_fn(model: nn.Module, batch: int, groups: list[tuple[int, int]]) -> Callable[[], None]:
    inputs = [torch.randn(batch * n, 1, side, side) for side, n in groups]
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = sum(model(x).square().mean() for x in inputs)
        loss.backward()
        opt.step()

    return step


def _images_per_second(step: Callable[[], None], batch: int, seconds: float) -> tuple[float, float]:
    """Images per wall-clock second and per second of this process's CPU time."""
    step()  # warm-up (allocations, oneDNN primitive creation)
    n, start, cpu_start = 0, time.perf_counter(), time.process_time()
    while n < 2 or time.perf_counter() - start < seconds:
        step()
        n += 1
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return n * batch / wall, n * batch / max(cpu, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32, help="source images per step")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--seconds", type=float, default=2.0, help="time per model per round")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    models = {name: build().train() for name, build in MODELS.items()}
    steps = {
        (name, wl): _step_fn(model, args.batch, groups)
        for name, model in models.items()
        for wl, groups in WORKLOADS.items()
    }
    rates: dict[tuple[str, str], list[tuple[float, float]]] = {key: [] for key in steps}
    for _ in range(args.repeats):
        for key, step in steps.items():
            rates[key].append(_images_per_second(step, args.batch, args.seconds))
    wall = {key: statistics.median(r[0] for r in v) for key, v in rates.items()}
    per_cpu = {key: statistics.median(r[1] for r in v) for key, v in rates.items()}

    machine = platform.processor() or platform.machine()
    print(
        f"# models_throughput — {datetime.date.today().isoformat()}, {machine}, "
        f"{os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"batch {args.batch}, median of {args.repeats} rounds\n"
    )
    print(
        "img/s: wall clock; img/CPU-s: per second of process CPU time (less sensitive to other "
        "load on a shared machine); ×: ratio of img/s to the baseline in the same run.\n"
    )
    header = " | ".join(f"{wl} img/s | {wl} img/CPU-s | ×" for wl in WORKLOADS)
    print(f"| model | params | {header} |")
    print("|---|---:|" + "---:|---:|---:|" * len(WORKLOADS))
    for name, model in models.items():
        params = sum(p.numel() for p in model.parameters())
        cells = []
        for wl in WORKLOADS:
            rate = wall[(name, wl)]
            ratio = rate / wall[(BASELINE, wl)]
            cells += [f"{rate:.0f}", f"{per_cpu[(name, wl)]:.0f}", f"{ratio:.1f}"]
        print(f"| {name} | {params / 1e6:.2f} M | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
