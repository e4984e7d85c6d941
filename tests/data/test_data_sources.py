"""Every source kind loads to the (index, uint8 C×H×W, label) contract."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from _data_fixtures import (
    cifar10_dir,
    cifar100_dir,
    class_folder,
    idx_dir,
    rgb,
    stl10_dir,
    svhn_dir,
    write_image,
)

from selflabel.data import ArraySource, ImageSource, load_source, parse_spec
from selflabel.data.registry import DEBIAN_FASHION_MNIST


def _check_contract(ds: ImageSource, n: int, shape: tuple[int, int, int]) -> None:
    assert len(ds) == n
    i, img, y = ds[n - 1]
    assert i == n - 1
    assert isinstance(i, int)
    assert isinstance(y, int)
    assert img.dtype == torch.uint8
    assert tuple(img.shape) == shape
    assert ds.channels == shape[0]
    assert ds.image_shape == shape
    idx, imgs, labels = ds.get_batch([0, n - 1])
    assert idx.tolist() == [0, n - 1]
    assert imgs.shape == (2, *shape)
    assert labels.dtype == torch.long
    assert len(ds.mean) == len(ds.std) == shape[0]


def test_demo_is_bundled_fashion_mnist_test_split() -> None:
    ds = load_source("demo")
    _check_contract(ds, 10_000, (1, 28, 28))
    assert ds.num_classes == 10
    assert ds.classes is not None
    assert ds.classes[0] == "T-shirt/top"
    assert torch.bincount(ds.labels).tolist() == [1000] * 10
    assert ds.skipped == []
    assert ds.paths is None
    assert abs(ds.mean[0] - 0.286) < 0.01
    assert abs(ds.std[0] - 0.353) < 0.01


def test_demo_files_and_licence_ship_in_the_package() -> None:
    from importlib import resources

    demo = resources.files("selflabel.data") / "demo"
    names = {p.name for p in demo.iterdir()}
    assert {"t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
            "LICENSE-fashion-mnist.txt"} <= names
    assert "Zalando SE" in (demo / "LICENSE-fashion-mnist.txt").read_text()


def test_digits_native_and_upscaled() -> None:
    ds = load_source("digits")
    _check_contract(ds, 1797, (1, 8, 8))
    assert ds.num_classes == 10
    assert int(ds.images.max()) == 255
    big = load_source("digits", image_size=32)
    _check_contract(big, 1797, (1, 32, 32))
    assert torch.equal(big.labels, ds.labels)


@pytest.mark.skipif(not (DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz").exists(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_found_automatically() -> None:
    ds = load_source("fashion-mnist", split="test")
    assert len(ds) == 10_000
    assert ds.num_classes == 10
    assert torch.equal(ds.images, load_source("demo").images)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_folder(tmp_path: Path, gz: bool) -> None:
    idx_dir(tmp_path / "raw", gz=gz)
    train = load_source(f"mnist:{tmp_path}")  # found one level down
    test = load_source(f"mnist:{tmp_path}", split="test")
    _check_contract(train, 6, (1, 28, 28))
    _check_contract(test, 4, (1, 28, 28))
    assert train.labels.tolist() == [0, 1, 2, 3, 4, 5]
    assert load_source(f"fashion-mnist:{tmp_path}").classes[9] == "Ankle boot"  # type: ignore[index]
    with pytest.raises(ValueError, match="split"):
        load_source(f"mnist:{tmp_path}", split="val")


def test_cifar10_and_cifar100(tmp_path: Path) -> None:
    cifar10_dir(tmp_path / "c10")
    ds = load_source(f"cifar10:{tmp_path / 'c10'}")
    _check_contract(ds, 10, (3, 32, 32))
    assert ds.classes is not None
    assert ds.classes[3] == "c3"
    assert ds.num_classes == 10
    inner = tmp_path / "c10" / "cifar-10-batches-py"
    assert len(load_source(f"cifar10:{inner}", split="test")) == 2
    cifar100_dir(tmp_path / "c100")
    fine = load_source(f"cifar100:{tmp_path / 'c100'}")
    coarse = load_source(f"cifar100:{tmp_path / 'c100'}", split="test", label_type="coarse")
    assert fine.num_classes == 100
    assert fine.labels.tolist() == [90, 91, 92, 93, 94]
    assert coarse.num_classes == 20
    assert coarse.labels.tolist() == [19] * 5


def test_cifar_row_layout_is_channel_major(tmp_path: Path) -> None:
    cifar10_dir(tmp_path)
    import pickle

    raw = pickle.loads((tmp_path / "cifar-10-batches-py" / "data_batch_1").read_bytes())
    ds = load_source(f"cifar10:{tmp_path}")
    expected = raw[b"data"][0].reshape(3, 32, 32)
    assert np.array_equal(ds[0][1].numpy(), expected)


def test_stl10_splits_and_orientation(tmp_path: Path) -> None:
    stl10_dir(tmp_path)
    train = load_source(f"stl10:{tmp_path}")
    _check_contract(train, 3, (3, 96, 96))
    assert np.array_equal(train.images.numpy(), np.load(tmp_path / "train_expected.npy"))
    assert train.labels.tolist() == [0, 1, 2]
    assert train.classes[0] == "k0"
    unl = load_source(f"stl10:{tmp_path}", split="unlabeled")
    assert len(unl) == 4
    assert (unl.labels == -1).all()
    assert unl.num_classes == 10
    both = load_source(f"stl10:{tmp_path}", split="train+unlabeled")
    assert len(both) == 7
    assert both.labels.tolist() == [0, 1, 2, -1, -1, -1, -1]


def test_svhn_label_ten_is_zero(tmp_path: Path) -> None:
    svhn_dir(tmp_path)
    ds = load_source(f"svhn:{tmp_path}")
    _check_contract(ds, 5, (3, 32, 32))
    assert ds.labels.tolist() == [0, 1, 2, 3, 0]
    import scipy.io

    x = scipy.io.loadmat(tmp_path / "train_32x32.mat")["X"]
    assert np.array_equal(ds[1][1].numpy(), x[:, :, :, 1].transpose(2, 0, 1))
    with pytest.raises(ValueError, match="missing"):
        load_source(f"svhn:{tmp_path}", split="extra")


def test_npz_and_npy_layouts(tmp_path: Path) -> None:
    imgs = np.random.default_rng(0).integers(0, 256, (7, 9, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "a.npz", images=imgs, labels=np.arange(7) % 3)
    ds = load_source(tmp_path / "a.npz")
    _check_contract(ds, 7, (3, 9, 8))
    assert ds.num_classes == 3
    assert np.array_equal(ds[2][1].numpy(), imgs[2].transpose(2, 0, 1))
    np.save(tmp_path / "g.npy", imgs[..., 0])
    gray = load_source(str(tmp_path / "g.npy"))
    _check_contract(gray, 7, (1, 9, 8))
    assert gray.num_classes == 0
    assert (gray.labels == -1).all()
    np.save(tmp_path / "y.npy", np.arange(7))
    labelled = load_source(tmp_path / "g.npy", labels=str(tmp_path / "y.npy"))
    assert labelled.labels.tolist() == list(range(7))
    np.savez(tmp_path / "f.npz", images=imgs.astype(np.float32) / 255.0)
    assert torch.equal(load_source(tmp_path / "f.npz").images, ds.images)


def test_class_folder_and_flat_folder(tmp_path: Path) -> None:
    class_folder(tmp_path / "cls")
    (tmp_path / "cls" / "dog" / "notes.txt").write_text("not an image")
    (tmp_path / "cls" / ".hidden").mkdir()
    ds = load_source(tmp_path / "cls")
    _check_contract(ds, 6, (3, 12, 10))
    assert ds.classes == ["cat", "dog"]
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert ds.paths is not None
    assert ds.paths[3].endswith(os.path.join("dog", "0.png"))
    assert ds.skipped == []
    arr = np.asarray(__import__("PIL.Image").Image.open(ds.paths[4]))
    assert np.array_equal(ds[4][1].numpy(), arr.transpose(2, 0, 1))
    flat = tmp_path / "flat"
    write_image(flat / "a.png", rgb())
    write_image(flat / "sub" / "b.jpg", rgb(seed=1))
    fds = load_source(str(flat))
    assert len(fds) == 2
    assert fds.num_classes == 0
    assert (fds.labels == -1).all()


def test_gray_folder_is_one_channel(tmp_path: Path) -> None:
    for i in range(2):
        write_image(tmp_path / f"{i}.png", rgb(seed=i)[..., 0])
    ds = load_source(tmp_path)
    assert ds.channels == 1
    assert ds[0][1].shape == (1, 12, 10)
    assert ds.mean == (0.449,)


def test_list_files_csv_and_txt(tmp_path: Path) -> None:
    class_folder(tmp_path / "img")
    (tmp_path / "l.csv").write_text("path,label\nimg/cat/0.png,cat\nimg/dog/1.png,dog\n"
                                    "img/dog/2.png,\n")
    ds = load_source(tmp_path / "l.csv")
    assert ds.classes == ["cat", "dog"]
    assert ds.labels.tolist() == [0, 1, -1]
    assert ds.num_classes == 2
    (tmp_path / "l.txt").write_text(f"{tmp_path}/img/cat/0.png 4\nimg/cat/1.png 2\n# comment\n")
    txt = load_source(str(tmp_path / "l.txt"))
    assert txt.labels.tolist() == [4, 2]
    assert txt.num_classes == 5
    (tmp_path / "n.csv").write_text("img/cat/0.png\nimg/cat/1.png\n")
    assert load_source(tmp_path / "n.csv").num_classes == 0


def test_folder_of_mixed_sizes_with_image_size(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", rgb(40, 20))
    write_image(tmp_path / "b.jpg", rgb(10, 30, seed=2))
    ds = load_source(tmp_path, image_size=16)
    _check_contract(ds, 2, (3, 16, 16))


def test_split_and_subset_renumber() -> None:
    ds = load_source("digits")
    train, val = ds.split(0.25, seed=3)
    assert len(val) == round(0.25 * 1797)
    assert len(train) + len(val) == 1797
    assert set(train.parent_indices.tolist()).isdisjoint(val.parent_indices.tolist())
    i, img, y = val[5]
    j = int(val.parent_indices[5])
    assert i == 5
    assert torch.equal(img, ds[j][1])
    assert y == ds[j][2]
    again, _ = ds.split(0.25, seed=3)
    assert torch.equal(again.parent_indices, train.parent_indices)
    with pytest.raises(ValueError, match="fraction"):
        ds.split(1.5)


def test_spec_parsing_and_unknown_names(tmp_path: Path) -> None:
    assert parse_spec("cifar10:/x") == ("cifar10", "/x")
    assert parse_spec("CIFAR-10:/x") == ("cifar10", "/x")
    assert parse_spec("demo") == ("demo", None)
    assert parse_spec(tmp_path) == (None, str(tmp_path))
    with pytest.raises(ValueError, match="does not exist"):
        load_source("no-such-thing")
    with pytest.raises(ValueError, match="needs a folder"):
        load_source("cifar10")
    with pytest.raises(TypeError, match="unknown option"):
        load_source("demo", bogus=1)


def test_array_source_validates_its_inputs() -> None:
    with pytest.raises(TypeError, match="uint8"):
        ArraySource(torch.zeros(2, 1, 4, 4))
    with pytest.raises(ValueError, match="labels"):
        ArraySource(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="empty"):
        ArraySource(torch.zeros(0, 1, 4, 4, dtype=torch.uint8))
