"""The ``selflabel`` command line.

Each sub-command lives in its own module under :mod:`selflabel.commands` and is imported only when
it is invoked, so ``selflabel --help`` stays fast and a broken optional dependency of one command
never breaks the others. To add a command, add one line to :data:`COMMANDS`.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from selflabel._version import __version__

#: sub-command name -> "module:attribute" of a :class:`click.Command`.
COMMANDS: dict[str, str] = {
    "cluster-eval": "selflabel.commands.cluster_eval:cluster_eval",
    "datasets": "selflabel.commands.datasets:datasets",
    "download": "selflabel.commands.download:download",
    "eval": "selflabel.commands.eval:eval_group",
    "extract": "selflabel.commands.extract:extract",
    "label": "selflabel.commands.label:label",
    "report": "selflabel.commands.report:report",
    "train": "selflabel.commands.train:train",
}


class LazyGroup(click.Group):
    """A click group whose sub-commands are imported on first use."""

    def __init__(self, *args: Any, lazy: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lazy = dict(lazy)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self._lazy))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self._lazy:
            module_name, attr = self._lazy[cmd_name].split(":")
            command = getattr(importlib.import_module(module_name), attr)
            if not isinstance(command, click.Command):
                raise TypeError(f"{self._lazy[cmd_name]} is not a click command")
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="selflabel")
def main() -> None:
    """Learn representations and cluster labels from unlabelled images with optimal transport.

    Run `selflabel COMMAND --help` for the options of a command.
    """


if __name__ == "__main__":  # pragma: no cover
    main()
