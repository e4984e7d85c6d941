"""`selflabel download` / `selflabel datasets` against a loopback HTTP server (no internet)."""

from __future__ import annotations

import functools
import hashlib
import io
import tarfile
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from _data_fixtures import cifar10_dir, idx_dir
from click.testing import CliRunner

from selflabel.cli import main
from selflabel.data import load_source
from selflabel.data.download import RemoteFile, download


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(_Quiet, directory=str(root))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", root
    finally:
        httpd.shutdown()
        httpd.server_close()


def _md5(p: Path) -> str:
    return hashlib.md5(p.read_bytes(), usedforsecurity=False).hexdigest()


def _tar(src: Path, dest: Path) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    dest.write_bytes(buf.getvalue())
    return dest


def test_archive_is_verified_extracted_and_loadable(server: tuple[str, Path],
                                                    tmp_path: Path) -> None:
    url, served = server
    archive = _tar(cifar10_dir(tmp_path / "src"), served / "c10.tar.gz")
    table = {"cifar10": (RemoteFile("cifar-10-python.tar.gz", (url + "missing", url + "c10.tar.gz"),
                                    _md5(archive), extract=True),)}
    root = download("cifar10", tmp_path / "data", table=table)
    ds = load_source(f"cifar10:{root}")
    assert len(ds) == 10
    served.joinpath("c10.tar.gz").unlink()  # present and verified: not fetched again
    download("cifar10", tmp_path / "data", table=table)


def test_checksum_mismatch_is_an_error_and_leaves_nothing(server: tuple[str, Path],
                                                          tmp_path: Path) -> None:
    url, served = server
    (served / "f.gz").write_bytes(b"payload")
    table = {"mnist": (RemoteFile("f.gz", (url + "f.gz",), "0" * 32),)}
    with pytest.raises(OSError, match="checksum mismatch"):
        download("mnist", tmp_path / "d", table=table)
    assert not (tmp_path / "d" / "f.gz").exists()
    with pytest.raises(ValueError, match="unknown dataset"):
        download("imagenet", tmp_path / "d", table=table)


def test_idx_files_download_and_load(server: tuple[str, Path], tmp_path: Path) -> None:
    url, served = server
    idx_dir(served)
    names = sorted(p.name for p in served.iterdir())
    table = {"fashion-mnist": tuple(RemoteFile(n, (url + n,), _md5(served / n)) for n in names)}
    root = download("fashion-mnist", tmp_path / "fm", table=table)
    assert len(load_source(f"fashion-mnist:{root}", split="test")) == 4


def test_download_command_uses_the_table(server: tuple[str, Path], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    url, served = server
    (served / "x.mat").write_bytes(b"mat")
    import selflabel.data.download as dl

    monkeypatch.setitem(dl.DATASETS, "svhn", (RemoteFile("x.mat", (url + "x.mat",),
                                                         _md5(served / "x.mat")),))
    result = CliRunner().invoke(main, ["download", "svhn", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "s" / "x.mat").read_bytes() == b"mat"
    assert "svhn:" in result.output
    bad = CliRunner().invoke(main, ["download", "nope", str(tmp_path)])
    assert bad.exit_code != 0
    assert "choose one of" in bad.output


def test_datasets_command_lists_sources_and_finds_data(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    cifar10_dir(tmp_path / "c10")
    monkeypatch.setenv("SELFLABEL_DATA", str(tmp_path))
    result = CliRunner().invoke(main, ["datasets"])
    assert result.exit_code == 0, result.output
    assert "demo" in result.output
    assert "cifar10:DIR" in result.output
    assert f"cifar10:{tmp_path / 'c10'}" in result.output
