from __future__ import annotations

import subprocess
import sys

import pytest
from _dist_fns import allreduce_rank
from click.testing import CliRunner

import selflabel
from selflabel.cli import main
from selflabel.testing import run_distributed


def test_version_and_help() -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0
    assert selflabel.__version__ in result.output
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_console_script_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "selflabel", "--version"], capture_output=True, text=True, check=True
    )
    assert selflabel.__version__ in out.stdout


@pytest.mark.distributed
def test_run_distributed_all_reduce() -> None:
    assert run_distributed(allreduce_rank, 2) == [3.0, 3.0]
