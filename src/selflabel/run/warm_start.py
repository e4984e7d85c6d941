"""Start a run's backbone from trained weights (``model.init_from``): fine-tuning, two stages.

``model.init_from`` names one of

- a run directory (its ``checkpoint_last.pt``, else its highest ``checkpoint_epochN.pt``) or one
  of our checkpoint files: the backbone tensors of the saved method are copied, whatever the
  method was (SeLa's heads, SwAV's projection and prototypes are left behind);
- a plain backbone state dict (torchvision, official SwAV/SeLa files): loaded with
  :func:`selflabel.models.load_pretrained` (``module.``/``backbone.`` prefixes stripped, heads
  ignored).

Every backbone tensor must be filled and no checkpoint tensor may be left over (other than
heads), so a mismatched architecture or width fails with the list of keys instead of training
from a half-initialised network. The method's own heads and prototypes start fresh.

Example::

    backbone = build_backbone("smallcnn", in_channels=1)
    report = init_backbone(backbone, "runs/fmnist-sela")     # a SeLa run's backbone
    print(report.summary())
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from selflabel.engine.checkpoint import find_resume, load_checkpoint
from selflabel.models import LoadReport, load_pretrained

__all__ = ["backbone_state", "init_backbone"]

_BACKBONE = "backbone."


def backbone_state(method_state: dict[str, Any]) -> dict[str, Tensor]:
    """The backbone tensors of a saved method's state dict, keyed as in the bare backbone.

    A method holds its backbone as ``backbone.*`` (SeLa) or ``network.backbone.*`` (SwAV and the
    offline methods); everything before and including the first ``backbone.`` is dropped.
    """
    out: dict[str, Tensor] = {}
    for key, value in method_state.items():
        head, sep, rest = key.partition(_BACKBONE)
        if sep and (not head or head.endswith(".")) and isinstance(value, Tensor):
            out[rest] = value
    return out


def _checkpoint_file(spec: Path) -> Path:
    if spec.is_dir():
        found = find_resume(spec)
        if found is None:
            raise ValueError(
                f"model.init_from={spec} is a directory without checkpoint_last.pt or "
                "checkpoint_epochN.pt: point it at a finished run directory or a checkpoint file"
            )
        return found
    if not spec.is_file():
        raise ValueError(
            f"model.init_from={spec} does not exist: give a run directory, a selflabel "
            "checkpoint or a backbone state dict (e.g. a torchvision .pth file)"
        )
    return spec


def init_backbone(backbone: nn.Module, spec: str | os.PathLike[str]) -> LoadReport:
    """Fill every tensor of ``backbone`` from ``spec`` (see the module docstring).

    Raises:
        ValueError: ``spec`` is missing, or its tensors do not fill this backbone exactly
            (different architecture, width or input channels); nothing is loaded then.
    """
    path = _checkpoint_file(Path(spec))
    state = load_checkpoint(path)
    if state.get("format") == "selflabel-checkpoint" and isinstance(state.get("model"), dict):
        tensors = backbone_state(state["model"])
        if not tensors:
            raise ValueError(f"model.init_from: {path} holds no backbone.* tensors")
        source: dict[str, Any] = tensors
    else:
        source = state  # a plain state dict, already read: load_pretrained unwraps it
    try:
        report = load_pretrained(backbone, source, strict=True)
    except ValueError as err:
        raise ValueError(
            f"model.init_from: {path} does not fit this backbone (same model.backbone, "
            f"model.width and image channels needed):\n{err}"
        ) from err
    report.source = str(path)
    return report
