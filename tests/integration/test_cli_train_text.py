"""``metadl train`` on the shipped text configs (tiny BERT, generated CLINC150- and ARSC-shaped folders), then
``metadl predict RUN --support S.csv --query Q.csv --json`` on the run; config errors exit 2 with one line.
``--time-limit`` then ``--resume RUN``: the fine-tuning runs through the core run object, so a run cut into
sessions ends with the weights and ``metrics.csv`` of a run never interrupted; another config is refused."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

import metadl.apps.text.train as text_train
from metadl.apps.text.train import list_text_configs, load_text_config
from metadl.cli import main
from metadl.training.run import TrainResult

pytestmark = pytest.mark.usefixtures("one_thread")

TOPICS = {
    "bank": ("card", "cash", "money"),
    "music": ("music", "jazz", "rock"),
    "weather": ("rain", "snow", "sun"),
    "travel": ("flight", "hotel", "trip"),
    "food": ("pizza", "dinner", "eat"),
}


def clinc_like(root: Path) -> Path:
    """data_full.json + domains.json: two domains; intents named <topic>_<n>, sentences of the topic's words."""
    rows = {"train": [], "val": [], "test": [], "oos_train": [], "oos_val": [], "oos_test": []}
    for topic, words in TOPICS.items():
        for n in range(2):
            for i in range(8):
                rows["train"].append(
                    [f"{words[i % 3]} {words[(i + n) % 3]} please {words[n]}", f"{topic}_{n}"]
                )
    domains = {
        "money": ["bank_0", "bank_1"],
        "other": [f"{t}_{n}" for t in TOPICS if t != "bank" for n in range(2)],
    }
    root.mkdir()
    (root / "data_full.json").write_text(json.dumps(rows))
    (root / "domains.json").write_text(json.dumps(domains))
    return root


def arsc_like(root: Path) -> Path:
    root.mkdir()
    for d, (good, bad) in {
        "books": ("sun", "rain"),
        "dvd": ("jazz", "rock"),
        "toys": ("pizza", "snow"),
    }.items():
        for t in ("t2", "t5"):
            for split, n in (("train", 12), ("test", 4)):
                lines = [f"{good if i % 2 else bad} my {d[0]} review\t{1 if i % 2 else -1}" for i in range(n)]
                (root / f"{d}.{t}.{split}").write_text("\n".join(lines) + "\n")
    return root


def test_shipped_text_configs_load():
    assert list_text_configs() == ["text_intent_clinc150_to_banking77", "text_sentiment_arsc"]
    for name in list_text_configs():
        cfg = load_text_config(Path(__file__).parents[2] / "src/metadl/apps/text/configs" / f"{name}.yaml")
        assert cfg.encoder.model == "all-MiniLM-L6-v2" and cfg.train.episodes >= 100


@pytest.mark.parametrize("name", ["text_intent_clinc150_to_banking77", "text_sentiment_arsc"])
def test_train_then_predict_on_a_shipped_text_config(name, tiny_bert, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("METADL_CACHE", str(tmp_path / "cache"))
    data = clinc_like(tmp_path / "clinc") if "clinc" in name else arsc_like(tmp_path / "arsc")
    run = tmp_path / "run"
    sets = [f"dataset.root={data}", f"encoder.model={tiny_bert}", "encoder.frozen_layers=2"]
    sets += ["encoder.max_length=8", "train.episodes=3", "train.k_shot=2", "train.n_query=2"]
    sets += (
        ["dataset.exclude_domains=[money]", "train.n_way=4"] if "clinc" in name else ["dataset.held_out=1"]
    )
    code = main(["train", name, "--out", str(run), *[a for s in sets for a in ("--set", s)]])
    assert code == 0, capsys.readouterr().err
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["encoder"]["max_length"] == 8 and len((run / "metrics.csv").read_text().splitlines()) == 4
    saved = json.loads((run / "model" / "metadl.json").read_text())
    if "arsc" in name:
        held = saved["metadata"]["held_out_domains"]
        assert len(held) == 1 and held[0] in ("books", "dvd", "toys")
    (tmp_path / "s.csv").write_text(
        "text,label\n" + "".join(f"{w} {w} please,{t}\n" for t, ws in TOPICS.items() for w in ws)
    )
    (tmp_path / "q.csv").write_text("text\nmy card please\nsome jazz\n")
    capsys.readouterr()
    assert (
        main(
            [
                "predict",
                str(run),
                "--support",
                str(tmp_path / "s.csv"),
                "--query",
                str(tmp_path / "q.csv"),
                "--json",
            ]
        )
        == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert [r["text"] for r in rows] == ["my card please", "some jazz"]
    assert all(r["label"] in TOPICS and 0 < r["probability"] <= 1 for r in rows)


def test_arsc_validation_domains_stay_out_of_meta_training(tiny_bert, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("METADL_CACHE", str(tmp_path / "cache"))
    data = arsc_like(tmp_path / "arsc")
    seen, text_run = [], text_train.text_run

    def spy(*args, **kwargs):
        seen.append(args[3])  # the meta-training data
        return text_run(*args, **kwargs)

    monkeypatch.setattr(text_train, "text_run", spy)
    run = tmp_path / "run"
    sets = [f"dataset.root={data}", f"encoder.model={tiny_bert}", "encoder.frozen_layers=2"]
    sets += ["encoder.max_length=8", "train.episodes=2", "train.k_shot=2", "train.n_query=2"]
    sets += ["dataset.held_out=1", "dataset.validation=1"]
    assert (
        main(["train", "text_sentiment_arsc", "--out", str(run), *[a for s in sets for a in ("--set", s)]])
        == 0
    )
    meta = json.loads((run / "model" / "metadl.json").read_text())["metadata"]
    held, val = meta["held_out_domains"], meta["validation_domains"]
    assert len(held) == len(val) == 1 and held != val
    (trained,) = {n.split(".")[0] for n in seen[0].names}
    assert {trained, *held, *val} == {"books", "dvd", "toys"}
    assert all(text.split()[2] == trained[0] for text in seen[0].texts)  # a review names its domain's initial
    code = main(
        [
            "train",
            "text_sentiment_arsc",
            *[a for s in [*sets[:-1], "dataset.validation=2"] for a in ("--set", s)],
        ]
    )
    assert code == 2 and "carve 0..1 of the 2 domains" in capsys.readouterr().err


def test_text_config_errors_exit_2_with_one_line(tmp_path, capsys):
    code = main(["train", "text_sentiment_arsc", "--set", "encoder.layers=3"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "unknown keys ['layers']" in err and len(err.splitlines()) == 1
    code = main(["train", "text_sentiment_arsc", "--set", "dataset.name=imdb"])
    assert code == 2 and "choose one of ['clinc150', 'arsc']" in capsys.readouterr().err


NAMES = ["text_intent_clinc150_to_banking77", "text_sentiment_arsc"]


def settings(name: str, data: Path, tiny_bert: Path) -> list[str]:
    sets = [f"dataset.root={data}", f"encoder.model={tiny_bert}", "encoder.frozen_layers=2"]
    sets += ["encoder.max_length=8", "train.episodes=5", "train.k_shot=2", "train.n_query=2"]
    sets += ["train.checkpoint_every=2", "train.lr=3e-3"]
    sets += (
        ["dataset.exclude_domains=[money]", "train.n_way=4"] if "clinc" in name else ["dataset.held_out=1"]
    )
    return [a for s in sets for a in ("--set", s)]


def rows(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open() as f:
        return [{k: v for k, v in row.items() if k != "time_s"} for row in csv.DictReader(f)]


@pytest.mark.parametrize("name", NAMES)
def test_time_limited_sessions_then_resume_equal_an_uninterrupted_run(
    name, tiny_bert, tmp_path, monkeypatch, capsys
):
    data = clinc_like(tmp_path / "clinc") if "clinc" in name else arsc_like(tmp_path / "arsc")
    sets = settings(name, data, tiny_bert)
    monkeypatch.setenv("METADL_CACHE", str(tmp_path / "cache_whole"))
    whole = tmp_path / "whole"
    assert main(["train", name, "--out", str(whole), *sets]) == 0, capsys.readouterr().err
    monkeypatch.setenv("METADL_CACHE", str(tmp_path / "cache_cut"))
    cut = tmp_path / "cut"
    # each session stops after its first episode (the limit is checked after every episode)
    assert main(["train", name, "--out", str(cut), "--time-limit", "0.000001s", *sets]) == 0
    assert len(rows(cut)) == 1 and (cut / "last.ckpt").is_file() and (cut / "model").is_dir()
    assert f"continue with: metadl train {cut / 'config.yaml'} --resume {cut}" in capsys.readouterr().out
    assert main(["train", name, "--resume", str(cut), "--time-limit", "0.000001s", *sets]) == 0
    assert len(rows(cut)) == 2
    # the run's own config.yaml holds the --set values: the command the stop message gives
    assert main(["train", str(cut / "config.yaml"), "--resume", str(cut)]) == 0, capsys.readouterr().err
    assert rows(cut) == rows(whole) and len(rows(whole)) == 5
    a, b = (
        load_file(whole / "model" / "weights.safetensors"),
        load_file(cut / "model" / "weights.safetensors"),
    )
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)


def test_resume_refuses_another_config_and_a_missing_run(tiny_bert, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("METADL_CACHE", str(tmp_path / "cache"))
    name = "text_sentiment_arsc"
    sets = settings(name, arsc_like(tmp_path / "arsc"), tiny_bert)
    run = tmp_path / "run"
    assert main(["train", name, "--out", str(run), "--time-limit", "0.000001s", *sets]) == 0
    capsys.readouterr()
    code = main(["train", name, "--resume", str(run), *sets, "--set", "train.lr=1e-2"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "differs from the one" in err and "train.lr" in err and len(err.splitlines()) == 1
    assert len(rows(run)) == 1  # untouched
    code = main(["train", name, "--resume", str(tmp_path / "nothing"), *sets])
    assert code == 2 and "cannot resume" in capsys.readouterr().err
    code = main(["train", name, "--out", str(run), *sets])  # a new run into a folder holding one
    assert code == 2 and f"--resume {run}" in capsys.readouterr().err
    code = main(["train", name, "--out", str(tmp_path / "x"), "--resume", str(run), *sets])
    assert code == 2 and "use one of them" in capsys.readouterr().err


def test_a_text_run_stopped_by_a_signal_exits_with_the_signals_code(tmp_path, monkeypatch, capsys):
    """The exit code of the session reaches the shell, as for the core trainer (128 + SIGTERM's 15)."""
    stopped = TrainResult(
        run_dir=tmp_path / "run", learner=torch.nn.Identity(), iterations=1, metric="accuracy",  # type: ignore[arg-type]
        best_value=None, best_iteration=None, model_dir=tmp_path / "run" / "model", complete=False,
        stopped_by="SIGTERM", exit_code=143,
    )  # fmt: skip
    monkeypatch.setattr(text_train, "train_text", lambda *args, **kwargs: stopped)
    assert main(["train", "text_sentiment_arsc", "--out", str(tmp_path / "run")]) == 143
    assert f"run folder {tmp_path / 'run'}" in capsys.readouterr().out
