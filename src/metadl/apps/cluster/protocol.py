"""Omniglot's Lake split for meta-clustering: training, validation and evaluation alphabets.

Meta-training reads the background set (30 alphabets) only. Choices (a threshold, a normalisation,
which learner) are made on **validation alphabets carved out of the background set** - every sixth
alphabet in name order, 5 of 30 - so the 20 evaluation alphabets are touched once, for the final table.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from metadl.data.base import FewShotDataset
from metadl.data.omniglot import omniglot
from metadl.evaluation.cluster_protocol import alphabet_subset, class_groups

VALIDATION_STRIDE = 6


def validation_alphabets(background: FewShotDataset) -> list[str]:
    """Every sixth alphabet of ``background`` in name order (5 of the 30 background alphabets).

    Example:
        >>> import torch
        >>> ds = FewShotDataset(torch.zeros(12, 1), torch.arange(12), [f"A{i:02d}/c" for i in range(12)])
        >>> validation_alphabets(ds)
        ['A00', 'A06']
    """
    return sorted(class_groups(background.class_names))[::VALIDATION_STRIDE]


@dataclass(frozen=True)
class LakeData:
    """``train``: background minus validation alphabets; ``val``: those; ``test``: the evaluation set."""

    train: FewShotDataset
    val: FewShotDataset
    test: FewShotDataset


def lake_data(
    root: str | os.PathLike[str],
    *,
    image_size: int = 28,
    val_alphabets: Sequence[str] | None = None,
    progress: bool = False,
) -> LakeData:
    """The three parts at ``image_size`` from an Omniglot folder (see :func:`metadl.data.omniglot.omniglot`).

    ``val_alphabets`` (background alphabets) replaces the default every-sixth choice, e.g. to choose
    settings for a model trained elsewhere on alphabets it never saw.
    """
    background = omniglot(root, "background", protocol="lake", image_size=image_size, progress=progress)
    val = validation_alphabets(background) if val_alphabets is None else list(val_alphabets)
    train = [a for a in sorted(class_groups(background.class_names)) if a not in val]
    return LakeData(
        alphabet_subset(background, train, "omniglot-lake-background-train"),
        alphabet_subset(background, val, "omniglot-lake-background-val"),
        omniglot(root, "evaluation", protocol="lake", image_size=image_size, progress=progress),
    )
