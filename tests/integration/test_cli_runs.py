"""``metadl train`` / ``metadl eval`` record their runs in the experiment database; ``metadl runs`` lists them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from cli_runs import write_images

from metadl.cli import main
from metadl.experiments import ExperimentDB

pytestmark = pytest.mark.usefixtures("one_thread")


def _config(tmp_path: Path) -> Path:
    raw = {
        "seed": 1,
        "device": "cpu",
        "dataset": {
            "name": "image_folder",
            "root": str(write_images(tmp_path / "images", size=16)),
            "image_size": 16,
        },
        "sampler": {"ways": 3, "shots": 1, "queries": 2, "meta_batch": 2},
        "backbone": {"name": "mlp", "hidden": [16]},
        "learner": {"name": "protonet"},
        "train": {"iterations": 4, "val_every": 2, "checkpoint_every": 2, "val_episodes": 3},
        "eval": {"episodes": 5, "queries": 3},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_train_and_eval_are_recorded_and_listed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path)
    assert main(["train", str(config), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    assert main(["eval", str(tmp_path / "run"), "--no-progress"]) == 0
    assert main(["train", str(config), "--out", str(tmp_path / "run2"), "--no-progress", "--no-record"]) == 0
    db = ExperimentDB(os.environ["METADL_DB"])
    train, evaluation = db.query()  # the --no-record run is not there
    assert (
        train.kind == "train"
        and train.config_name == "tiny"
        and train.config["learner"]["name"] == "protonet"
    )
    assert train.metrics["iterations"] == 4 and 0 <= train.metrics["val_accuracy"] <= 1
    assert (
        train.metafeatures["ways"] == 3
        and train.metafeatures["height"] == 16
        and train.metafeatures["is_image"] == 1
    )
    assert (
        0 <= train.metafeatures["landmark_frozen"] <= 1 and train.peak_memory_mb and train.peak_memory_mb > 10
    )
    assert train.distribution.startswith("image_folder") and train.distribution.endswith("/train:3w1s2q")
    assert evaluation.kind == "eval" and evaluation.distribution.endswith("/test:3w1s3q")
    assert evaluation.metrics["episodes"] == 5 and 0 <= evaluation.metrics["test_accuracy"] <= 1
    capsys.readouterr()
    assert main(["runs", "--json", "--kind", "eval"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == [evaluation.id]
    assert main(["runs", "--config", "tiny", "--where", "iterations>=4"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("1 run(s)") and "val_accuracy=" in out
    assert main(["runs", "--where", "accuracy"]) == 2
    assert "NAME OP VALUE" in capsys.readouterr().err


def test_an_unwritable_database_warns_and_keeps_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"garbage" * 200)
    monkeypatch.setenv("METADL_DB", str(bad))
    assert main(["train", str(_config(tmp_path)), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    assert "warning: run not recorded" in capsys.readouterr().err
    assert (tmp_path / "run" / "model").is_dir()
