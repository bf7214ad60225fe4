"""Bad input at the command line: exit code 2, one line naming the thing and the fix (issue 12)."""

from __future__ import annotations

import csv
import importlib
import io
import shutil
from pathlib import Path

import pytest
import yaml
from cli_runs import TinyRun, train_tiny_run

from metadl.cli import build_parser, main
from metadl.evaluation import episodes as episodes_module
from metadl.training.checkpoint import save_checkpoint

og = importlib.import_module("metadl.data.omniglot")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> TinyRun:
    return train_tiny_run(tmp_path_factory.mktemp("reliab"))


def fails(argv: list[str], capsys, *needles: str) -> str:
    """Run the CLI in-process; assert exit code 2 and one line on stderr holding every needle."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


def write_config(tmp_path: Path, raw: dict, **changes: dict) -> Path:
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for section, values in changes.items():
        raw[section].update(values)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


# ------------------------------------------------------------------ item 5


def test_exponent_floats_are_accepted_at_the_command_line(tiny, tmp_path):
    argv = ["train", str(tiny.config), "--out", str(tmp_path / "r"), "--no-progress"]
    assert main([*argv, "--set", "optimizer.lr=1e-3", "--set", "train.iterations=2"]) == 0


def test_nan_is_refused_at_the_command_line(tiny, tmp_path, capsys):
    fails(
        ["train", str(tiny.config), "--out", str(tmp_path / "r"), "--set", "optimizer.gamma=.nan"],
        capsys,
        "optimizer.gamma = nan is not allowed: must be a finite number",
    )
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------ item 7


def test_eval_refuses_an_episode_that_cannot_fit_in_memory(tiny, capsys, monkeypatch):
    monkeypatch.setattr(episodes_module, "available_memory", lambda: 1 << 12)
    fails(
        ["eval", str(tiny.run), "--ways", "5", "--episodes", "2", "--no-progress"],
        capsys,
        "one 5-way 1-shot 3-query episode needs about",
        "evaluate fewer ways or queries",
    )


# ------------------------------------------------------------------ item 11


def test_episode_shapes_the_data_cannot_give_are_one_line(tiny, capsys):
    fails(["eval", str(tiny.run), "--ways", "50", "--no-progress"], capsys, "50")
    fails(["eval", str(tiny.run), "--shots", "4", "--queries", "4", "--no-progress"], capsys, "8")


def test_a_missing_validation_split_says_how_to_turn_it_off(tiny, tmp_path, capsys):
    shutil.copytree(Path(tiny.raw["dataset"]["root"]) / "train", tmp_path / "data" / "train")
    config = write_config(tmp_path, tiny.raw, dataset={"root": str(tmp_path / "data")})
    fails(
        ["train", str(config), "--out", str(tmp_path / "r"), "--no-progress"],
        capsys,
        "val does not exist",
        "dataset.val_split: null",
    )


@pytest.fixture
def run_copy(tiny, tmp_path) -> Path:
    shutil.copytree(tiny.run, tmp_path / "run")
    return tmp_path / "run"


def test_a_checkpoint_that_is_a_folder_is_one_line(run_copy, capsys):
    (run_copy / "best.ckpt").unlink()
    (run_copy / "best.ckpt").mkdir()
    fails(["eval", str(run_copy), "--no-progress"], capsys, "best.ckpt is a folder, not a checkpoint file")
    fails(["eval", str(run_copy / "best.ckpt"), "--no-progress"], capsys, "holds no best.ckpt or last.ckpt")


def test_a_missing_checkpoint_file_is_one_line(run_copy, capsys):
    (run_copy / "best.ckpt").unlink()
    fails(["eval", str(run_copy / "best.ckpt"), "--no-progress"], capsys, "best.ckpt does not exist")
    (run_copy / "last.ckpt").unlink()
    fails(["eval", str(run_copy), "--no-progress"], capsys, "holds no best.ckpt or last.ckpt")


def test_a_valid_header_with_the_wrong_payload_is_one_line(run_copy, capsys):
    save_checkpoint(run_copy / "best.ckpt", {"weights": 1})
    fails(["eval", str(run_copy), "--no-progress"], capsys, "not a training checkpoint (holds ['weights'])")


def test_another_runs_checkpoint_is_refused(tiny, run_copy, tmp_path, capsys):
    other = write_config(tmp_path, tiny.raw, backbone={"hidden": [12]})
    assert (
        main(
            [
                "train",
                str(other),
                "--out",
                str(tmp_path / "other"),
                "--no-progress",
                "--set",
                "train.iterations=2",
            ]
        )
        == 0
    )
    shutil.copy(tmp_path / "other" / "last.ckpt", run_copy / "best.ckpt")
    fails(["eval", str(run_copy), "--no-progress"], capsys, "was written by another run", "backbone.hidden")


def test_weights_that_do_not_fit_the_config_are_refused(run_copy, capsys):
    import torch

    from metadl.training.checkpoint import load_checkpoint

    ckpt = load_checkpoint(run_copy / "best.ckpt")
    ckpt["model"] = {k: torch.zeros(3) for k in ckpt["model"]}
    save_checkpoint(run_copy / "best.ckpt", ckpt)
    fails(
        ["eval", str(run_copy), "--no-progress"],
        capsys,
        "the weights do not fit the learner its config builds",
    )


def test_omniglot_offline_says_how_to_point_at_a_local_copy(tmp_path, capsys, monkeypatch):
    def offline(url, dest, *, sha256, progress):
        raise OSError(
            f"could not download {url}: <urlopen error [Errno -3] Temporary failure in name resolution>"
        )

    monkeypatch.setattr(og, "download_url", offline)
    fails(
        [
            "train",
            "protonet_omniglot_5w1s",
            "--out",
            str(tmp_path / "r"),
            "--no-progress",
            "--set",
            f"dataset.root={tmp_path / 'empty'}",
        ],
        capsys,
        "offline? point root at a local copy",
        "--set dataset.root=DIR",
    )


def test_demo_without_its_config_is_one_line(capsys, monkeypatch):
    from metadl import demo
    from metadl.config import ConfigError

    def missing(name):
        raise ConfigError(f"no config file {name!r} and no shipped config of that name; shipped: []")

    monkeypatch.setattr(demo, "shipped_config", missing)
    fails(["demo", "--no-progress"], capsys, "metadl demo: error: no config file 'demo'")


# ------------------------------------------------------------------ items 12 to 15: predict


def test_predict_refuses_a_single_class_support_set(tiny, tmp_path, capsys):
    shutil.copytree(tiny.support / "c0", tmp_path / "support" / "c0")
    fails(
        [
            "predict",
            str(tiny.run / "model"),
            "--support",
            str(tmp_path / "support"),
            "--query",
            str(tiny.query),
        ],
        capsys,
        "single class ('c0')",
    )


def test_predict_output_round_trips_names_with_tabs_and_newlines(tiny, tmp_path, capsys):
    names = ["plain.png", "tab\there.png", "new\nline.png", 'quote".png']
    for name in names:
        shutil.copy(tiny.query / "q.png", (tmp_path / "q").mkdir(exist_ok=True) or tmp_path / "q" / name)
    assert (
        main(["predict", str(tiny.run), "--support", str(tiny.support), "--query", str(tmp_path / "q")]) == 0
    )
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out), delimiter="\t"))
    assert sorted(r[0] for r in rows) == sorted(names) and all(len(r) == 3 for r in rows)


def test_predict_refuses_a_class_folder_linking_to_the_support_root(tiny, tmp_path, capsys):
    shutil.copytree(tiny.support, tmp_path / "support")
    (tmp_path / "support" / "loop").symlink_to(tmp_path / "support", target_is_directory=True)
    fails(
        ["predict", str(tiny.run), "--support", str(tmp_path / "support"), "--query", str(tiny.query)],
        capsys,
        "loop is a symbolic link to",
        "not followed",
    )


def test_predict_accepts_a_run_folder_like_eval(tiny, capsys):
    assert main(["predict", str(tiny.run), "--support", str(tiny.support), "--query", str(tiny.query)]) == 0
    assert capsys.readouterr().out.startswith("q.png\tc")


@pytest.mark.parametrize("command", [[], ["demo"], ["eval"], ["train"]])
def test_help_shows_a_single_percent_sign(command, capsys):
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    out = capsys.readouterr().out
    assert "%%" not in out
    if command in ([], ["demo"], ["eval"]):
        assert "95%" in out


def test_demo_keeps_its_model_in_out(tmp_path, capsys):
    assert build_parser().parse_args(["demo", "--out", "x"]).out == "x"
    assert (
        main(
            ["demo", "--iterations", "2", "--episodes", "5", "--no-progress", "--out", str(tmp_path / "demo")]
        )
        == 0
    )
    assert (tmp_path / "demo" / "model" / "metadl.json").is_file()
    assert f"model saved to {tmp_path / 'demo' / 'model'}" in capsys.readouterr().out
