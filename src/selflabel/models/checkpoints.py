"""Load external checkpoints (torchvision, official SwAV, SeLa, our own) into our modules, safely.

Checkpoints are read with ``torch.load(..., weights_only=True, map_location="cpu")`` only: a file
that needs arbitrary unpickling (e.g. one that stores an ``argparse.Namespace``) is refused with
:class:`UnsafeCheckpointError`, whose message shows how to convert a trusted file once.

Key matching, for every checkpoint key:

1. wrappers ``{"state_dict": ...}`` / ``{"model": ...}`` are unwrapped, non-tensor entries dropped;
2. the prefixes in ``prefix_strip`` (default ``module.`` from DDP and ``backbone.``) are removed
   from the front, from checkpoint keys and, for matching, from model keys as well; so
   ``module.conv1.weight`` (SwAV, DDP) fills ``conv1.weight`` of a bare ResNet and
   ``backbone.conv1.weight`` of a network that holds the ResNet as ``backbone``;
3. optional ``rename`` prefixes are applied (e.g. ``{"top_layer": "heads.top_layer"}``);
4. ``name.weight`` and ``name.0.weight`` are tried for each other (SwAV's single-``Linear``
   projection head vs our ``ProjectionHead``);
5. shapes must agree; head keys the model does not have (``fc.``, ``projection_head.``,
   ``prototypes.``, ``top_layer``) are *ignored*, anything else unmatched is *unexpected*.

Example::

    net = build_backbone("resnet50")
    report = load_pretrained(net, "swav_800ep_pretrain.pth.tar")
    print(report.summary())   # loaded 320 tensors; ignored projection_head.*, prototypes.*
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

__all__ = ["LoadReport", "UnsafeCheckpointError", "load_pretrained", "read_state_dict"]

logger = logging.getLogger(__name__)

_WRAPPER_KEYS = ("state_dict", "model")
_DEFAULT_IGNORE = ("fc.", "projection_head.", "prototypes.", "top_layer")


class UnsafeCheckpointError(ValueError):
    """A checkpoint that cannot be read with ``weights_only=True`` (needs arbitrary unpickling)."""


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did.

    Attributes:
        loaded_keys: model keys that received a tensor.
        missing_keys: model keys the checkpoint did not provide (BN ``num_batches_tracked`` left
            out: old checkpoints lack it and it does not affect the model).
        unexpected_keys: checkpoint keys (after prefix stripping) that match nothing.
        ignored_keys: checkpoint head keys (``fc.*``, ...) the model does not have.
        mismatched_keys: ``(key, checkpoint shape, model shape)`` of keys not loaded for shape.
        source: the path or ``"<state dict>"``.
    """

    loaded_keys: list[str] = field(default_factory=list)
    missing_keys: list[str] = field(default_factory=list)
    unexpected_keys: list[str] = field(default_factory=list)
    ignored_keys: list[str] = field(default_factory=list)
    mismatched_keys: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(
        default_factory=list
    )
    source: str = "<state dict>"

    @property
    def ok(self) -> bool:
        """True when every model key was filled and nothing unexpected or mismatched was seen."""
        return not (self.missing_keys or self.unexpected_keys or self.mismatched_keys)

    def summary(self) -> str:
        """A few readable lines for logs and error messages."""
        lines = [f"{self.source}: loaded {len(self.loaded_keys)} tensors"]
        for label, keys in (
            ("missing", self.missing_keys),
            ("unexpected", self.unexpected_keys),
            ("ignored", self.ignored_keys),
        ):
            if keys:
                shown = ", ".join(keys[:8]) + (
                    f", ... ({len(keys)} in all)" if len(keys) > 8 else ""
                )
                lines.append(f"  {label}: {shown}")
        for key, got, want in self.mismatched_keys[:8]:
            lines.append(f"  shape mismatch: {key} checkpoint {got} vs model {want}")
        return "\n".join(lines)


def _convert_hint(path: str) -> str:
    out = os.path.splitext(path)[0] + "_weights.pth"
    return (
        "If you trust this file, convert it once to a plain state dict and load the result:\n"
        "  python -c \"import torch; c = torch.load('" + path + "', map_location='cpu', "
        "weights_only=False); sd = c.get('state_dict', c.get('model', c)) if isinstance(c, dict) "
        "else c.state_dict(); torch.save({k: v for k, v in sd.items() if torch.is_tensor(v)}, '"
        + out
        + "')\""
    )


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Read a checkpoint file safely and return its tensors as a flat state dict.

    Unwraps ``{"state_dict": ...}`` and ``{"model": ...}``; keeps keys as stored (prefixes and all).

    Raises:
        FileNotFoundError: no such file.
        UnsafeCheckpointError: the file needs arbitrary unpickling (refused for safety).
        ValueError: not a PyTorch checkpoint, or no tensors in it.

    Example: ``sd = read_state_dict("resnet18.pth"); sd["conv1.weight"].shape``
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if "weights only" in str(err).lower() or "weights_only" in str(err).lower():
            raise UnsafeCheckpointError(
                f"refused for safety: {path} needs arbitrary unpickling, which could run code "
                f"(torch.load with weights_only=True failed: {first}). selflabel only reads "
                f"tensors and plain containers.\n{_convert_hint(path)}"
            ) from err
        raise ValueError(f"{path} is not a readable PyTorch checkpoint ({first})") from err
    except Exception as err:  # torch raises many types for files that are not checkpoints
        raise ValueError(f"{path} is not a readable PyTorch checkpoint ({err})") from err
    return _extract_state_dict(obj, path)


def _extract_state_dict(obj: object, source: str) -> dict[str, Tensor]:
    for _ in range(4):
        if not isinstance(obj, Mapping):
            break
        inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping):
        raise ValueError(
            f"{source}: expected a state dict (a mapping of names to tensors), got "
            f"{type(obj).__name__}"
        )
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, Tensor)}
    if not tensors:
        keys = ", ".join(map(str, list(obj)[:10]))
        raise ValueError(
            f"{source}: no tensors found (top-level keys: {keys}); pass the model's state dict "
            "or a checkpoint with a 'state_dict' or 'model' entry"
        )
    return tensors


def _strip(key: str, prefixes: Sequence[str]) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in prefixes:
            if prefix and key.startswith(prefix):
                key = key[len(prefix) :]
                changed = True
    return key


def _alternatives(key: str) -> list[str]:
    """``a.weight`` ↔ ``a.0.weight`` (a single Linear stored bare or as the first of a sequence)."""
    head, _, leaf = key.rpartition(".")
    if not head:
        return []
    if head.endswith(".0"):
        return [f"{head[:-2]}.{leaf}"]
    return [f"{head}.0.{leaf}"]


def load_pretrained(
    model: nn.Module,
    path_or_state_dict: str | os.PathLike[str] | Mapping[str, object],
    *,
    prefix_strip: Sequence[str] = ("module.", "backbone."),
    strict: bool = False,
    rename: Mapping[str, str] | None = None,
    ignore_prefixes: Sequence[str] = _DEFAULT_IGNORE,
) -> LoadReport:
    """Copy the matching tensors of a checkpoint into ``model`` and report what happened.

    Args:
        model: the module to fill (a backbone, or a network holding ``backbone``,
            ``projection_head`` and ``prototypes``).
        path_or_state_dict: a checkpoint file, or an in-memory (possibly wrapped) state dict.
        prefix_strip: prefixes removed from the front of keys before matching.
        strict: raise ``ValueError`` (and load nothing) unless every model key is filled and no
            checkpoint key is unexpected or mismatched; ignored head keys are allowed.
        rename: prefix renames applied to checkpoint keys after stripping, e.g.
            ``{"top_layer": "heads.top_layer"}``.
        ignore_prefixes: checkpoint key prefixes that may be dropped silently when the model has
            no such keys (classifier and SSL heads).

    Returns:
        A :class:`LoadReport`; its summary is also logged.

    Example::

        report = load_pretrained(build_backbone("resnet18"), "resnet18-f37072fd.pth")
        assert not report.missing_keys            # fc.* are listed in report.ignored_keys
    """
    if isinstance(path_or_state_dict, str | os.PathLike):
        source = os.fspath(path_or_state_dict)
        ckpt = read_state_dict(source)
    elif isinstance(path_or_state_dict, Mapping):
        source = "<state dict>"
        ckpt = _extract_state_dict(path_or_state_dict, source)
    else:
        raise TypeError(
            "path_or_state_dict must be a file path or a state dict, got "
            f"{type(path_or_state_dict).__name__}"
        )
    target = model.state_dict()
    by_norm: dict[str, str] = {}
    for mk in target:
        by_norm.setdefault(_strip(mk, prefix_strip), mk)
    report = LoadReport(source=source)
    mapped: dict[str, Tensor] = {}
    for key, value in ckpt.items():
        stripped = _strip(key, prefix_strip)
        for old, new in (rename or {}).items():
            if stripped.startswith(old):
                stripped = new + stripped[len(old) :]
                break
        candidates = [stripped, *_alternatives(stripped)]
        match = next((c for c in candidates if c in target and c not in mapped), None)
        if match is None:
            match = next(
                (by_norm[c] for c in candidates if c in by_norm and by_norm[c] not in mapped), None
            )
        if match is None:
            if any(stripped.startswith(p) for p in ignore_prefixes):
                report.ignored_keys.append(stripped)
            else:
                report.unexpected_keys.append(stripped)
            continue
        if tuple(value.shape) != tuple(target[match].shape):
            report.mismatched_keys.append((match, tuple(value.shape), tuple(target[match].shape)))
            continue
        mapped[match] = value
    report.loaded_keys = sorted(mapped)
    report.missing_keys = [
        k for k in target if k not in mapped and not k.endswith("num_batches_tracked")
    ]
    if strict and not report.ok:
        raise ValueError(
            "checkpoint does not match the model (strict=True, nothing loaded):\n"
            + report.summary()
            + "\nPass strict=False to load the matching tensors, or `rename` to map key prefixes."
        )
    model.load_state_dict(mapped, strict=False)
    log = logger.warning if (report.missing_keys or report.mismatched_keys) else logger.info
    log("%s", report.summary())
    return report
