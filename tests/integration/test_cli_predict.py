"""``metadl predict`` end to end: a briefly trained ProtoNet, saved, adapted to PNG folders through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from metadl.algorithms import create_learner
from metadl.cli import main
from metadl.data.preprocess import Preprocessing
from metadl.data.synthetic import synthetic_glyphs
from metadl.models import create_backbone
from metadl.saving import save_model
from metadl.tasks import EpisodeSampler
from metadl.training import meta_train

CLASSES = ["alpha", "beta", "gamma", "delta", "epsilon"]
SHOTS, QUERIES = 3, 6


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A ProtoNet meta-trained for a few iterations on glyphs, saved; support and query PNG folders of
    held-out glyph classes. Support images are dark ink on white RGB at 56 px; each query image exists
    twice, as trained (bright ink on black, 28 px grey) and inverted as RGBA."""
    root = tmp_path_factory.mktemp("predict")
    torch.manual_seed(0)
    train = synthetic_glyphs("train", num_classes=30, examples_per_class=8)
    spec = {
        "backbone": {"name": "conv4", "in_channels": 1, "hidden": 16, "image_size": 28},
        "learner": {"name": "protonet", "n_way": 5},
    }
    learner = create_learner(
        "protonet", backbone=create_backbone("conv4", in_channels=1, hidden=16, image_size=28), n_way=5
    )
    sampler = EpisodeSampler(train, n_way=5, k_shot=SHOTS, n_query=3, seed=0)
    meta_train(
        learner,
        sampler,
        torch.optim.Adam(learner.parameters(), 3e-3),
        iterations=8,
        meta_batch=1,
        progress=False,
    )
    pre = Preprocessing.for_dataset(train.data, resample="box", fit="pad")
    assert pre.background == "dark"
    save_model(root / "model", learner, spec=spec, preprocessing=pre)

    test = synthetic_glyphs("test", num_classes=len(CLASSES), examples_per_class=SHOTS + QUERIES)
    images = test.data[:, 0].numpy()  # (C * E, 28, 28) uint8, bright ink
    for c, name in enumerate(CLASSES):
        (root / "support" / name).mkdir(parents=True)
        for k in range(SHOTS + QUERIES):
            img = images[c * (SHOTS + QUERIES) + k]
            if k < SHOTS:
                page = Image.fromarray(255 - img).resize((56, 56), Image.Resampling.BICUBIC).convert("RGB")
                page.save(root / "support" / name / f"{k}.png")
            else:
                for kind, pic in (
                    ("bright", Image.fromarray(img)),
                    ("dark", Image.fromarray(255 - img).convert("RGBA")),
                ):
                    (root / "query" / kind).mkdir(parents=True, exist_ok=True)
                    pic.save(root / "query" / kind / f"{name}_{k}.png")
    return {"model": root / "model", "support": root / "support", "query": root / "query"}


def test_predict_json_through_the_console(files):
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "metadl.cli",
            "predict",
            str(files["model"]),
            "--support",
            str(files["support"]),
            "--query",
            str(files["query"]),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    rows = json.loads(run.stdout)
    assert len(rows) == 2 * len(CLASSES) * QUERIES
    by_file = {row["file"]: row for row in rows}
    for row in rows:
        assert row["label"] in CLASSES
        assert sorted(row["probabilities"]) == sorted(CLASSES)
        assert sum(row["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert row["probability"] == pytest.approx(max(row["probabilities"].values()))
    # The inverted copy is recognised as dark ink and turned back: same answer as the original.
    for name in [f"{c}_{k}.png" for c in CLASSES for k in range(SHOTS, SHOTS + QUERIES)]:
        bright, dark = by_file[f"bright/{name}"], by_file[f"dark/{name}"]
        assert bright["label"] == dark["label"]
        assert bright["probability"] == pytest.approx(dark["probability"], abs=1e-4)
    correct = [row["label"] == Path(row["file"]).name.split("_")[0] for row in rows]
    assert np.mean(correct) >= 0.4, f"accuracy {np.mean(correct):.2f} on held-out glyphs (chance 0.2)"


def test_predict_tab_separated_lines(files, capsys):
    assert (
        main(
            [
                "predict",
                str(files["model"]),
                "--support",
                str(files["support"]),
                "--query",
                str(files["query"] / "bright"),
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(CLASSES) * QUERIES
    for line in lines:
        file, label, prob = line.split("\t")
        assert file.endswith(".png") and "/" not in file and label in CLASSES and 0.0 < float(prob) <= 1.0


def test_predict_reports_a_bad_support_folder_without_a_traceback(files, tmp_path, capsys):
    (tmp_path / "support" / "empty").mkdir(parents=True)
    assert (
        main(
            [
                "predict",
                str(files["model"]),
                "--support",
                str(tmp_path / "support"),
                "--query",
                str(files["query"]),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("metadl predict: error: class folder") and "empty holds no images" in err
    assert (
        main(["predict", str(tmp_path), "--support", str(files["support"]), "--query", str(files["query"])])
        == 2
    )
    assert "not a metadl saved model folder" in capsys.readouterr().err
