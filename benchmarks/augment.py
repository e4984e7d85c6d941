"""Benchmark: batched multi-crop (selflabel.data) against a per-image PIL pipeline, same run.

Two workloads, each timed as images/s through the whole input pipeline:

1. a folder of JPEGs (~400×300, generated in a temp dir): decode in 2 DataLoader workers, then
   SwAV multi-crop 2×224 + 6×96. Batched: each worker decodes a batch (resize to 256, center
   crop) and augments the whole uint8 batch (``make_loader(..., transform=aug)``, the CPU-training
   mode); a second row augments in the main process instead (the GPU-style path, run on the CPU).
   Baseline: each worker decodes and augments one image at a time with PIL (random resized crop,
   flip, ImageEnhance jitter + HSV hue, grayscale, GaussianBlur, to float + normalise), as a
   torchvision-style PIL pipeline does.
2. 28×28 arrays (the bundled Fashion-MNIST demo): 2×24 + 6×12 views. Batched: in-memory batches,
   no workers. Baseline: the same PIL pipeline per image in 2 workers.

Run: ``python benchmarks/augment.py [--images 512] [--repeats 3]``. Prints a Markdown table with
the median images/s over the repeats and the ratio batched / baseline.
"""

from __future__ import annotations

import argparse
import math
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageFilter
from torch.utils.data import DataLoader, Dataset

from selflabel.data import ImageSource, MultiCrop, load_source, make_loader

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


# ---------------------------------------------------------------- per-image PIL baseline
def _rrc_box(w: int, h: int, scale: tuple[float, float], rng: random.Random) -> tuple[int, ...]:
    area = w * h
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        cw, ch = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            x0, y0 = rng.randint(0, w - cw), rng.randint(0, h - ch)
            return x0, y0, x0 + cw, y0 + ch
    return 0, 0, w, h


def _hue(img: Image.Image, shift: float) -> Image.Image:
    h, s, v = img.convert("HSV").split()
    a = (np.asarray(h, dtype=np.int16) + round(shift * 255)) % 256
    return Image.merge("HSV", (Image.fromarray(a.astype(np.uint8), "L"), s, v)).convert("RGB")


def pil_view(img: Image.Image, size: int, scale: tuple[float, float], blur: bool,
             rng: random.Random) -> torch.Tensor:
    """One augmented view of one image, the plain per-image way."""
    out = img.resize((size, size), Image.Resampling.BILINEAR,
                     box=_rrc_box(img.width, img.height, scale, rng))
    if rng.random() < 0.5:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if rng.random() < 0.8:
        ops = [0, 1, 2, 3]
        rng.shuffle(ops)
        for op in ops:
            if op == 0:
                out = ImageEnhance.Brightness(out).enhance(rng.uniform(0.2, 1.8))
            elif op == 1:
                out = ImageEnhance.Contrast(out).enhance(rng.uniform(0.2, 1.8))
            elif op == 2 and out.mode == "RGB":
                out = ImageEnhance.Color(out).enhance(rng.uniform(0.2, 1.8))
            elif op == 3 and out.mode == "RGB":
                out = _hue(out, rng.uniform(-0.2, 0.2))
    if rng.random() < 0.2 and out.mode == "RGB":
        out = out.convert("L").convert("RGB")
    if blur and rng.random() < 0.5:
        out = out.filter(ImageFilter.GaussianBlur(rng.uniform(0.1, 2.0) * size / 224))
    a = torch.from_numpy(np.asarray(out, dtype=np.float32) / 255.0)
    a = a.unsqueeze(0) if a.ndim == 2 else a.permute(2, 0, 1)
    c = a.shape[0]
    mean = torch.tensor(MEAN[:c] if c == 3 else (0.286,)).view(c, 1, 1)
    std = torch.tensor(STD[:c] if c == 3 else (0.353,)).view(c, 1, 1)
    return (a - mean) / std


class PilMultiCrop(Dataset):
    """Per-image baseline dataset: item = list of views of one decoded image."""

    def __init__(self, items: list, sizes: list[tuple[int, tuple[float, float], bool]]) -> None:
        self.items, self.sizes = items, sizes

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> list[torch.Tensor]:
        rng = random.Random(i)
        item = self.items[i]
        if isinstance(item, str):
            with Image.open(item) as im:
                img = im.convert("RGB")
        else:
            img = Image.fromarray(item)
        return [pil_view(img, s, sc, b, rng) for s, sc, b in self.sizes]


# ---------------------------------------------------------------- timing
def _time_baseline(items: list, sizes: list, batch: int, workers: int) -> float:
    loader = DataLoader(PilMultiCrop(items, sizes), batch_size=batch, num_workers=workers,
                        persistent_workers=False)
    start = time.perf_counter()
    n = 0
    for views in loader:
        n += views[0].shape[0]
    return n / (time.perf_counter() - start)


def _time_batched(ds: ImageSource, aug: MultiCrop, batch: int, workers: int,
                  in_workers: bool = False) -> float:
    """images/s of loader + batched multi-crop; ``in_workers``: augment inside the workers."""
    loader = make_loader(ds, batch, shuffle=True, drop_last=False, num_workers=workers,
                         persistent_workers=False, transform=aug if in_workers else None)
    start = time.perf_counter()
    n = 0
    for _, images, _ in loader:
        views = images if in_workers else aug(images)
        n += views[0].shape[0]
    return n / (time.perf_counter() - start)


def _cpu_ms_per_image(files: list[str], jpeg_ds: ImageSource, swav: list,
                      batch: int) -> tuple[float, float]:
    """Single-thread CPU time per image (``time.process_time``) of both pipelines, in-process.

    Insensitive to other jobs' load (it counts only this process's CPU time), so it is the
    steadiest comparison on a shared machine.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        base = PilMultiCrop(files, swav)
        aug = MultiCrop(mean=MEAN, std=STD, seed=0)
        n = (min(len(files), 2 * batch) // batch) * batch
        start = time.process_time()
        for i in range(n):
            base[i]
        pil = (time.process_time() - start) / n
        start = time.process_time()
        for a in range(0, n, batch):
            aug(jpeg_ds.get_batch(list(range(a, a + batch)))[1])
        ours = (time.process_time() - start) / n
    finally:
        torch.set_num_threads(threads)
    return pil * 1000, ours * 1000


def kornia_multicrop(mean: tuple[float, ...], std: tuple[float, ...]) -> list:
    """The same SwAV multi-crop as kornia.augmentation pipelines (one per view size)."""
    import kornia.augmentation as K

    def view(size: int, scale: tuple[float, float]) -> torch.nn.Module:
        return K.AugmentationSequential(
            K.RandomResizedCrop((size, size), scale=scale),
            K.RandomHorizontalFlip(),
            K.ColorJitter(0.8, 0.8, 0.8, 0.2, p=0.8),
            K.RandomGrayscale(p=0.2),
            K.RandomGaussianBlur((2 * math.ceil(6 * size / 224) + 1,) * 2,
                                 (0.1 * size / 224, 2.0 * size / 224), p=0.5),
            K.Normalize(torch.tensor(mean), torch.tensor(std)),
        )

    return [view(224, (0.14, 1.0))] * 2 + [view(96, (0.05, 0.14))] * 6


def _time_aug_only(fn: object, images: torch.Tensor, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn(images)  # type: ignore[operator]
        best = min(best, time.perf_counter() - start)
    return images.shape[0] / best


def make_jpegs(folder: Path, n: int, seed: int = 0) -> None:
    """Write ``n`` photo-like 400×300 JPEGs (smooth colour fields plus noise)."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        low = rng.random((6, 8, 3)) * 255
        img = Image.fromarray(low.astype(np.uint8)).resize((400, 300), Image.Resampling.BICUBIC)
        arr = np.asarray(img, dtype=np.float32) + rng.normal(0, 12, (300, 400, 3))
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(folder / f"{i:05d}.jpg",
                                                                     quality=90)


def _batch_of_decoded(n: int) -> torch.Tensor:
    with tempfile.TemporaryDirectory(prefix="selflabel-bench-") as tmp:
        make_jpegs(Path(tmp), n, seed=1)
        ds = load_source(tmp, image_size=256)
        return ds.get_batch(list(range(n)))[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512, help="JPEGs / array images per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kornia", action="store_true",
                        help="also time augmentation alone: selflabel vs kornia.augmentation")
    args = parser.parse_args()
    torch.set_num_threads(2)
    swav = [(224, (0.14, 1.0), True)] * 2 + [(96, (0.05, 0.14), True)] * 6
    small = [(24, (0.14, 1.0), False)] * 2 + [(12, (0.05, 0.14), False)] * 6
    results: dict[str, tuple[list[float], list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="selflabel-bench-") as tmp:
        folder = Path(tmp)
        make_jpegs(folder, args.images)
        files = sorted(str(p) for p in folder.glob("*.jpg"))
        demo = load_source("demo")
        n_arrays = min(args.images * 16, len(demo))
        arrays = [demo.images[i, 0].numpy() for i in range(n_arrays)]
        jpeg_ds = load_source(str(folder), image_size=256)
        array_ds = demo.subset(range(n_arrays))
        jpeg_aug = MultiCrop(mean=MEAN, std=STD, seed=0)
        small_aug = MultiCrop.for_image_size(28, mean=demo.mean, std=demo.std, seed=0)
        for r in range(args.repeats):
            fast = _time_batched(jpeg_ds, jpeg_aug, args.batch, args.workers, in_workers=True)
            main_proc = _time_batched(jpeg_ds, jpeg_aug, args.batch, args.workers)
            base = _time_baseline(files, swav, args.batch, args.workers)
            results.setdefault("jpeg", ([], []))[0].append(fast)
            results["jpeg"][1].append(base)
            results.setdefault("jpeg_main", ([], []))[0].append(main_proc)
            results["jpeg_main"][1].append(base)
            fast = _time_batched(array_ds, small_aug, 256, 0)
            base = _time_baseline(arrays, small, 256, args.workers)
            results.setdefault("arrays", ([], []))[0].append(fast)
            results["arrays"][1].append(base)
            pil_ms, our_ms = _cpu_ms_per_image(files, jpeg_ds, swav, args.batch)
            # stored as images per CPU-second so that the ratio reads the same way
            results.setdefault("jpeg_cpu", ([], []))[0].append(1000 / our_ms)
            results["jpeg_cpu"][1].append(1000 / pil_ms)
            print(f"repeat {r + 1}: " + ", ".join(
                f"{k} {v[0][-1]:.0f} vs {v[1][-1]:.0f} img/s" for k, v in results.items()),
                flush=True)
    if args.kornia:
        images = _batch_of_decoded(args.batch)
        ours = MultiCrop(mean=MEAN, std=STD, seed=0)
        korn = kornia_multicrop(MEAN, STD)
        fast = _time_aug_only(ours, images, args.repeats)
        slow = _time_aug_only(lambda x: [v(x.float() / 255) for v in korn], images, args.repeats)
        print(f"augmentation only, {args.batch}×3×256×256 uint8 → 2×224+6×96: selflabel "
              f"{fast:.0f} img/s, kornia.augmentation {slow:.0f} img/s ({fast / slow:.2f}×)")
    print(f"\nmachine: {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} torch threads, {args.workers} workers, "
          f"{args.images} JPEGs 400×300 / {len(arrays)} arrays 28×28, {args.repeats} repeats\n")
    print("| workload | batched img/s | per-image PIL img/s | ratio (median of repeats) |")
    print("|---|---|---|---|")
    names = {
        "jpeg": "JPEG folder, decode + 2×224+6×96, batched augment in the 2 workers",
        "jpeg_main": "JPEG folder, 2 workers decode, batched augment in the main process",
        "arrays": "28×28 arrays, 2×24+6×12 (batched: main process, no workers)",
        "jpeg_cpu": "JPEG, decode + 2×224+6×96, images per single-thread CPU-second",
    }
    for key, (fast, base) in results.items():
        ratios = [f / b for f, b in zip(fast, base, strict=True)]
        print(f"| {names[key]} | {statistics.median(fast):.0f} | {statistics.median(base):.0f} | "
              f"{statistics.median(ratios):.2f}× (min {min(ratios):.2f}×) |")


if __name__ == "__main__":
    main()
