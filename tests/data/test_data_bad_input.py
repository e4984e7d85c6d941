"""Bad input: converted, skipped and reported, or a clear error before training — never a crash
mid-epoch."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from _data_fixtures import class_folder, idx_dir, rgb, write_idx, write_image
from PIL import Image

from selflabel.data import BadImageError, load_source, make_loader
from selflabel.data.decode import check_image, decode_file


@pytest.fixture
def messy(tmp_path: Path) -> Path:
    """A flat folder with 3 good images and one of each bad file kind."""
    root = tmp_path / "messy"
    for i in range(3):
        write_image(root / f"good{i}.png", rgb(seed=i))
    (root / "empty.jpg").write_bytes(b"")
    (root / "text.png").write_text("this is not a png")
    good = write_image(tmp_path / "full.jpg", rgb(64, 64, seed=9), quality=95).read_bytes()
    (root / "truncated.jpg").write_bytes(good[: len(good) // 2])
    png = write_image(tmp_path / "full.png", rgb(seed=8)).read_bytes()
    (root / "truncated.png").write_bytes(png[: len(png) - 30])
    return root


def test_bad_files_are_skipped_and_reported(messy: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        ds = load_source(messy)
    assert len(ds) == 3
    reasons = dict((Path(p).name, why) for p, why in ds.skipped)
    assert set(reasons) == {"empty.jpg", "text.png", "truncated.jpg", "truncated.png"}
    assert "empty" in reasons["empty.jpg"]
    assert "truncated" in reasons["truncated.jpg"]
    assert "skipped 4 bad input(s)" in caplog.text
    assert "empty.jpg" in caplog.text
    for batch in make_loader(ds, 2, drop_last=False, num_workers=0):
        assert batch[1].shape[1:] == (3, 12, 10)


def test_strict_mode_turns_skips_into_errors(messy: Path) -> None:
    with pytest.raises(ValueError, match=r"4 bad input\(s\) \(strict mode\)"):
        load_source(messy, strict=True)


@pytest.mark.parametrize("mode", ["CMYK", "P", "RGBA", "LA", "I;16", "1", "L"])
def test_modes_are_converted_consistently(tmp_path: Path, mode: str) -> None:
    base = rgb(8, 8, seed=3)
    if mode == "I;16":
        arr16 = (base[..., 0].astype(np.uint16) * 257)
        path = tmp_path / "x.png"
        Image.fromarray(arr16).save(path)
        assert Image.open(path).mode.startswith("I")
    elif mode == "RGBA":
        a = np.dstack([base, np.full((8, 8), 255, np.uint8)])
        a[0, 0, 3] = 0
        path = write_image(tmp_path / "x.png", a)
    elif mode == "LA":
        a = np.dstack([base[..., 0], np.full((8, 8), 255, np.uint8)])
        a[0, 0, 1] = 0
        path = write_image(tmp_path / "x.png", a)
    else:
        ext = ".tif" if mode == "CMYK" else ".png"
        path = write_image(tmp_path / f"x{ext}", base, mode=mode)
    gray = mode in ("LA", "I;16", "1", "L")
    out = decode_file(path, gray=gray)
    assert out.dtype == np.uint8
    assert out.shape == ((8, 8) if gray else (8, 8, 3))
    if mode == "I;16":
        assert np.array_equal(out, base[..., 0])  # high byte of v * 257 == v
    if mode in ("RGBA", "LA"):
        assert (out[0, 0] == 255).all()  # transparent → white background
        assert np.array_equal(out[1, 1], base[1, 1] if mode == "RGBA" else base[1, 1, 0])
    ds = load_source(tmp_path)
    assert ds.channels == (1 if gray else 3)


def test_gray_file_in_colour_folder_is_replicated(tmp_path: Path) -> None:
    write_image(tmp_path / "c.png", rgb(seed=1))
    write_image(tmp_path / "g.png", rgb(seed=2)[..., 0])
    ds = load_source(tmp_path)
    assert ds.channels == 3
    g = ds[1][1]
    assert torch.equal(g[0], g[1])
    assert torch.equal(g[1], g[2])


def test_mixed_sizes_need_image_size(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", rgb(10, 10))
    write_image(tmp_path / "b.png", rgb(20, 12))
    with pytest.raises(ValueError, match="image_size"):
        load_source(tmp_path)


def test_small_images_are_resized_up(tmp_path: Path) -> None:
    write_image(tmp_path / "tiny.png", rgb(3, 5))
    ds = load_source(tmp_path, image_size=32)
    assert ds[0][1].shape == (3, 32, 32)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    im = Image.fromarray(rgb(10, 20))
    exif = im.getexif()
    exif[0x0112] = 6  # rotated 90° clockwise
    im.save(tmp_path / "r.jpg", exif=exif)
    assert check_image(tmp_path / "r.jpg")[1] == (20, 10)
    assert decode_file(tmp_path / "r.jpg", gray=False).shape == (20, 10, 3)


def test_duplicate_paths_are_skipped(tmp_path: Path) -> None:
    class_folder(tmp_path / "img", per_class=2)
    (tmp_path / "l.csv").write_text("img/cat/0.png,0\nimg/cat/1.png,0\nimg/cat/0.png,1\n"
                                    "img/none.png,1\n")
    ds = load_source(tmp_path / "l.csv")
    assert len(ds) == 2
    why = [w for _, w in ds.skipped]
    assert any("duplicate of row 1" in w for w in why)
    assert any("missing" in w for w in why)
    os.symlink(tmp_path / "img" / "cat" / "0.png", tmp_path / "img" / "cat" / "link.png")
    folder = load_source(tmp_path / "img")
    assert len(folder) == 4
    assert "duplicate" in folder.skipped[0][1]


def test_empty_sources_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images found"):
        load_source(tmp_path / "empty")
    (tmp_path / "only_bad").mkdir()
    (tmp_path / "only_bad" / "x.png").write_bytes(b"")
    with pytest.raises(ValueError, match="empty: no readable images"):
        load_source(tmp_path / "only_bad")
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(ValueError, match="empty"):
        load_source(tmp_path / "e.csv")


def test_labels_that_do_not_match(tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", images=np.zeros((4, 5, 5), np.uint8), labels=np.arange(3))
    with pytest.raises(ValueError, match="3 labels for 4 images"):
        load_source(tmp_path / "a.npz")
    np.save(tmp_path / "x.npy", np.zeros((4, 5, 5), np.uint8))
    with pytest.raises(ValueError, match="one entry per image"):
        load_source(tmp_path / "x.npy", labels=[1, 2])
    idx_dir(tmp_path / "idx")
    write_idx(tmp_path / "idx" / "train-labels-idx1-ubyte.gz", np.zeros(5, np.uint8))
    with pytest.raises(ValueError, match="do not belong together"):
        load_source(f"mnist:{tmp_path / 'idx'}")
    (tmp_path / "bad.csv").write_text("path,label\nimg.png,-5\n")
    write_image(tmp_path / "img.png", rgb())
    with pytest.raises(ValueError, match=">= 0"):
        load_source(tmp_path / "bad.csv")


def test_truncated_idx_is_an_error(tmp_path: Path) -> None:
    idx_dir(tmp_path)
    p = tmp_path / "train-images-idx3-ubyte.gz"
    import gzip

    data = gzip.decompress(p.read_bytes())
    p.write_bytes(gzip.compress(data[:-100]))
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_source(f"mnist:{tmp_path}")


def test_file_broken_after_loading_falls_back_to_next_index(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for i in range(3):
        write_image(tmp_path / f"{i}.png", rgb(seed=i))
    ds = load_source(tmp_path)
    strict = load_source(tmp_path, strict=True)
    (tmp_path / "1.png").write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING):
        idx, images, _labels = ds.get_batch([0, 1, 2])
    assert idx.tolist() == [0, 2, 2]  # the replacement keeps its own index
    assert torch.equal(images[1], images[2])
    assert "1.png" in caplog.text
    with pytest.raises(BadImageError, match=r"1\.png"):
        strict.get_batch([1])


def test_png_and_zero_byte_checks(tmp_path: Path) -> None:
    (tmp_path / "z.png").write_bytes(b"")
    with pytest.raises(BadImageError, match="0 bytes"):
        check_image(tmp_path / "z.png")
    with pytest.raises(BadImageError, match="cannot read"):
        check_image(tmp_path / "missing.png")
