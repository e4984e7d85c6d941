"""``selflabel report RUN_DIR``: a self-contained HTML report of a finished run.

Example::

    selflabel report runs/swav-demo-20260101-120000          # -> RUN_DIR/report/index.html
    selflabel report runs/swav-demo --out /tmp/rep --open    # elsewhere, and open it in a browser
    selflabel report runs/copied-run --data ~/data/fmnist.npz   # the data lives elsewhere now

The folder holds ``index.html`` and the PNGs it shows (relative links, inline CSS, no external
URL), so it can be copied or archived as is. See :mod:`selflabel.report.build` for the sections.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from selflabel.data import ImageSource


@click.command("report")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="folder for index.html and its PNGs (default: RUN_DIR/report)",
)
@click.option("--open", "open_", is_flag=True, help="open the report in the default browser")
@click.option(
    "--data",
    default=None,
    help="image source for the galleries (default: the data.source of RUN_DIR/config.yaml)",
)
@click.option("--split", default=None, help="split of --data (default: the run's data.split)")
@click.option("--no-images", is_flag=True, help="skip the image galleries (no data access)")
@click.option("--per-cluster", default=8, show_default=True, type=click.IntRange(1, 64),
              help="images per cluster in each gallery")
@click.option("--max-clusters", default=20, show_default=True, type=click.IntRange(1, 1000),
              help="clusters shown in each gallery (largest first)")
def report(
    run_dir: Path,
    out: Path | None,
    open_: bool,
    data: str | None,
    split: str | None,
    no_images: bool,
    per_cluster: int,
    max_clusters: int,
) -> None:
    """Write an HTML report of RUN_DIR: summary, metrics, curves, cluster galleries, confusion."""
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    from selflabel.report.build import build_report

    source = None
    if data is not None and not no_images:
        source = _load(run_dir, data, split)
    try:
        result = build_report(
            run_dir,
            out,
            source=source,
            images=not no_images,
            per_cluster=per_cluster,
            max_clusters=max_clusters,
        )
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    for text in result.notes:
        click.echo(f"note: {text}", err=True)
    click.echo(str(result.index))
    if open_:
        click.launch(str(result.index))


def _load(run_dir: Path, spec: str, split: str | None) -> ImageSource:
    """The ``--data`` source, with the run's split unless ``--split`` is given."""
    from selflabel.data import load_source
    from selflabel.report.run_files import read_run

    if split is None:
        try:
            cfg = read_run(run_dir).config
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        split = cfg.data.split if cfg is not None else "train"
    try:
        return load_source(spec, split=split)
    except (ValueError, TypeError, OSError) as exc:
        raise click.ClickException(f"cannot load --data {spec!r}: {exc}") from None
