"""A tiny trained run for CLI tests: image-folder data written on the fly, an MLP ProtoNet, 20 iterations."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image

from metadl.cli import main


@dataclass(frozen=True)
class TinyRun:
    run: Path  # the run folder (config.yaml, best.ckpt, last.ckpt, metrics.csv, model/)
    config: Path  # the YAML it was trained from
    raw: dict  # that YAML as a mapping
    support: Path  # support/<class>/<image>.png, 3 classes
    query: Path  # query/<image>.png


def write_images(root: Path, classes: int = 5, per_class: int = 5, size: int = 8) -> Path:
    """``root/{train,val,test}/<class>/<i>.png``: each class a random binary pattern with flipped pixels."""
    rng = np.random.default_rng(0)
    for split in ("train", "val", "test"):
        for c in range(classes):
            (root / split / f"c{c}").mkdir(parents=True)
            pattern = rng.random((size, size)) < 0.5
            for i in range(per_class):
                noisy = pattern ^ (rng.random((size, size)) < 0.1)
                Image.fromarray((noisy * 255).astype(np.uint8), mode="L").save(
                    root / split / f"c{c}" / f"{i}.png"
                )
    return root


def train_config(raw: dict, config: Path, run: Path) -> Path:
    """Write ``raw`` to ``config`` and ``metadl train`` it into ``run`` on one thread; returns ``config``."""
    config.write_text(yaml.safe_dump(raw))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["train", str(config), "--out", str(run), "--no-progress"]) == 0
    finally:
        torch.set_num_threads(threads)
    return config


def train_tiny_run(tmp: Path) -> TinyRun:
    images = write_images(tmp / "images")
    raw = {
        "seed": 1,
        "device": "cpu",
        "dataset": {"name": "image_folder", "root": str(images), "image_size": 8},
        "sampler": {"ways": 3, "shots": 1, "queries": 2, "meta_batch": 2},
        "backbone": {"name": "mlp", "hidden": [16]},
        "learner": {"name": "protonet"},
        "train": {"iterations": 10, "val_every": 5, "checkpoint_every": 5, "val_episodes": 3},
        "eval": {"episodes": 5, "queries": 3},
    }
    config = train_config(raw, tmp / "tiny.yaml", tmp / "run")
    for c in range(3):
        (tmp / "support" / f"c{c}").mkdir(parents=True)
        for i in range(2):
            (tmp / "support" / f"c{c}" / f"{i}.png").write_bytes(
                (images / "test" / f"c{c}" / f"{i}.png").read_bytes()
            )
    (tmp / "query").mkdir()
    (tmp / "query" / "q.png").write_bytes((images / "test" / "c0" / "4.png").read_bytes())
    return TinyRun(tmp / "run", config, raw, tmp / "support", tmp / "query")
