"""metrics.csv with growing columns, truncation on resume, TensorBoard, progress bar."""

from __future__ import annotations

from pathlib import Path

from selflabel.engine.runlog import ProgressBar, RunLogger, format_duration, read_metrics


def test_csv_grows_columns_and_keeps_rows(tmp_path: Path) -> None:
    log = RunLogger(tmp_path, tensorboard=False)
    log.log({"loss": 2.5, "lr": 0.1}, kind="train", epoch=0, iteration=1)
    log.log({"loss": 2.0, "acc": 0.5}, kind="eval", epoch=0, iteration=2)
    log.log({"loss": 1.5}, kind="train", epoch=1, iteration=3)
    rows = read_metrics(tmp_path / "metrics.csv")
    assert list(rows[0]) == ["kind", "epoch", "iteration", "loss", "lr", "acc"]
    assert rows[0] == {
        "kind": "train",
        "epoch": 0,
        "iteration": 1,
        "loss": 2.5,
        "lr": 0.1,
        "acc": None,
    }
    assert rows[1]["acc"] == 0.5
    assert rows[2]["loss"] == 1.5
    log.close()
    again = RunLogger(tmp_path, tensorboard=False)  # a resumed run continues the file
    again.truncate(2)
    again.log({"loss": 1.0, "new": 7}, kind="train", epoch=1, iteration=3)
    rows = read_metrics(tmp_path / "metrics.csv")
    assert [r["iteration"] for r in rows] == [1, 2, 3]
    assert rows[2]["new"] == 7
    assert rows[2]["loss"] == 1.0


def test_disabled_logger_writes_nothing(tmp_path: Path) -> None:
    log = RunLogger(tmp_path / "x", enabled=False)
    log.log({"loss": 1.0}, kind="train", epoch=0, iteration=0)
    log.truncate(0)
    log.close()
    assert not (tmp_path / "x").exists()


def test_tensorboard_events_are_written(tmp_path: Path) -> None:
    log = RunLogger(tmp_path)
    assert log.has_tensorboard
    log.log({"loss": 1.0, "name": "x"}, kind="train", epoch=0, iteration=0)
    log.close()
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def test_progress_helpers() -> None:
    assert format_duration(3725) == "1:02:05"
    assert format_duration(float("nan")) == "?"
    bar = ProgressBar(3, desc="epoch 1/1", enabled=False)
    bar.update(1, loss="1.0")
    bar.write("hidden")
    bar.close()
