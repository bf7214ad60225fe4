"""metadl tune and metadl populate end to end on tiny data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from metadl.cli import main
from metadl.experiments import ExperimentDB, RunRecord
from metadl.tune.space import describe, grid

pytest.importorskip("optuna")
pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {
    "seed": 0,
    "device": "cpu",
    "dataset": {"name": "synthetic_glyphs", "image_size": 16, "num_classes": 8, "examples_per_class": 4},
    "sampler": {"ways": 3, "shots": 1, "queries": 1, "meta_batch": 1},
    "backbone": {"name": "conv4"},
    "learner": {"name": "protonet"},
    "train": {"iterations": 2, "val_every": 1, "checkpoint_every": 2, "val_episodes": 2},
    "eval": {"episodes": 4},
}


def test_tune_warm_starts_from_the_database_and_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ExperimentDB(os.environ["METADL_DB"])
    favourite = grid()[7]
    for name, ways in (("other-a", 3.0), ("other-b", 10.0)):
        for i, point in enumerate([favourite, grid()[30], grid()[60]]):
            db.add(RunRecord(kind="trial", distribution=name, config={}, params=point,
                             metafeatures={"ways": ways, "shots": 1.0}, metrics={"val_accuracy": 0.9 - 0.2 * i}))  # fmt: skip
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    argv = [
        "tune",
        str(config),
        "--trials",
        "2",
        "--out",
        str(tmp_path / "out"),
        "--no-progress",
        "--warm-start",
        "1",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert (
        f"warm start: {describe(favourite)} (from other-a" in out
        and "2 complete, 0 pruned" in out
        and "best_vs_time.png" in out
    )
    assert main([*argv[:3], "3", *argv[4:]]) == 0  # resumed: one more trial, the study keeps its first two
    assert "3 complete" in capsys.readouterr().out
    assert len(db.query(kind="trial")) == 6 + 3  # the planted rows and the study's three trials


def test_bad_tune_and_populate_arguments_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["populate", "--exclude", "glyphs-nonsense"]) == 2
    assert "unknown task distribution" in capsys.readouterr().err
    assert main(["populate", "--omniglot", str(tmp_path / "nowhere")]) == 2
    assert "--omniglot" in capsys.readouterr().err
    assert main(["tune", "no-such-config", "--trials", "1"]) == 2
    with pytest.raises(SystemExit):
        main(["tune", "demo", "--trials", "0"])
