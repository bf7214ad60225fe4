"""Cluster a folder of unlabelled images with a saved clustering model (``metadl cluster``)."""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from metadl.algorithms.clustering_steps import ClusteringError, as_clusterer, check_k
from metadl.data.preprocess import load_images
from metadl.saving import SavedModel


@dataclass(frozen=True)
class Assignment:
    """One image and its cluster (``0..k-1``, numbered as the clusterer numbers them)."""

    file: str
    cluster: int


def cluster_folder(
    model: SavedModel, images: str | os.PathLike[str], *, k: int | None = None, seed: int = 0
) -> list[Assignment]:
    """Partition every image below ``images`` (sorted by path) into ``k`` clusters (estimated when None).

    The images are prepared as the model's training images were (its saved preprocessing).
    """
    clusterer = as_clusterer(model.learner)
    if model.preprocessing is None:
        raise ClusteringError(
            f"the model at {model.path} records no image preprocessing; it does not take images"
        )
    found = load_images(images, model.preprocessing)
    if k is not None:
        check_k(k, len(found.x))
    device = next(model.learner.parameters(), torch.empty(0)).device
    labels = clusterer.cluster(found.x.to(device), k, seed=seed)
    root = Path(images)
    return [
        Assignment(f.relative_to(root).as_posix() if root.is_dir() else str(f), int(c))
        for f, c in zip(found.files, labels.tolist(), strict=True)
    ]


def assignments_csv(rows: list[Assignment]) -> str:
    """``file,cluster`` lines with a header (CSV quoting for odd file names).

    Example:
        >>> print(assignments_csv([Assignment("a.png", 0), Assignment("b,c.png", 1)]), end="")
        file,cluster
        a.png,0
        "b,c.png",1
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["file", "cluster"])
    writer.writerows([r.file, r.cluster] for r in rows)
    return out.getvalue()
