"""``metadl train`` and ``metadl eval`` end to end on a tiny image-folder dataset written on the fly."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import yaml
from cli_runs import write_images

from metadl.cli import main


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    config = tmp / "tiny.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "seed": 1,
                "device": "cpu",
                "dataset": {
                    "name": "image_folder",
                    "root": str(write_images(tmp / "images")),
                    "image_size": 8,
                },
                "sampler": {"ways": 3, "shots": 1, "queries": 2, "meta_batch": 2},
                "backbone": {"name": "mlp", "hidden": [16]},
                "learner": {"name": "protonet"},
                "train": {"iterations": 20, "val_every": 10, "checkpoint_every": 10, "val_episodes": 5},
                "eval": {"episodes": 30, "queries": 3},
            }
        )
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert (
            main(
                [
                    "train",
                    str(config),
                    "--out",
                    str(tmp / "run"),
                    "--no-progress",
                    "--set",
                    "optimizer.lr=0.005",
                ]
            )
            == 0
        )
    finally:
        torch.set_num_threads(threads)
    return tmp / "run", config


def test_train_writes_the_run_folder(trained_run):
    run, _ = trained_run
    for name in (
        "config.yaml",
        "metrics.csv",
        "learning_curves.png",
        "last.ckpt",
        "best.ckpt",
        "model/metadl.json",
    ):
        assert (run / name).is_file(), name
    assert yaml.safe_load((run / "config.yaml").read_text())["optimizer"]["lr"] == 0.005
    assert len((run / "metrics.csv").read_text().splitlines()) == 21


def test_eval_json_end_to_end(trained_run):
    run, _ = trained_run
    cmd = [
        sys.executable,
        "-m",
        "metadl.cli",
        "eval",
        str(run),
        "--json",
        "--episodes",
        "25",
        "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    report = json.loads(out)
    assert report["metric"] == "accuracy" and report["episodes"] == 25 and 0 <= report["mean"] <= 1
    assert report["ci95"] > 0 and report["ways"] == 3 and report["queries"] == 3 and report["split"] == "test"
    assert report["checkpoint"].endswith("best.ckpt")
    assert report["mean"] > 1 / 3  # better than chance on held-out classes


def test_eval_of_run_checkpoint_and_saved_model_agree(trained_run, capsys):
    run, _ = trained_run
    reports = []
    for target in (run, run, run / "best.ckpt", run / "model"):
        assert main(["eval", str(target), "--json", "--episodes", "20", "--no-progress"]) == 0
        reports.append(json.loads(capsys.readouterr().out))
    assert reports[0] == reports[1]  # the same episodes, the same scores
    assert reports[0]["mean"] == pytest.approx(reports[2]["mean"]) == pytest.approx(reports[3]["mean"])
    assert (
        main(
            [
                "eval",
                str(run),
                "--ways",
                "2",
                "--shots",
                "2",
                "--seed",
                "9",
                "--episodes",
                "10",
                "--no-progress",
            ]
        )
        == 0
    )
    assert "2-way 2-shot on image_folder test (seed 9): accuracy" in capsys.readouterr().out


def test_cli_errors_name_the_problem(trained_run, capsys, tmp_path):
    run, config = trained_run
    assert main(["train", str(config), "--out", str(tmp_path / "x"), "--set", "train.iteratons=3"]) == 2
    assert "unknown key 'train.iteratons' (did you mean 'iterations'?)" in capsys.readouterr().err
    assert main(["train", str(config), "--out", str(run)]) == 2
    assert "already holds a run; continue it with --resume" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "--set", "seed=2"]) == 2
    assert "a resumed run keeps the config" in capsys.readouterr().err
    assert main(["eval", str(tmp_path), "--no-progress"]) == 2
    assert "holds no best.ckpt or last.ckpt" in capsys.readouterr().err
    assert main(["eval", str(run), "--split", "nope", "--no-progress"]) == 2
    assert "nope" in capsys.readouterr().err


def test_a_saved_model_without_a_recorded_config_is_evaluated_on_given_data(trained_run, capsys, tmp_path):
    import metadl

    run, config = trained_run
    model = metadl.load(run / "model")
    metadl.save_model(tmp_path / "bare", model.learner, spec=model.spec)  # no metadata, no preprocessing
    assert main(["eval", str(tmp_path / "bare"), "--json", "--episodes", "20", "--no-progress"]) == 2
    assert "records no training config; pass --config" in capsys.readouterr().err
    reports = []
    for target in (run / "model", tmp_path / "bare"):
        assert (
            main(
                ["eval", str(target), "--config", str(config), "--json", "--episodes", "20", "--no-progress"]
            )
            == 0
        )
        reports.append(json.loads(capsys.readouterr().out))
    assert reports[0]["mean"] == reports[1]["mean"] and reports[0]["queries"] == 3


def test_eval_ensemble_averages_the_members_probabilities(trained_run, capsys, tmp_path):
    """A run ensembled with copies of itself predicts as it does; a second seed's run joins it as a
    two-member ensemble; members that read other inputs, or a missing run, exit 2 with one line."""
    from metadl.algorithms.ensemble import ProbabilityEnsemble
    from metadl.evaluation.run import evaluate_config, load_for_eval

    run, config = trained_run
    args = ["--json", "--episodes", "20", "--no-progress", "--no-record"]
    assert main(["eval", str(run), *args]) == 0
    alone = json.loads(capsys.readouterr().out)
    assert main(["eval", str(run), "--ensemble", str(run / "model"), str(run / "best.ckpt"), *args]) == 0
    tripled = json.loads(capsys.readouterr().out)
    assert tripled["mean"] == pytest.approx(alone["mean"])
    assert tripled["ensemble"] == [str(run), str(run / "model"), str(run / "best.ckpt")]

    raw = yaml.safe_load(config.read_text())
    other = tmp_path / "seed2.yaml"
    other.write_text(yaml.safe_dump({**raw, "seed": 2}))
    assert main(["train", str(other), "--out", str(tmp_path / "seed2"), "--no-progress", "--no-record"]) == 0
    cfg, both, _ = load_for_eval(run, ensemble=(tmp_path / "seed2",))
    assert isinstance(both, ProbabilityEnsemble) and len(both.members) == 2
    scored = evaluate_config(cfg, both)
    assert 0 < scored.mean <= 1 and scored.episodes == cfg.eval.episodes

    small = tmp_path / "small.yaml"
    small.write_text(yaml.safe_dump({**raw, "dataset": {**raw["dataset"], "image_size": 6}}))
    assert main(["train", str(small), "--out", str(tmp_path / "small"), "--no-progress", "--no-record"]) == 0
    capsys.readouterr()
    assert main(["eval", str(run), "--ensemble", str(tmp_path / "small"), *args]) == 2
    err = capsys.readouterr().err
    assert "image_size 6" in err and "image_size 8" in err and len(err.strip().splitlines()) == 1
    assert main(["eval", str(run), "--ensemble", str(tmp_path / "nowhere"), *args]) == 2
    assert "nowhere" in capsys.readouterr().err
