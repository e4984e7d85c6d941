"""Images/s of selflabel's SwAV training step at several batch sizes, as a ratio to batch 128.

A smaller batch does the same convolutions per epoch in more steps; on a CPU each step then uses
the cores less well. This measures by how much, for the small CNN on Fashion-MNIST's multi-crop
(2x24 + 4x12 px), with the step of ``benchmarks/train_step.py`` (forward + backward + SGD step,
channels_last), alternating the batch sizes round by round so that they share the machine's noise.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/batch_size.py                # 2 threads, 32..256
    python benchmarks/batch_size.py --threads 1 --batches 64 128 --no-append
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_step import append_to_doc, make, measure, multicrop, ours


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--batches", type=int, nargs="+", default=[32, 64, 128, 256])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--images", type=int, default=1024, help="images per timed round")
    ap.add_argument("--no-append", action="store_true", help="do not append to docs/benchmarks.md")
    args = ap.parse_args()
    if 128 not in args.batches:
        ap.error("--batches must include 128, the baseline of the ratios")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    swav = make("smallcnn", 1, 10).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    views = {b: multicrop(b) for b in args.batches}
    rates: dict[int, list[float]] = {b: [] for b in args.batches}
    for _ in range(args.rounds):
        for b in args.batches:
            rates[b].append(measure(ours, swav, views[b], max(1, args.images // b)))
    best = {b: max(r) for b, r in rates.items()}
    lines = ["| batch | images/s | ratio to batch 128 |", "|---:|---:|---:|"]
    lines += [f"| {b} | {best[b]:.0f} | {best[b] / best[128]:.2f}x |" for b in args.batches]
    table = "\n".join(lines)
    print(table)
    if not args.no_append:
        head = (
            f"\n## SwAV step against batch size ({dt.date.today()}, "
            "`python benchmarks/batch_size.py`)\n\n"
            f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"torch {torch.__version__}, {args.threads} threads; small CNN, 2x24 + 4x12 px crops, "
            f"10 prototypes; best of {args.rounds} alternating rounds of about {args.images} "
            "images. No GPU lent in this task.\n\n"
        )
        append_to_doc(head, table)


if __name__ == "__main__":
    main()
