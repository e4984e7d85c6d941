from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from selflabel.config import (
    ConfigError,
    RunConfig,
    apply_override,
    build_config,
    dump_config,
    load_config,
    preset_names,
)


def test_every_preset_validates() -> None:
    names = preset_names()
    assert {"demo", "fmnist-swav", "fmnist-swav-deep", "fmnist-sela", "fmnist-sela-swav",
            "cifar10", "imagenet-swav"} <= set(names)
    # the former name of the Fashion-MNIST SwAV preset still loads it
    assert load_config("fmnist") == load_config("fmnist-swav")
    for name in names:
        assert isinstance(load_config(name), RunConfig)


def test_overrides_are_parsed_as_yaml() -> None:
    cfg = load_config(
        "demo", ["optim.lr=0.05", "model.n_prototypes=[10, 20]", "train.max_minutes="]
    )
    assert cfg.optim.lr == pytest.approx(0.05)
    assert cfg.model.n_prototypes == [10, 20]
    assert cfg.train.max_minutes is None


def test_unknown_key_names_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown config key 'model.bakcbone'.*backbone"):
        load_config("demo", ["model.bakcbone=resnet18"])
    with pytest.raises(ConfigError, match="valid keys in model"):
        build_config({"model": {"depth": 3}})


def test_bad_values_and_syntax() -> None:
    with pytest.raises(ConfigError, match=r"optim\.lr"):
        load_config("demo", ["optim.lr=-1"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config("demo", ["optim.lr"])
    with pytest.raises(ConfigError, match=r"eval\.center: Input should be 'none', 'knn' or 'all'"):
        load_config("demo", ["eval.center=median"])
    with pytest.raises(ConfigError, match="is a value, not a section"):
        apply_override({}, "seed.x=1")
    with pytest.raises(ConfigError, match="unknown preset"):
        load_config("no-such-preset")


def test_dump_round_trip(tmp_path: Path) -> None:
    cfg = load_config("fmnist-swav", ["seed=3"])
    path = tmp_path / "config.yaml"
    path.write_text(dump_config(cfg))
    assert yaml.safe_load(path.read_text())["seed"] == 3
    assert load_config(path) == cfg
