"""The inputs of ``selflabel eval`` probes: saved features, or a checkpoint and its images.

:func:`input_options` adds the options (``--train-features`` ... or ``--checkpoint`` with
``--train-data``/``--test-data``, the model options, ``--json``); :func:`load_inputs` turns them
into :class:`ProbeInputs`; :func:`finish` records them in a probe's result and writes its JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np

from selflabel.commands.extract import (
    describe_view,
    eval_transform,
    eval_view,
    load_eval_model,
    load_eval_source,
    model_options,
    recalibrate_for_eval,
    run_data_config,
)

__all__ = ["ProbeInputs", "finish", "input_options", "load_inputs"]

_PathType = click.Path(dir_okay=False, path_type=Path)


@dataclass
class ProbeInputs:
    """The features and labels a probe scores, and how they were obtained (printed, saved)."""

    train_x: Any
    train_y: np.ndarray
    test_x: Any | None
    test_y: np.ndarray | None
    described: str


def input_options(f: Any) -> Any:
    """Options naming the features (files or a checkpoint + data) and the JSON output."""
    opts = [
        click.option("--train-features", type=_PathType, help="Train features (N, D)."),
        click.option(
            "--train-labels", type=_PathType, help="Train labels (default: FEATS.labels.npy)."
        ),
        click.option("--test-features", type=_PathType, help="Test features (M, D)."),
        click.option("--test-labels", type=_PathType, help="Test labels (default: beside)."),
        click.option(
            "--checkpoint",
            type=click.Path(exists=True, path_type=Path),
            help="Run directory or checkpoint file to extract features with.",
        ),
        click.option(
            "--train-data",
            metavar="SOURCE",
            help=(
                "Train images (with --checkpoint; default: a run's data.source, less its "
                "data.holdout images)."
            ),
        ),
        click.option(
            "--test-data",
            metavar="SOURCE",
            help=(
                "Test images (with --checkpoint; default: a run's data.holdout images when it "
                "has them, else its data.test_source)."
            ),
        ),
        click.option("--train-split", default=None, help="Default: train."),
        click.option("--test-split", default=None, help="Default: test."),
        click.option("--json", "json_path", type=_PathType, help="Also write the result here."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return model_options(f)


def _from_files(o: dict[str, Any]) -> ProbeInputs:
    from selflabel.evaluate import load_array, load_labels_for

    try:
        train_x = load_array(o["train_features"], role="features")
        train_y = load_labels_for(o["train_features"], o["train_labels"])
        test_x = test_y = None
        if o["test_features"] is not None:
            test_x = load_array(o["test_features"], role="features")
            test_y = load_labels_for(o["test_features"], o["test_labels"])
        elif o["test_labels"] is not None:
            raise click.UsageError("--test-labels needs --test-features")
    except ValueError as err:
        raise click.ClickException(str(err)) from err
    described = f"train {o['train_features']} {tuple(train_x.shape)}"
    if test_x is not None:
        described += f", test {o['test_features']} {tuple(test_x.shape)}"
    return ProbeInputs(train_x, train_y, test_x, test_y, described)


def _from_checkpoint(o: dict[str, Any]) -> ProbeInputs:
    from selflabel.evaluate import extract_features

    run_data = run_data_config(o["checkpoint"])
    train_spec = o["train_data"] or run_data.get("source")
    if train_spec is None:
        raise click.UsageError("--checkpoint needs --train-data SOURCE (and usually --test-data)")
    size = None if o["train_data"] else run_data.get("image_size")
    train_split = o["train_split"] or str(run_data.get("split") or "train")
    train_src = load_eval_source(str(train_spec), train_split, size)
    described_train = f"{train_src.describe()} (split {train_split})"
    # a run trained with data.holdout: its own split, so the held-out images stay out of the
    # train features and are what is scored unless --test-data names other images
    holdout = 0.0 if o["train_data"] else float(run_data.get("holdout") or 0.0)
    test_src = None
    described_test = ""
    if holdout > 0:
        from selflabel.run.build import holdout_split

        train_src, test_src = holdout_split(train_src, holdout)
        described_train += f" without its data.holdout={holdout} ({len(train_src)} images)"
        described_test = f"the run's held-out validation images ({len(test_src)}, data.holdout)"
    own_test = None if o["train_data"] or holdout > 0 else run_data.get("test_source")
    test_spec = o["test_data"] or own_test
    if test_spec is not None:
        test_split = o["test_split"] or str(run_data.get("test_split") or "test")
        test_src = load_eval_source(str(test_spec), test_split, size)
        described_test = f"{test_src.describe()} (split {test_split})"
    model, described = load_eval_model(o["checkpoint"], train_src, o["arch"])
    kw = dict(device=o["device"], batch_size=o["batch_size"], progress=not o["quiet"])
    view = eval_view(o["checkpoint"], o["image_size"], o["crop_fraction"], o["single_view"])
    transform = eval_transform(train_src, *view)
    n_bn = recalibrate_for_eval(
        model, o["checkpoint"], lambda: train_src, transform, o["bn_recalibrate"],
        device=o["device"], batch_size=o["batch_size"],
    )
    if n_bn:
        described_train += f"; BatchNorm statistics recomputed on {n_bn} of these images"
    train = extract_features(model, train_src, transform=transform, **kw)
    test_x = test_y = None
    described += f"; view {describe_view(view)}; train {described_train}"
    if test_src is not None:
        test = extract_features(model, test_src, transform=eval_transform(test_src, *view), **kw)
        test_x, test_y = test.features, test.labels
        described += f"; test {described_test}"
    return ProbeInputs(train.features, train.labels, test_x, test_y, described)


def load_inputs(o: dict[str, Any]) -> ProbeInputs:
    """The features named by the options of :func:`input_options` (files, or a checkpoint)."""
    has_files = o["train_features"] is not None or o["test_features"] is not None
    if has_files and o["checkpoint"] is not None:
        raise click.UsageError("pass either precomputed --*-features or --checkpoint, not both")
    if o["checkpoint"] is not None:
        return _from_checkpoint(o)
    if o["train_features"] is None:
        raise click.UsageError("pass --train-features (and --test-features) or --checkpoint")
    return _from_files(o)


def finish(result: dict[str, Any], inputs: ProbeInputs, json_path: Path | None) -> None:
    """Record where the features came from and write ``result`` as JSON when asked."""
    result["inputs"] = inputs.described
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=2, default=_plain))
        click.echo(f"wrote {json_path}")


def _plain(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)
