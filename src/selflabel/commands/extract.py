"""``selflabel extract``: frozen features of every image of a source, as a memory-mapped .npy.

Example::

    selflabel extract runs/swav-fmnist --data fashion-mnist --split test --out feats/test.npy
    # -> feats/test.npy (N × D float32), feats/test.labels.npy, feats/test.indices.npy
    #    and, for SwAV-style runs with prototypes on the features, feats/test.prototypes.npy

``CHECKPOINT`` is a run directory of ``selflabel train`` (its ``config.yaml`` rebuilds the method
and ``checkpoint_last.pt`` — or the newest ``checkpoint_epochN.pt`` — fills it), one of our
checkpoint files, or a plain backbone state dict (torchvision, official SwAV/SeLa, ...) with
``--arch NAME``. The helpers here are shared with ``selflabel eval``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import click
import numpy as np
import torch
from torch import nn

__all__ = [
    "EvalView",
    "describe_view",
    "eval_transform",
    "eval_view",
    "extract",
    "load_eval_model",
    "load_eval_source",
    "recalibrate_for_eval",
    "run_data_config",
    "run_train_images",
]


def load_eval_source(spec: str, split: str, image_size: int | None = None) -> Any:
    """The image source ``spec`` (see ``selflabel.data.load_source``) as a click-friendly error."""
    from selflabel.data import load_source

    try:
        return load_source(spec, split=split, image_size=image_size)
    except (ValueError, TypeError, FileNotFoundError) as err:
        raise click.ClickException(f"cannot load data {spec!r}: {err}") from err


def _run_config(checkpoint: Path) -> dict[str, Any]:
    """A run directory's ``config.yaml`` (empty for anything else)."""
    import yaml

    cfg_path = checkpoint / "config.yaml"
    if not (checkpoint.is_dir() and cfg_path.is_file()):
        return {}
    config = yaml.safe_load(cfg_path.read_text()) or {}
    return dict(config) if isinstance(config, dict) else {}


def _run_config_section(checkpoint: Path, name: str) -> dict[str, Any]:
    """Section ``name`` of a run directory's ``config.yaml`` (empty for anything else)."""
    section = _run_config(checkpoint).get(name) or {}
    return dict(section) if isinstance(section, dict) else {}


def run_data_config(checkpoint: Path) -> dict[str, Any]:
    """The ``data`` section of a run directory's ``config.yaml`` (empty for anything else): the
    sources a run trained and evaluated on, used when no data option is given."""
    return _run_config_section(checkpoint, "data")


class EvalView(NamedTuple):
    """The evaluation view of a model: size and crop fraction, and the test-time views."""

    image_size: int | None
    crop_fraction: float
    tta_sizes: tuple[int, ...] = ()
    tta_flip: bool = False


def eval_view(
    checkpoint: Path,
    image_size: int | None,
    crop_fraction: float | None,
    single_view: bool = False,
) -> EvalView:
    """The evaluation view: ``--image-size``/``--crop-fraction`` when given, else the run
    directory's ``eval.image_size``/``eval.crop_fraction`` (the view its own figures used), else
    the native size; with a run's own view also its test-time views (``eval.tta_sizes``,
    ``eval.tta_flip``) unless ``single_view``."""
    if image_size is not None:
        return EvalView(image_size, 0.875 if crop_fraction is None else crop_fraction)
    run_eval = _run_config_section(checkpoint, "eval")
    sizes = () if single_view else tuple(int(v) for v in run_eval.get("tta_sizes") or ())
    flip = not single_view and bool(run_eval.get("tta_flip"))
    size = run_eval.get("image_size")
    if size is None:
        return EvalView(None, 1.0, sizes, flip)
    run_fraction = float(run_eval.get("crop_fraction") or 1.0)
    fraction = run_fraction if crop_fraction is None else crop_fraction
    return EvalView(int(size), fraction, sizes, flip)


def _method_from_config(config: dict[str, Any], state: dict[str, Any], source: Any) -> nn.Module:
    from selflabel.config import build_config
    from selflabel.run.build import build_method

    cfg = build_config(config)
    method = build_method(cfg, source)
    _fit_per_image_buffers(method, state)
    method.load_state_dict(state)
    return method


def _fit_per_image_buffers(method: nn.Module, state: dict[str, Any]) -> None:
    """Give the buffers whose size follows the training set (SeLa's labels, DeepCluster-v2's
    bank) the checkpoint's shape: the method is built for the images to evaluate, which need not
    be the images it trained on. Parameters are left alone, so a real mismatch still fails."""
    for name, buf in list(method.named_buffers()):
        saved = state.get(name)
        if isinstance(saved, torch.Tensor) and saved.shape != buf.shape:
            owner_name, _, leaf = name.rpartition(".")
            owner = method.get_submodule(owner_name) if owner_name else method
            owner.register_buffer(leaf, torch.empty_like(saved, dtype=buf.dtype))


def load_eval_model(checkpoint: Path, source: Any, arch: str | None) -> tuple[nn.Module, str]:
    """Build the model a checkpoint describes; returns it and a one-line description.

    Run directory or our checkpoint (``{"format": "selflabel-checkpoint", "model", "config"}``):
    the method is rebuilt from the saved config and its full state loaded (``method.features``
    gives the backbone features). Anything else is a backbone state dict for ``arch``, loaded
    with :func:`selflabel.models.load_pretrained` (heads ignored, prefixes stripped).
    """
    import yaml

    from selflabel.engine.checkpoint import find_resume, load_checkpoint

    try:
        if checkpoint.is_dir():
            ckpt_path = find_resume(checkpoint)
            cfg_path = checkpoint / "config.yaml"
            if ckpt_path is None or not cfg_path.is_file():
                raise ValueError(
                    f"{checkpoint} is not a run directory: it needs config.yaml and "
                    "checkpoint_last.pt (or checkpoint_epochN.pt)"
                )
            state = load_checkpoint(ckpt_path)
            config = yaml.safe_load(cfg_path.read_text())
            model = _method_from_config(config, state["model"], source)
            return model, f"run {checkpoint} ({ckpt_path.name}, epoch {state.get('epoch', '?')})"
        if not checkpoint.is_file():
            raise ValueError(f"checkpoint {checkpoint} does not exist")
        if arch is None:
            state = load_checkpoint(checkpoint)
            if state.get("format") == "selflabel-checkpoint" and "config" in state:
                model = _method_from_config(state["config"], state["model"], source)
                return model, f"checkpoint {checkpoint} (epoch {state.get('epoch', '?')})"
            raise ValueError(
                f"{checkpoint} is not a selflabel checkpoint; for a plain backbone state dict "
                "pass --arch (e.g. --arch resnet50)"
            )
        from selflabel.models import build_backbone, load_pretrained

        backbone = build_backbone(arch, in_channels=int(source.image_shape[0]))
        report = load_pretrained(backbone, checkpoint)
        if not report.loaded_keys:
            raise ValueError(f"no tensor of {checkpoint} matches a {arch} backbone")
        return backbone, f"{arch} backbone from {checkpoint} ({report.summary()})"
    except (ValueError, TypeError, KeyError, RuntimeError) as err:
        raise click.ClickException(f"cannot load checkpoint {checkpoint}: {err}") from err


def eval_transform(
    source: Any,
    image_size: int | None,
    crop_fraction: float,
    tta_sizes: tuple[int, ...] = (),
    tta_flip: bool = False,
) -> Any:
    """The deterministic evaluation views (:class:`~selflabel.evaluate.views.TestViews`):
    optional resize + center crop, normalisation; one view unless test-time views are given."""
    from selflabel.evaluate.views import resized_views

    return resized_views(
        image_size,
        tta_sizes,
        mean=source.mean,
        std=source.std,
        crop_fraction=crop_fraction,
        flip=tta_flip,
    )


def recalibrate_for_eval(
    model: nn.Module,
    checkpoint: Path,
    images: Callable[[], Any],
    transform: Any,
    n_images: int | None,
    *,
    device: str,
    batch_size: int,
) -> int:
    """Recompute ``model``'s BatchNorm statistics in place on ``n_images`` images of the source
    ``images()`` under ``transform`` (:func:`~selflabel.evaluate.recalibrate_on_source`; ``None``:
    a run directory's ``eval.bn_recalibrate`` with its seed, as the run's own figures did; 0:
    nothing, and ``images`` is not called). Returns how many images were used."""
    from selflabel.evaluate import recalibrate_on_source

    run = _run_config(checkpoint)
    n = int((run.get("eval") or {}).get("bn_recalibrate") or 0) if n_images is None else n_images
    if n == 0:
        return 0
    model.to(device)
    seed = int(run.get("seed") or 0)
    try:
        return recalibrate_on_source(
            model, images(), transform, n, batch_size=batch_size, seed=seed, device=device
        )
    except ValueError as err:
        raise click.ClickException(f"--bn-recalibrate: {err}") from err


def run_train_images(checkpoint: Path, source: Any, data: str | None, split: str) -> Any:
    """The images a run directory trained on (its ``data.source`` and split, less its
    ``data.holdout`` images): ``source`` itself when that is them; for anything but a run
    directory, ``source``."""
    run_data = run_data_config(checkpoint)
    if not run_data.get("source"):
        return source
    run_split = str(run_data.get("split") or "train")
    train = source
    if data is not None or split != run_split:
        train = load_eval_source(str(run_data["source"]), run_split, run_data.get("image_size"))
    holdout = float(run_data.get("holdout") or 0.0)
    if holdout > 0:
        from selflabel.run.build import holdout_split

        train = holdout_split(train, holdout)[0]
    return train


def describe_view(view: EvalView) -> str:
    """The view in words, for the protocol line."""
    if view.image_size:
        out = f"{view.image_size} (crop fraction {view.crop_fraction})"
    else:
        out = "native size"
    extra = [s for s in view.tta_sizes if s != view.image_size]
    if extra or view.tta_flip:
        sizes = ", ".join(f"{s} px" for s in extra)
        out += (
            f", averaged (L2-normalised) with the run's test-time views"
            f"{' at ' + sizes if sizes else ''}{', each mirrored' if view.tta_flip else ''}"
            " (--single-view: without them)"
        )
    return out


def model_options(f: Any) -> Any:
    """The options shared by ``extract`` and the ``--checkpoint`` path of ``eval``."""
    for opt in reversed(
        [
            click.option(
                "--arch",
                default=None,
                help="Backbone of a plain state-dict checkpoint (resnet18/50, smallcnn, alexnet).",
            ),
            click.option(
                "--image-size",
                type=click.IntRange(min=1),
                default=None,
                help="Resize the shorter side to image-size/crop-fraction, center-crop "
                "image-size (default: a run directory's eval.image_size, else native size).",
            ),
            click.option(
                "--crop-fraction",
                type=click.FloatRange(0, 1, min_open=True),
                default=None,
                help="With --image-size: default 0.875, the usual 256 -> 224 (a run "
                "directory's own view: its eval.crop_fraction).",
            ),
            click.option(
                "--single-view",
                is_flag=True,
                help="Only the eval.image_size view, not a run directory's test-time views "
                "(eval.tta_sizes, eval.tta_flip).",
            ),
            click.option(
                "--bn-recalibrate",
                type=click.IntRange(min=0),
                default=None,
                metavar="N",
                help="Recompute the BatchNorm statistics on N training images in the evaluation's "
                "views first (precise BN; 0: the trained statistics; default: a run directory's "
                "eval.bn_recalibrate, else 0).",
            ),
            click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1."),
            click.option(
                "--batch-size", type=click.IntRange(min=1), default=256, show_default=True
            ),
            click.option("--quiet", is_flag=True, help="No progress bar."),
        ]
    ):
        f = opt(f)
    return f


@click.command("extract")
@click.argument("checkpoint", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--data", "data", metavar="SOURCE", help="Image source spec (default: a run's data.source)."
)
@click.option("--split", default=None, help="Split of a named source (default: train).")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Features .npy (memory-mapped float32); labels go to OUT.labels.npy beside it.",
)
@model_options
def extract(
    checkpoint: Path,
    data: str | None,
    split: str | None,
    out: Path,
    arch: str | None,
    image_size: int | None,
    crop_fraction: float | None,
    single_view: bool,
    bn_recalibrate: int | None,
    device: str,
    batch_size: int,
    quiet: bool,
) -> None:
    """Extract frozen features of every image of --data with CHECKPOINT (run dir or file)."""
    from selflabel.evaluate import extract_features, labels_path_for

    if out.suffix != ".npy":
        raise click.UsageError(f"--out must be a .npy file, got {out}")
    run_data = run_data_config(checkpoint) if data is None else {}
    if data is None and not run_data.get("source"):
        raise click.UsageError("pass --data SOURCE (only a run directory knows its own data)")
    spec = data if data is not None else str(run_data["source"])
    split = split or str(run_data.get("split") or "train")
    source = load_eval_source(spec, split, run_data.get("image_size"))
    model, described = load_eval_model(checkpoint, source, arch)
    view = eval_view(checkpoint, image_size, crop_fraction, single_view)
    transform = eval_transform(source, *view)
    n_bn = recalibrate_for_eval(
        model,
        checkpoint,
        lambda: run_train_images(checkpoint, source, data, split),
        transform,
        bn_recalibrate,
        device=device,
        batch_size=batch_size,
    )
    res = extract_features(
        model,
        source,
        transform=transform,
        device=device,
        out=out,
        batch_size=batch_size,
        progress=not quiet,
    )
    click.echo(
        "protocol: features = model output (Method.features: backbone, pooled) of un-augmented "
        f"images, eval mode, no grad; normalised with the source's mean/std, {describe_view(view)}"
        + (f"; BatchNorm statistics recomputed on {n_bn} training images" if n_bn else "")
    )
    click.echo(f"model: {described}")
    click.echo(f"data: {source.describe()} (split {split})")
    click.echo(
        f"wrote {out} {tuple(res.features.shape)} float32, {labels_path_for(out)}, "
        f"{labels_path_for(out, 'indices')}"
    )
    centres = getattr(model, "feature_centres", lambda: None)()
    if centres is not None:  # where `cluster-eval --init-centroids` can start k-means
        path = labels_path_for(out, "prototypes")
        np.save(path, centres.cpu().numpy().astype(np.float32))
        click.echo(f"wrote {path} {tuple(centres.shape)}: the main head's prototypes")
