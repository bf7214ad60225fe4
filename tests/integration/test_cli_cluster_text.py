"""``metadl cluster MODEL --texts FILE``: sentences grouped by a saved text model, through the console script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from text_models import bag_of_words_model

from metadl.apps.cluster.texts import cluster_texts
from metadl.apps.text.predict import save_text_model
from metadl.cli import main
from metadl.evaluation.clustering import clustering_accuracy

# Three topics: every sentence holds its topic's two keywords and no word of another topic, so even an
# untrained token model's mean-pooled embedding (close to a bag of words) separates them.
TOPICS = {
    "flight": ["flight ticket rome", "flight ticket paris", "cheap flight ticket", "flight ticket oslo"],
    "balance": [
        "account balance today",
        "account balance now",
        "my account balance",
        "account balance please",
    ],
    "weather": [
        "rain forecast monday",
        "rain forecast weekend",
        "sunny rain forecast",
        "rain forecast tonight",
    ],
}
TEXTS = [t for sentences in TOPICS.values() for t in sentences]
TRUTH = torch.arange(len(TOPICS)).repeat_interleave(4)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cluster_text")
    save_text_model(root / "model", bag_of_words_model(TEXTS))
    (root / "sentences.csv").write_text(
        "id,sentence\n" + "".join(f'{i},"{t}"\n' for i, t in enumerate(TEXTS))
    )
    (root / "sentences.txt").write_text("\n".join(TEXTS) + "\n")
    return {"model": root / "model", "csv": root / "sentences.csv", "txt": root / "sentences.txt"}


def test_sentences_of_separate_topics_fall_into_their_own_clusters(files: dict[str, Path]) -> None:
    rows = cluster_texts(files["model"], files["txt"], k=3)
    assert [r.text for r in rows] == TEXTS
    assert clustering_accuracy(torch.tensor([r.cluster for r in rows]), TRUTH) == 1.0


def test_without_k_the_silhouette_finds_the_three_topics(files: dict[str, Path]) -> None:
    rows = cluster_texts(files["model"], files["csv"], text_column="sentence")
    assert clustering_accuracy(torch.tensor([r.cluster for r in rows]), TRUTH) == 1.0


def test_console_script_prints_json_in_input_order(files: dict[str, Path]) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "metadl.cli", "cluster", str(files["model"]), "--texts", str(files["csv"]),
         "--text-column", "sentence", "--k", "3", "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    rows = json.loads(run.stdout)
    assert [r["text"] for r in rows] == TEXTS and {r["cluster"] for r in rows} == {0, 1, 2}


def test_csv_output_and_bad_input_are_one_line_errors(files: dict[str, Path], capsys) -> None:
    assert main(["cluster", str(files["model"]), "--texts", str(files["txt"]), "--k", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "text,cluster" and len(lines) == 1 + len(TEXTS)
    assert main(["cluster", str(files["model"]), "--texts", str(files["txt"]), "--k", "99"]) == 2
    assert "k = 99 clusters for 12 examples" in capsys.readouterr().err
    assert main(["cluster", str(files["model"]), "--texts", str(files["csv"]), "--text-column", "nope"]) == 2
    assert "nope" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # --images and --texts together: argparse's usage error (exit 2)
        main(["cluster", str(files["model"]), "--texts", str(files["txt"]), "--images", "x"])
