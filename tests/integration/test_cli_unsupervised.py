"""``metadl train`` on an unlabelled image folder with an unsupervised task source, then ``metadl eval`` on labels."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from cli_runs import write_images

from metadl.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(
    "source", [{"name": "umtra"}, {"name": "cactus", "partitions": 2, "clusters": 5, "dim": 8}]
)
def test_train_on_an_unlabelled_folder_then_evaluate_on_labelled_classes(tmp_path, capsys, source):
    root = write_images(tmp_path / "images", classes=5, per_class=5, size=16)
    pool = root / "train"
    for image in pool.glob("*/*.png"):  # flatten the training split: an unlabelled folder of images
        shutil.move(image, pool / f"{image.parent.name}_{image.name}")
    for folder in [p for p in pool.iterdir() if p.is_dir()]:
        folder.rmdir()
    config = tmp_path / "unsupervised.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "seed": 0,
                "device": "cpu",
                "dataset": {"name": "image_folder", "root": str(root), "image_size": 16},
                "sampler": {"ways": 3, "shots": 1, "queries": 2, "meta_batch": 2},
                "backbone": {"name": "conv4", "hidden": 8},
                "learner": {"name": "protonet"},
                "train": {"iterations": 4, "val_every": 2, "val_episodes": 4},
                "eval": {"episodes": 5, "ways": 3},
                "augment": {"unsupervised": source},
            }
        )
    )
    assert main(["train", str(config), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "run"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["episodes"] == 5 and 0.0 <= result["mean"] <= 1.0
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["augment"]["unsupervised"] == source
