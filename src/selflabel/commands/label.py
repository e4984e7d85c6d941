"""``selflabel label RUN_DIR``: write the self-labels of a run (every head) as files.

Example::

    selflabel label runs/sela-demo                 # -> labels.npy (N x T), labels_head{t}.csv
    selflabel train --method supervised labels=runs/sela-demo/labels.npy   # label transfer

See :mod:`selflabel.run.export` for what the labels of each method are.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click


@click.command("label")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="folder for labels.npy and labels_head{t}.csv (default: RUN_DIR)",
)
@click.option("--device", default="cpu", show_default=True, help="cpu | cuda | cuda:N")
def label(run_dir: Path, out: Path | None, device: str) -> None:
    """Export the self-labels of a trained run: labels.npy (N x T) and labels_head{t}.csv."""
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    from selflabel.run.export import export_run_labels

    try:
        written = export_run_labels(run_dir, out, device=device)
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    for path in written:
        click.echo(str(path))
