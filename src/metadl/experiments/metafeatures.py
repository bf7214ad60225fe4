"""Meta-features of a few-shot task distribution: what the experiment database knows about the data of a run.

A task distribution is a dataset split seen through an episode shape (N-way, K-shot, Q queries). It is
described by

- its **shape**: classes in the split, ways, shots, queries, channels, height and width of an example, and
  whether it is an image, a vector or a regression problem;
- two **landmarkers** (Pfahringer et al. 2000: the score of a cheap learner as a description of the data):
  the accuracy of a nearest-prototype classifier on a few seeded episodes, once on the raw inputs
  (``landmark_raw``) and once on the features of a *frozen, randomly initialised* Conv-4 (``landmark_frozen``,
  images only). Chance is ``1 / ways``; easy distributions score far above it. A random convolutional network
  is a known fair feature extractor (Saxe et al. 2011), cheap to run and identical for every distribution.

Everything is seeded: the same distribution gives the same numbers.

Example:
    >>> from metadl.data.synthetic import synthetic_glyphs
    >>> ds = synthetic_glyphs("val", num_classes=10, examples_per_class=6, image_size=16)
    >>> mf = distribution_features(ds, ways=5, shots=1, queries=2, episodes=4)
    >>> mf.classes, mf.ways, mf.height, mf.modality, 0.0 <= mf.landmark_raw <= 1.0
    (10, 5, 16, 'image', True)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from metadl.data.base import FewShotDataset
from metadl.models import create_backbone
from metadl.tasks import EpisodeSampler

LANDMARK_EPISODES = 20
LANDMARK_SEED = 12345
MODALITIES = ("image", "vector", "regression")


@dataclass(frozen=True)
class DistributionFeatures:
    """The meta-features of one task distribution (see the module docstring); landmarks ``None`` when undefined."""

    classes: int
    ways: int
    shots: int
    queries: int
    channels: int
    height: int
    width: int
    modality: str
    landmark_raw: float | None = None
    landmark_frozen: float | None = None

    def as_dict(self) -> dict[str, float]:
        """Numbers only (the database's ``metafeatures``): the modality one-hot, undefined landmarks left out."""
        values = {k: v for k, v in asdict(self).items() if k != "modality" and v is not None}
        values.update({f"is_{m}": float(self.modality == m) for m in MODALITIES})
        return {k: float(v) for k, v in values.items()}


def distribution_features(
    dataset: FewShotDataset,
    *,
    ways: int,
    shots: int,
    queries: int,
    episodes: int = LANDMARK_EPISODES,
    seed: int = LANDMARK_SEED,
) -> DistributionFeatures:
    """Meta-features of ``ways``-way ``shots``-shot episodes drawn from ``dataset`` (one split)."""
    shape = tuple(dataset.x_shape)
    image = len(shape) == 3
    channels, height, width = shape if image else (1, 0, 0)
    ways = min(ways, dataset.num_classes)
    sampler = EpisodeSampler(dataset, n_way=ways, k_shot=shots, n_query=queries, seed=seed)
    tasks = [sampler.sample() for _ in range(episodes)]
    raw = [
        nearest_prototype_accuracy(t.support_x.flatten(1), t.support_y, t.query_x.flatten(1), t.query_y)
        for t in tasks
    ]
    frozen: list[float] = []
    if image and min(height, width) >= 16:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(seed)
            encoder = create_backbone("conv4", in_channels=channels, hidden=32, image_size=height).eval()
            for t in tasks:
                s, q = encoder(t.support_x), encoder(t.query_x)
                frozen.append(nearest_prototype_accuracy(s, t.support_y, q, t.query_y))
    return DistributionFeatures(
        classes=dataset.num_classes,
        ways=ways,
        shots=shots,
        queries=queries,
        channels=channels,
        height=height,
        width=width,
        modality="image" if image else "vector",
        landmark_raw=_mean(raw),
        landmark_frozen=_mean(frozen),
    )


def regression_features(*, shots: int, queries: int, in_features: int = 1) -> DistributionFeatures:
    """Meta-features of generated regression tasks (no classes, no landmarkers)."""
    return DistributionFeatures(0, 0, shots, queries, in_features, 0, 0, "regression")


def nearest_prototype_accuracy(support: Tensor, support_y: Tensor, query: Tensor, query_y: Tensor) -> float:
    """Accuracy of assigning each query row to the class whose mean support row is nearest (Euclidean).

    Example:
        >>> s = torch.tensor([[0.0], [1.0], [10.0], [11.0]]); sy = torch.tensor([0, 0, 1, 1])
        >>> nearest_prototype_accuracy(s, sy, torch.tensor([[2.0], [9.0], [6.0]]), torch.tensor([0, 1, 0]))
        0.6666666865348816
    """
    ways = int(support_y.max()) + 1
    prototypes = torch.stack([support[support_y == c].mean(0) for c in range(ways)])
    predicted = torch.cdist(query, prototypes).argmin(1)
    return float((predicted == query_y).float().mean())


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values and all(map(math.isfinite, values)) else None
