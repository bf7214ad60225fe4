"""``metadl predict`` on sentences: a saved text model (token encoder + ProtoNet), CSV and .txt support, JSON out."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from text_models import bag_of_words_model

from metadl.apps.text.predict import load_text_model, predict_texts, save_text_model
from metadl.cli import main
from metadl.models.text import EncoderError, create_text_encoder

SUPPORT = {
    "travel": ["book a flight to rome", "flight tickets to paris", "i need a flight"],
    "bank": ["what is my balance", "balance of my account", "how much is my balance"],
}
QUERIES = ["balance please", "a flight to london", "my account balance", "cheap flight"]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("text")
    texts = [t for examples in SUPPORT.values() for t in examples]
    save_text_model(root / "run" / "model", bag_of_words_model(texts))
    support = root / "support.csv"
    support.write_text(
        "text,label\n" + "".join(f"{t},{label}\n" for label, ex in SUPPORT.items() for t in ex)
    )
    (root / "queries.csv").write_text("text\n" + "\n".join(QUERIES) + "\n")
    for label, examples in SUPPORT.items():
        (root / "folder" / label).mkdir(parents=True)
        (root / "folder" / label / "examples.txt").write_text("\n".join(examples) + "\n")
    return {
        "root": root,
        "model": root / "run" / "model",
        "support": support,
        "queries": root / "queries.csv",
    }


def test_console_script_prints_one_json_object_per_query_in_input_order(files):
    run = subprocess.run(
        [sys.executable, "-m", "metadl.cli", "predict", str(files["model"]), "--support", str(files["support"]),
         "--query", str(files["queries"]), "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    rows = json.loads(run.stdout)
    assert [r["text"] for r in rows] == QUERIES
    for row in rows:
        assert row["label"] in SUPPORT and 0 < row["probability"] <= 1
        assert abs(sum(row["probabilities"].values()) - 1) < 1e-5
        assert row["probability"] == max(row["probabilities"].values())
    assert [r["label"] for r in rows] == ["bank", "travel", "bank", "travel"]


def test_run_folder_and_txt_folder_support_give_the_same_answers(files, capsys):
    assert (
        main(
            [
                "predict",
                str(files["model"]),
                "--support",
                str(files["support"]),
                "--query",
                str(files["queries"]),
                "--json",
            ]
        )
        == 0
    )
    from_csv = json.loads(capsys.readouterr().out)
    run_folder = files["model"].parent
    assert (
        main(
            [
                "predict",
                str(run_folder),
                "--support",
                str(files["root"] / "folder"),
                "--query",
                str(files["queries"]),
                "--json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out) == from_csv  # fmt: skip


@pytest.mark.parametrize(
    ("support_text", "message"),
    [
        ("sentence,label\nhi,greet\nbye,leave\n", "missing column 'text'"),
        ("text,label\n,greet\nbye,leave\n", "line 2: missing or empty 'text'"),
        ("text,label\nhi,greet\nhello,greet\n", "at least two labels"),
    ],
)
def test_bad_support_exits_2_with_one_line(files, tmp_path, capsys, support_text, message):
    bad = tmp_path / "bad.csv"
    bad.write_text(support_text)
    assert (
        main(["predict", str(files["model"]), "--support", str(bad), "--query", str(files["queries"])]) == 2
    )
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_not_a_text_model_is_a_clear_error(tmp_path, files, capsys):
    assert (
        main(["predict", str(tmp_path), "--support", str(files["support"]), "--query", str(files["queries"])])
        == 2
    )
    assert "is not a shipped text model" in capsys.readouterr().err


def test_python_api_round_trips_a_saved_model(files):
    model = load_text_model(files["model"])
    rows = predict_texts(model, files["support"], files["queries"])
    labels = [
        p.label
        for p in model.adapt(
            [t for ex in SUPPORT.values() for t in ex], [lab for lab, ex in SUPPORT.items() for _ in ex]
        ).predict(QUERIES)
    ]
    assert [r["label"] for r in rows] == labels  # fmt: skip


def test_shipped_minilm_model_classifies_without_training(files):
    pytest.importorskip("sentence_transformers")
    try:
        create_text_encoder("sentence_transformer", cache=False)
    except EncoderError as err:
        pytest.skip(f"all-MiniLM-L6-v2 not available: {err}")
    rows = predict_texts("minilm-protonet", files["root"] / "folder", files["queries"])
    assert [r["label"] for r in rows] == ["bank", "travel", "bank", "travel"]
    assert shutil.which("metadl") is None or True  # the console script is covered above
