"""Tiny data for the training-engine tests: Gaussian blobs (in memory) and an image folder tree (on disk)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image

from metadl.data.base import FewShotDataset

SPLIT_OFFSET = {"train": 0, "val": 1000, "test": 2000}


def blobs(
    split: str = "train", *, num_classes: int = 12, per_class: int = 10, dim: int = 8, seed: int = 0
) -> FewShotDataset:
    """Well-separated Gaussian classes; each split has its own classes."""
    g = torch.Generator().manual_seed(seed + SPLIT_OFFSET[split])
    centres = 2.5 * torch.randn(num_classes, dim, generator=g)
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    x = centres[labels] + torch.randn(len(labels), dim, generator=g)
    return FewShotDataset(x, labels, [f"{split}{i}" for i in range(num_classes)], name=f"blobs/{split}")


def write_image_tree(
    root: Path, *, classes: int = 6, per_class: int = 6, size: int = 8, seed: int = 0
) -> Path:
    """``root/{train,val,test}/<class>/<i>.png``: each class a random binary pattern, examples with flipped pixels."""
    rng = np.random.default_rng(seed)
    for split in ("train", "val", "test"):
        for c in range(classes):
            folder = root / split / f"{split}_class{c}"
            folder.mkdir(parents=True)
            pattern = rng.random((size, size)) < 0.5
            for i in range(per_class):
                flips = rng.random((size, size)) < 0.1
                Image.fromarray(((pattern ^ flips) * 255).astype(np.uint8), mode="L").save(
                    folder / f"{i}.png"
                )
    return root


def tiny_raw(**sections) -> dict:
    """A config (as a raw mapping) that trains ProtoNet on blobs in a fraction of a second."""
    raw = {
        "seed": 0,
        "device": "cpu",
        "dataset": {"name": "blobs"},
        "sampler": {"ways": 3, "shots": 1, "queries": 3, "meta_batch": 2},
        "backbone": {"name": "mlp", "hidden": [16]},
        "learner": {"name": "protonet"},
        "optimizer": {"name": "adam", "lr": 0.01},
        "train": {"iterations": 30, "val_every": 10, "checkpoint_every": 5, "val_episodes": 10},
        "eval": {"episodes": 20},
    }
    for key, value in sections.items():
        raw[key] = {**raw[key], **value} if isinstance(value, dict) else value
    return raw


def run_torchrun(args: list[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
    """``torchrun --standalone --nproc_per_node 2 ARGS`` single-threaded, outside any launcher's environment."""
    launcher = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    env = {k: v for k, v in os.environ.items() if k not in launcher} | {"OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    return subprocess.run(
        [*command, "--master_addr", "127.0.0.1", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def image_config_file(tmp_path: Path, iterations: int) -> Path:
    """A YAML config training ProtoNet on a tiny image folder tree (for runs through the CLI)."""
    root = write_image_tree(tmp_path / "images")
    raw = {
        "seed": 3,
        "device": "cpu",
        "dataset": {"name": "image_folder", "root": str(root), "image_size": 8},
        "sampler": {"ways": 3, "shots": 1, "queries": 2, "meta_batch": 2},
        "backbone": {"name": "mlp", "hidden": [16]},
        "learner": {"name": "protonet"},
        "optimizer": {"name": "adam", "lr": 0.01, "schedule": "cosine", "warmup": 3},
        "train": {"iterations": iterations, "val_every": 100, "checkpoint_every": 5, "val_episodes": 5},
        "eval": {"episodes": 10},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path
