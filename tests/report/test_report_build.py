"""`selflabel report`: files produced, links valid, labelled and unlabelled runs, clear errors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from _report_run_fixture import write_run
from click.testing import CliRunner

from selflabel.cli import main
from selflabel.report import html as h
from selflabel.report.build import build_report
from selflabel.report.gallery import gallery_members, shown_clusters

LABELLED_PNGS = {"training.png", "metric_history.png", "cluster_sizes.png", "confusion.png",
                 "gallery_confident.png", "gallery_uncertain.png", "gallery_random.png"}


def _img_sources(index: Path) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', index.read_text())


def _assert_links_resolve(index: Path) -> list[str]:
    sources = _img_sources(index)
    assert sources
    for src in sources:
        assert "/" not in src, src  # a file next to index.html, no URL
        assert (index.parent / src).read_bytes()[:4] == b"\x89PNG", src
    assert "http://" not in index.read_text()
    assert "https://" not in index.read_text()
    return sources


def test_labelled_run_has_every_section(tmp_path: Path) -> None:
    report = build_report(write_run(tmp_path))
    assert report.index == tmp_path / "run" / "report" / "index.html"
    assert set(_assert_links_resolve(report.index)) == LABELLED_PNGS
    assert {p.name for p in report.images} == LABELLED_PNGS
    text = report.index.read_text()
    for expected in ("0.9167", "± std over seeds", "baseline_kmeans_raw", "head_acc",
                     "<details><summary>resolved configuration (config.yaml)", "method",
                     "Confusion matrix", "most confident"):
        assert expected in text, expected
    assert "weighted kNN k=20 T=0.07 &lt;cosine&gt;" in text  # protocol strings are escaped
    for expected in ("test_acc", "0.7123", "0.0456", "test_head_acc", "0.6789",
                     "40 test images &lt;held out&gt;"):
        assert expected in text, expected
    assert "no ground-truth labels" not in text
    # the hand-made clusters: one image of each class (of 12) in the wrong cluster
    assert "Accuracy of these clusters: <b>0.9167</b> (44 of 48 images)" in text
    assert report.notes == []


def test_unlabelled_run_skips_the_label_parts(tmp_path: Path) -> None:
    report = build_report(write_run(tmp_path, labelled=False), tmp_path / "elsewhere")
    assert report.index == tmp_path / "elsewhere" / "index.html"
    sources = set(_assert_links_resolve(report.index))
    assert sources == LABELLED_PNGS - {"confusion.png", "metric_history.png"}
    text = report.index.read_text()
    assert "no ground-truth labels" in text
    assert "no confusion matrix" in text
    assert "no metric history" in text


def test_missing_data_source_skips_galleries_with_a_reason(tmp_path: Path) -> None:
    run = write_run(tmp_path)
    (tmp_path / "data.npz").unlink()
    report = build_report(run)
    assert any("cannot load the run's data source" in n for n in report.notes)
    text = report.index.read_text()
    assert "galleries skipped: cannot load the run" in text
    assert "gallery_confident.png" not in text
    assert "confusion.png" in text  # labels.csv alone is enough for the confusion matrix
    _assert_links_resolve(report.index)


def test_cli_writes_the_report_and_reports_errors(tmp_path: Path) -> None:
    run = write_run(tmp_path)
    out = tmp_path / "rep"
    result = CliRunner().invoke(main, ["report", str(run), "--out", str(out), "--no-images"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith(str(out / "index.html"))
    assert "galleries skipped: galleries were not requested" in (out / "index.html").read_text()
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(main, ["report", str(empty)])
    assert result.exit_code == 1
    assert "not a finished run directory" in result.output
    assert "selflabel train --out" in result.output


def test_cli_data_option_replaces_the_configured_source(tmp_path: Path) -> None:
    run = write_run(tmp_path)
    moved = tmp_path / "moved.npz"
    (tmp_path / "data.npz").rename(moved)
    result = CliRunner().invoke(main, ["report", str(run), "--data", str(moved),
                                       "--per-cluster", "3", "--max-clusters", "2"])
    assert result.exit_code == 0, result.output
    assert "gallery_random.png" in _img_sources(run / "report" / "index.html")
    assert "2 of 4 non-empty clusters" in (run / "report" / "index.html").read_text()


def test_gallery_members_orders() -> None:
    clusters = np.array([0, 0, 0, 1, 1, 2, 0])
    conf = np.array([0.5, 0.9, 0.1, 0.3, 0.8, 0.7, 0.6])
    assert shown_clusters(clusters, 2) == [0, 1]
    best = gallery_members(clusters, conf, order="confident", per_cluster=2)
    assert {c: v.tolist() for c, v in best.items()} == {0: [1, 6], 1: [4, 3], 2: [5]}
    worst = gallery_members(clusters, conf, order="uncertain", per_cluster=2, max_clusters=1)
    assert {c: v.tolist() for c, v in worst.items()} == {0: [2, 0]}
    rand = gallery_members(clusters, None, order="random", per_cluster=3)
    assert sorted(rand[0].tolist()) in ([0, 1, 2], [0, 1, 6], [0, 2, 6], [1, 2, 6])
    assert rand[2].tolist() == [5]
    with pytest.raises(ValueError, match="needs a confidence"):
        gallery_members(clusters, None, order="confident")


def test_html_builders_escape_and_refuse_external_images() -> None:
    assert h.table(["a"], [["<b>"]]).count("&lt;b&gt;") == 1
    with pytest.raises(ValueError, match="relative file name"):
        h.figure("https://example.com/x.png", "x")
    with pytest.raises(ValueError, match="cells"):
        h.table(["a", "b"], [["only one"]])
