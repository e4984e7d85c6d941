"""Images/s of a SwAV training step: selflabel's step against the same step written plainly.

selflabel's step is the trainer's: the model and the views in channels_last (NHWC) layout
(``train.channels_last``, on by default), the backbone run once per *resolution group* of the
multi-crop batch, codes from ``selflabel.ot.sinkhorn_codes`` and the swapped-prediction loss on all
heads at once.
The plain step (the obvious code) runs the backbone once per crop and uses the paper's plain
Sinkhorn and loss loops. Both do forward + backward + SGD step on the same model and batch, measured
alternately in the same run; the ratio is what to compare across machines.

    python benchmarks/train_step.py            # small CNN 2x24+4x12 (28 px), ResNet-18 2x96+4x48
    python benchmarks/train_step.py --quick    # fewer steps
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import time
from pathlib import Path

import torch

from selflabel.methods import Batch, StepContext
from selflabel.methods.network import EmbeddingNetwork
from selflabel.methods.swav import SwAV, swav_loss_plain
from selflabel.models import build_backbone


def make(backbone: str, channels: int, k: int) -> SwAV:
    kw: dict[str, object] = {"in_channels": channels}
    if backbone.startswith("resnet"):
        kw["small_stem"] = False
    net = EmbeddingNetwork(
        build_backbone(backbone, **kw), n_prototypes=k, hidden_dim=512, embedding_dim=128
    )
    return SwAV(net, freeze_prototypes_iters=0)


def ours(swav: SwAV, opt: torch.optim.Optimizer, views: list[torch.Tensor]) -> None:
    ctx = StepContext(epoch=0, iteration=10, iters_per_epoch=1, total_iters=1)
    opt.zero_grad(set_to_none=True)
    nhwc = [v.contiguous(memory_format=torch.channels_last) for v in views]  # as the trainer does
    swav.training_step(Batch(torch.arange(len(views[0])), nhwc), ctx).loss.backward()
    swav.on_before_optimizer_step(ctx)
    opt.step()
    swav.on_after_optimizer_step(ctx)


def plain(swav: SwAV, opt: torch.optim.Optimizer, views: list[torch.Tensor]) -> None:
    net = swav.network
    opt.zero_grad(set_to_none=True)
    scores = []
    for v in views:  # one forward per crop
        z = net.projection_head(net.backbone(v))
        scores.append(net.prototypes(z)[0])
    swav_loss_plain(scores, n_global=2, temperature=0.1, eps=0.05).backward()
    opt.step()
    with torch.no_grad():
        net.prototypes.normalize_()


def measure(step, swav: SwAV, views: list[torch.Tensor], steps: int) -> float:  # type: ignore[no-untyped-def]
    opt = torch.optim.SGD(swav.parameters(), lr=0.01, momentum=0.9)
    step(swav, opt, views)  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        step(swav, opt, views)
    return steps * len(views[0]) / (time.perf_counter() - t0)


def multicrop(b: int, ch: int = 1, sizes: tuple[int, int] = (24, 12)) -> list[torch.Tensor]:
    """Random multi-crop views: 2 global crops of ``sizes[0]`` px and 4 small of ``sizes[1]``."""
    g, loc = sizes
    return [torch.randn(b, ch, g, g) for _ in range(2)] + [
        torch.randn(b, ch, loc, loc) for _ in range(4)
    ]


def run_case(
    name: str, backbone: str, ch: int, sizes: tuple[int, int], b: int, steps: int, rounds: int
) -> dict[str, object]:
    torch.manual_seed(0)
    views = multicrop(b, ch, sizes)
    swav = make(backbone, ch, 100)
    swav_nhwc = make(backbone, ch, 100).to(memory_format=torch.channels_last)
    swav_nhwc.load_state_dict(swav.state_dict())
    r_ours, r_plain = [], []
    for _ in range(rounds):  # alternate to share the machine's noise
        r_ours.append(measure(ours, swav_nhwc, views, steps))
        r_plain.append(measure(plain, swav, views, steps))
    best_o, best_p = max(r_ours), max(r_plain)
    return {"case": name, "batch": b, "ours": best_o, "plain": best_p, "ratio": best_o / best_p}


def append_to_doc(head: str, table: str) -> None:
    """Append a section (heading and conditions, then the table) to docs/benchmarks.md."""
    with open(Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md", "a") as f:
        f.write(head + table + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-append", action="store_true", help="do not append to docs/benchmarks.md")
    args = ap.parse_args()
    steps, rounds = (3, 2) if args.quick else (8, 3)
    cases = [
        run_case("smallcnn 28px: 2x24 + 4x12", "smallcnn", 1, (24, 12), 256, steps, rounds),
        run_case("resnet18: 2x96 + 4x48", "resnet18", 3, (96, 48), 32, max(2, steps // 2), rounds),
    ]
    lines = ["| case | batch | selflabel img/s | plain img/s | ratio |", "|---|---|---|---|---|"]
    for c in cases:
        lines.append(
            f"| {c['case']} | {c['batch']} | {c['ours']:.0f} | {c['plain']:.0f} | "
            f"{c['ratio']:.2f}x |"
        )
    table = "\n".join(lines)
    print(table)
    if not args.no_append:
        head = (
            f"\n## SwAV train step ({dt.date.today()}, `python benchmarks/train_step.py`)\n\n"
            f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads; best of {rounds} "
            "alternating rounds. GPU (ResNet-50 2x224+6x96, bf16, channels_last): not "
            "measured, no GPU lent in this task.\n\n"
        )
        append_to_doc(head, table)


if __name__ == "__main__":
    main()
