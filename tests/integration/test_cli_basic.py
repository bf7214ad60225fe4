"""The CLI end to end: help, list, and a shortened demo."""

import re
import subprocess
import sys

import pytest

from metadl.apps.registry import application_configs
from metadl.apps.text.train import list_text_configs
from metadl.cli import build_parser, main
from metadl.config import list_configs


def test_console_script_help_lists_every_subcommand():
    out = subprocess.run(
        [sys.executable, "-m", "metadl.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for name in ("demo", "list"):
        assert name in out


@pytest.mark.parametrize("command", sorted(build_parser()._subparsers._group_actions[0].choices))
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert len(capsys.readouterr().out) > 100


def test_list_shows_registries(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^datasets: .*synthetic_glyphs", out, re.M)
    assert re.search(r"^backbones: .*conv4", out, re.M)
    assert re.search(r"^learners: .*protonet", out, re.M)
    assert re.search(r"^sources: .*grouped_table", out, re.M)
    assert re.search(r"^encoders: .*tokens", out, re.M)
    assert re.search(r"^transforms: .*elastic", out, re.M)
    assert main(["list", "transforms"]) == 0
    assert capsys.readouterr().out.startswith("transforms: affine, ")


def test_list_shows_the_shipped_configs_with_their_summaries(capsys):
    assert main(["list", "configs"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("configs (metadl train NAME):\n") and "learners:" not in out
    assert re.search(r"^  maml_sinusoid +MAML on sinusoid regression$", out, re.M)
    assert re.search(
        r"^  text_sentiment_arsc +Episodic fine-tuning of all-MiniLM-L6-v2's top 2 blocks", out, re.M
    )
    assert re.search(
        r"^  recsys_movielens100k_coldstart +User cold-start recommendation on MovieLens-100K", out, re.M
    )
    assert len(out.splitlines()) == 1 + len(list_configs()) + len(application_configs())
    assert set(list_text_configs()) <= set(application_configs())


def test_short_demo_prints_accuracy_with_interval(capsys, tmp_path):
    assert (
        main(["demo", "--iterations", "3", "--episodes", "20", "--no-progress", "--out", str(tmp_path)]) == 0
    )
    out = capsys.readouterr().out
    assert re.search(
        r"5-way 1-shot on held-out classes: accuracy \d+\.\d\d% ± \d+\.\d\d% over 20 episodes", out
    )


def test_bad_argument_is_rejected_clearly(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--iterations", "0"])
    assert "must be a positive integer, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # not a number: the same one line, from the shared argument type
        main(["cluster", "model", "--images", "x", "--k", "abc"])
    assert "must be a positive integer, got abc" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("45m", 2700), ("2h", 7200), ("1h30m", 5400), ("0.5h", 1800)]
)
def test_time_limits_are_read_with_their_unit(text, seconds):
    args = build_parser().parse_args(["train", "some.yaml", "--time-limit", text])
    assert args.time_limit == seconds


@pytest.mark.parametrize("text", ["90", "", "1d", "0m", "m"])
def test_a_time_limit_without_a_unit_is_refused_with_examples(text, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "some.yaml", "--time-limit", text])
    assert "45m" in capsys.readouterr().err


def test_metadl_debug_lets_the_traceback_through(tmp_path, capsys, monkeypatch):
    missing = str(tmp_path / "no_such.yaml")
    assert main(["train", missing]) == 2
    assert "no_such.yaml" in capsys.readouterr().err
    monkeypatch.setenv("METADL_DEBUG", "1")
    with pytest.raises((ValueError, OSError)):
        main(["train", missing])
