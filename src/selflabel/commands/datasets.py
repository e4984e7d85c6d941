"""``selflabel datasets``: list the image sources and the standard datasets found here."""

from __future__ import annotations

import click


@click.command("datasets")
@click.option("--root", "roots", multiple=True, type=click.Path(file_okay=False),
              help="Extra folder to search for standard datasets (repeatable).")
def datasets(roots: tuple[str, ...]) -> None:
    """List the sources `--data` accepts and the standard datasets found on this machine."""
    from selflabel.data.discover import find_datasets
    from selflabel.data.registry import SOURCES

    click.echo("Sources (spec syntax):")
    width = max(len(s.syntax) for s in SOURCES)
    for s in SOURCES:
        click.echo(f"  {s.syntax:<{width}}  {s.description}")
    click.echo("\nStandard datasets found on this machine:")
    found = find_datasets(extra_roots=list(roots))
    if not found:
        click.echo("  none (searched $SELFLABEL_DATA, ~/.cache/selflabel/datasets, "
                   "/usr/share/datasets); the bundled `demo` always works")
    for spec, note in found:
        click.echo(f"  {spec}  ({note})")
    click.echo("\nDownload more with `selflabel download NAME DIR`.")
