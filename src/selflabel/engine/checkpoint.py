"""Atomic checkpoints that load with ``weights_only=True``, RNG capture/restore, resume lookup.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts only, so that
:func:`load_checkpoint` never needs arbitrary unpickling::

    state = {"model": method.state_dict(), "rng": capture_rng(), "config": to_plain(cfg)}
    save_checkpoint(run_dir / "checkpoint_last.pt", state)
    path = find_resume(run_dir)              # run_dir/checkpoint_last.pt or None
    state = load_checkpoint(path)            # weights_only=True, map_location="cpu"
    restore_rng(state["rng"])
"""

from __future__ import annotations

import enum
import os
import pickle
import random
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

LAST = "checkpoint_last.pt"
_EPOCH_RE = re.compile(r"checkpoint_epoch(\d+)\.pt$")


class CheckpointError(ValueError):
    """A checkpoint that cannot (or must not) be loaded."""


def epoch_checkpoint_name(epoch: int) -> str:
    """File name of the kept checkpoint after ``epoch`` epochs: ``checkpoint_epoch{epoch}.pt``."""
    return f"checkpoint_epoch{epoch}.pt"


def rank_checkpoint_name(name: str, rank: int) -> str:
    """Name of the per-rank side file of checkpoint ``name`` (rank-local buffers and RNG)."""
    stem = name[: -len(".pt")] if name.endswith(".pt") else name
    return f"{stem}.rank{rank}.pt"


def to_plain(obj: Any, _path: str = "config") -> Any:
    """A copy of ``obj`` made of dict/list/str/int/float/bool/None only (safe to save and compare).

    Mappings become dicts with string keys, tuples and sets become lists, paths become strings,
    enums their values, numpy scalars and 0-d tensors Python numbers; objects with
    ``model_dump()`` (pydantic) are dumped first. Anything else is a ``TypeError``.

    Example::

        >>> to_plain({"out": Path("runs/a"), "crops": (2, 6)})
        {'out': 'runs/a', 'crops': [2, 6]}
    """
    if hasattr(obj, "model_dump") and callable(obj.model_dump):
        return to_plain(obj.model_dump(), _path)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, enum.Enum):
        return to_plain(obj.value, _path)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, torch.Tensor) and obj.ndim == 0:
        return obj.item()
    if isinstance(obj, Mapping):
        return {str(k): to_plain(v, f"{_path}.{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = sorted(obj, key=repr) if isinstance(obj, (set, frozenset)) else obj
        return [to_plain(v, f"{_path}[{i}]") for i, v in enumerate(items)]
    raise TypeError(
        f"{_path}: cannot store a {type(obj).__name__} in a checkpoint config; "
        "use plain numbers, strings, lists and dicts"
    )


# --------------------------------------------------------------------------------------- RNG


def capture_rng() -> dict[str, Any]:
    """The states of torch (CPU and every CUDA device), numpy and Python ``random``.

    Stored as tensors, ints and floats so the dict loads with ``weights_only=True``.
    """
    np_state: tuple[Any, ...] = tuple(np.random.get_state())  # noqa: NPY002 - global state
    py_version, py_internal, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {
            "version": int(py_version),
            "state": torch.tensor(py_internal, dtype=torch.int64),
            "gauss_next": py_gauss,
        },
    }


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy's global RNG and Python ``random`` with ``seed``."""
    torch.manual_seed(seed)  # also seeds every CUDA device
    np.random.seed(seed % 2**32)  # noqa: NPY002 - the global RNG is what augmentations use
    random.seed(seed)


def restore_rng(state: Mapping[str, Any]) -> None:
    """Restore what :func:`capture_rng` captured (CUDA states only when CUDA is available)."""
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda", [])
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    npd = state["numpy"]
    np.random.set_state(  # noqa: NPY002 - restoring the global state
        (
            "MT19937",
            npd["keys"].numpy().astype(np.uint32),
            int(npd["pos"]),
            int(npd["has_gauss"]),
            float(npd["cached_gaussian"]),
        )
    )
    pyd = state["python"]
    random.setstate(
        (int(pyd["version"]), tuple(int(v) for v in pyd["state"].tolist()), pyd["gauss_next"])
    )


# ------------------------------------------------------------------------------- save / load


def save_checkpoint(path: str | os.PathLike[str], state: Mapping[str, Any]) -> Path:
    """Write ``state`` atomically: a temp file in the same folder, fsync, then ``os.replace``.

    A crash at any point leaves either the previous file or the new one, never a torn file.

    Example::

        save_checkpoint("runs/a/checkpoint_last.pt", {"model": model.state_dict(), "epoch": 1})
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(dict(state), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows: directories cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint with ``torch.load(weights_only=True, map_location="cpu")``.

    A file that needs arbitrary unpickling (pickled classes, functions, ...) is refused with a
    :class:`CheckpointError`: loading it could run code. A missing file is a
    ``FileNotFoundError``; a corrupt one a :class:`CheckpointError`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"refusing to load {path}: it needs arbitrary unpickling, which can run code "
            "(selflabel loads checkpoints only with torch.load(weights_only=True)). If you trust "
            "the file, re-save its tensors as a plain dict (state_dict) and load that instead. "
            f"Detail: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from exc
    except (RuntimeError, EOFError, OSError) as exc:
        raise CheckpointError(
            f"cannot read checkpoint {path} (truncated or corrupt?): {exc}"
        ) from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, expected a dict checkpoint")
    return state


def find_resume(run_dir: str | os.PathLike[str]) -> Path | None:
    """``run_dir/checkpoint_last.pt`` if present, else the highest ``checkpoint_epoch{N}.pt``,
    else ``None``."""
    run_dir = Path(run_dir)
    last = run_dir / LAST
    if last.is_file():
        return last
    numbered = [
        (int(m.group(1)), p)
        for p in run_dir.glob("checkpoint_epoch*.pt")
        if (m := _EPOCH_RE.search(p.name))
    ]
    return max(numbered)[1] if numbered else None


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: obj}


def config_diff(
    saved: Mapping[str, Any], current: Mapping[str, Any], ignore: tuple[str, ...] = ()
) -> list[str]:
    """Human-readable differences between two (nested) configs, as ``"key: old -> new"``.

    A key is ignored when its dotted path or its last component is in ``ignore``.

    Example::

        >>> config_diff({"optim": {"lr": 0.1}}, {"optim": {"lr": 0.2}})
        ['optim.lr: 0.1 (checkpoint) != 0.2 (now)']
    """
    a, b = _flatten(to_plain(dict(saved))), _flatten(to_plain(dict(current)))
    diffs = []
    for key in sorted(set(a) | set(b)):
        if key in ignore or key.rsplit(".", 1)[-1] in ignore:
            continue
        missing = "<missing>"
        va, vb = a.get(key, missing), b.get(key, missing)
        if va != vb:
            diffs.append(f"{key}: {va!r} (checkpoint) != {vb!r} (now)")
    return diffs
