"""Run logs: ``metrics.csv`` (columns grow as new keys appear), TensorBoard, a console progress bar.

Only the process created with ``enabled=True`` (rank 0) writes anything::

    log = RunLogger(run_dir, enabled=is_main_process())
    log.log({"loss": 5.1, "lr": 0.3}, kind="train", epoch=0, iteration=10)
    log.close()
    rows = read_metrics(run_dir / "metrics.csv")      # list of dicts, numbers parsed

Every row has ``kind`` ("train", "epoch", "eval", ...), ``epoch`` and ``iteration`` columns;
TensorBoard scalars are tagged ``"{kind}/{key}"`` at step ``iteration``.
"""

from __future__ import annotations

import csv
import math
import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

_FIXED = ["kind", "epoch", "iteration"]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return str(value)


def _parse(value: str) -> Any:
    if value == "":
        return None
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        return value


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows of a ``metrics.csv`` as dicts; numbers parsed, empty cells ``None``."""
    with open(path, newline="") as f:
        return [{k: _parse(v) for k, v in row.items()} for row in csv.DictReader(f)]


class RunLogger:
    """CSV + TensorBoard run log. With ``enabled=False`` every method is a no-op.

    ``metrics.csv`` is appended to; when a row brings a new key the file is rewritten with the
    wider header through a temp file and ``os.replace`` (never a half-written file). An existing
    file is continued (resume); :meth:`truncate` drops rows logged after a checkpoint.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        *,
        enabled: bool = True,
        tensorboard: bool = True,
        csv_name: str = "metrics.csv",
    ) -> None:
        self.enabled = enabled
        self.out_dir = Path(out_dir)
        self.csv_path = self.out_dir / csv_name
        self.columns: list[str] = list(_FIXED)
        self._writer: Any = None
        if not enabled:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if self.csv_path.is_file():
            with open(self.csv_path, newline="") as f:
                header = next(csv.reader(f), None)
            if header:
                self.columns = header + [c for c in _FIXED if c not in header]
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional
                self._writer = None
            else:
                self._writer = SummaryWriter(log_dir=str(self.out_dir / "tensorboard"))

    @property
    def has_tensorboard(self) -> bool:
        """Whether TensorBoard event files are written."""
        return self._writer is not None

    def log(self, values: Mapping[str, Any], *, kind: str, epoch: int, iteration: int) -> None:
        """Append one row (and TensorBoard scalars for the numeric values)."""
        if not self.enabled:
            return
        row = {"kind": kind, "epoch": epoch, "iteration": iteration, **values}
        new = [k for k in row if k not in self.columns]
        if new:
            self._rewrite(
                self.columns + new, read_metrics(self.csv_path) if self.csv_path.is_file() else []
            )
        write_header = not self.csv_path.is_file()
        with open(self.csv_path, "a", newline="") as f:
            writer = csv.writer(f)
            if write_header:
                writer.writerow(self.columns)
            writer.writerow(
                [_fmt(row[c]) if c in row and row[c] is not None else "" for c in self.columns]
            )
        if self._writer is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._writer.add_scalar(f"{kind}/{key}", float(value), iteration)

    def truncate(self, iteration: int) -> None:
        """Drop rows with ``iteration`` greater than the given one (after resuming a checkpoint)."""
        if not self.enabled or not self.csv_path.is_file():
            return
        rows = read_metrics(self.csv_path)
        kept = [
            r
            for r in rows
            if not isinstance(r.get("iteration"), int) or r["iteration"] <= iteration
        ]
        if len(kept) != len(rows):
            self._rewrite(self.columns, kept)

    def _rewrite(self, columns: list[str], rows: list[dict[str, Any]]) -> None:
        fd, tmp = tempfile.mkstemp(prefix=".metrics.", suffix=".tmp", dir=self.out_dir)
        try:
            with os.fdopen(fd, "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(columns)
                for r in rows:
                    writer.writerow([_fmt(r[c]) if r.get(c) is not None else "" for c in columns])
            os.replace(tmp, self.csv_path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.columns = columns

    def flush(self) -> None:
        """Flush TensorBoard events."""
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Flush and close TensorBoard."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def format_duration(seconds: float) -> str:
    """``3725`` -> ``"1:02:05"``."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = round(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class ProgressBar:
    """A tqdm bar over one epoch's steps showing loss, lr, images/s and the run's ETA.

    Disabled (no output) when ``enabled=False`` (non-zero ranks, or ``progress=False``). When
    stderr is not a terminal (a log file, CI), it refreshes at most every 30 s and keeps each
    epoch's final line, instead of writing an update per step.
    """

    def __init__(self, total: int, *, desc: str, enabled: bool = True, initial: int = 0) -> None:
        interactive = sys.stderr.isatty()
        self._bar = tqdm(
            total=total,
            desc=desc,
            initial=initial,
            disable=not enabled,
            dynamic_ncols=True,
            leave=not interactive,
            mininterval=0.1 if interactive else 30.0,
        )

    def update(self, n: int = 1, **postfix: str) -> None:
        """Advance ``n`` steps and show ``postfix`` (already formatted strings)."""
        if postfix:
            self._bar.set_postfix(postfix, refresh=False)
        self._bar.update(n)

    def write(self, message: str) -> None:
        """Print a line above the bar."""
        if not self._bar.disable:
            self._bar.write(message)

    def close(self) -> None:
        """Remove the bar."""
        self._bar.close()
