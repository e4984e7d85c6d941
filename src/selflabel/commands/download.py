"""``selflabel download NAME DIR``: fetch a standard dataset with checksum verification."""

from __future__ import annotations

import click


@click.command("download")
@click.argument("name")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--only", multiple=True, help="Fetch only these file names (repeatable).")
def download(name: str, directory: str, only: tuple[str, ...]) -> None:
    """Download dataset NAME (mnist, fashion-mnist, cifar10, cifar100, stl10, svhn) into DIRECTORY.

    Files are verified against their published MD5 checksums and archives are extracted; files
    already present and verified are skipped. Then use e.g. `--data cifar10:DIRECTORY`.
    """
    from selflabel.data.download import DATASETS
    from selflabel.data.download import download as fetch

    key = name.lower().replace("_", "-")
    if key not in DATASETS:
        raise click.BadParameter(f"choose one of {', '.join(sorted(DATASETS))}", param_hint="NAME")
    try:
        root = fetch(key, directory, only=only or None)
    except OSError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"{key} ready in {root}: use --data {key}:{root}")
