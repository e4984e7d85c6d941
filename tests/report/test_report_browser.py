"""The report renders in headless Chromium and every image on the page loads.

Skipped only when no Chromium binary is installed (CI installs the Debian `chromium` package in
scripts/test.sh).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from _report_run_fixture import write_run

from selflabel.report.build import build_report

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
NEEDS_CHROMIUM = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary on PATH (install it: apt-get install chromium)"
)
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def _chromium(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    profile = tmp_path / "profile"
    cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


@NEEDS_CHROMIUM
def test_report_renders_with_all_images_loaded(tmp_path: Path) -> None:
    report = build_report(write_run(tmp_path / "run"))
    # copy the folder elsewhere: the page must not depend on the run directory
    copied = Path(shutil.copytree(report.index.parent, tmp_path / "copied"))
    url = (copied / "index.html").as_uri()
    dom = _chromium(["--virtual-time-budget=5000", "--dump-dom", url], tmp_path)
    match = re.search(r'<body[^>]*data-images-loaded="(\d+)/(\d+)"', dom.stdout)
    assert match, f"no images-loaded marker in the DOM; stderr: {dom.stderr[-2000:]}"
    loaded, total = int(match.group(1)), int(match.group(2))
    assert total == len(report.images) == 7
    assert loaded == total
    shot = tmp_path / "shot.png"
    _chromium([f"--screenshot={shot}", "--window-size=1200,2000", url], tmp_path)
    assert shot.read_bytes()[:4] == b"\x89PNG"


@NEEDS_CHROMIUM
def test_a_missing_image_is_detected(tmp_path: Path) -> None:
    """The check can fail: delete one PNG and the page reports one image fewer."""
    report = build_report(write_run(tmp_path / "run"), images=False)
    (report.index.parent / "training.png").unlink()
    dom = _chromium(["--virtual-time-budget=5000", "--dump-dom", report.index.as_uri()], tmp_path)
    match = re.search(r'data-images-loaded="(\d+)/(\d+)"', dom.stdout)
    assert match
    assert int(match.group(1)) == int(match.group(2)) - 1
