"""``metadl train/eval/cluster`` on a clustering learner, end to end on tiny image folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_runs import train_config, train_tiny_run, write_images

from metadl.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pairwise clustering model trained for 10 iterations on 5 classes of 8x8 patterns."""
    tmp = tmp_path_factory.mktemp("cluster")
    images = write_images(tmp / "images", classes=5, per_class=6)
    raw = {
        "seed": 0,
        "device": "cpu",
        "dataset": {"name": "image_folder", "root": str(images), "image_size": 8, "val_split": None},
        "sampler": {"ways": 3, "shots": 2, "queries": 2, "meta_batch": 2},
        "backbone": {"name": "mlp", "hidden": [16]},
        "learner": {"name": "pairwise"},
        "train": {"iterations": 10, "val_every": 0, "checkpoint_every": 5},
        "eval": {"split": "test"},
    }
    train_config(raw, tmp / "cluster.yaml", tmp / "run")
    return tmp / "run"


def test_eval_json_reports_clustering_scores(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(run), "--json", "--no-progress"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["metric"] == "clustering_accuracy" and report["k"] == "true"
    assert {"mean", "ci95", "nmi", "ari", "nmi_ci95", "ari_ci95"} <= set(report)
    assert report["groups"] == 1 and report["per_group"][0]["k"] == 5  # image_folder: one group of 5 classes
    assert 0.2 <= report["mean"] <= 1.0
    assert main(["eval", str(run), "--json", "--no-progress", "--set", "eval.clusters=7"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["k"] == 7 and report["per_group"][0]["k"] == 7
    assert main(["eval", str(run), "--json", "--no-progress", "--set", "eval.clusters=estimate"]) == 0
    assert "k_exact" in json.loads(capsys.readouterr().out)


def test_cluster_writes_file_cluster_lines(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images = run.parent / "images" / "test"
    assert main(["cluster", str(run), "--images", str(images), "--k", "5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "file,cluster" and len(lines) == 1 + 30
    files = [line.split(",")[0] for line in lines[1:]]
    assert files == sorted(files) and files[0] == "c0/0.png"
    assert {int(line.split(",")[1]) for line in lines[1:]} == set(range(5))
    assert main(["cluster", str(run / "model"), "--images", str(images), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 30 and set(rows[0]) == {"file", "cluster"}


def test_cluster_is_deterministic(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images = run.parent / "images" / "val"
    outputs = []
    for _ in range(2):
        assert main(["cluster", str(run), "--images", str(images), "--k", "4"]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]


def test_cluster_errors_are_one_line(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images = run.parent / "images" / "test"
    assert main(["cluster", str(run), "--images", str(images), "--k", "31"]) == 2
    assert "k = 31 clusters for 30 examples" in capsys.readouterr().err
    assert main(["cluster", str(run), "--images", str(tmp_path / "nowhere"), "--k", "2"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    with pytest.raises(SystemExit):
        main(["cluster", str(run), "--images", str(images), "--k", "0"])
    protonet = train_tiny_run(tmp_path)
    assert main(["cluster", str(protonet.run), "--images", str(images), "--k", "2"]) == 2
    assert "does not cluster" in capsys.readouterr().err
