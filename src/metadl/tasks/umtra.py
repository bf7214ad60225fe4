"""UMTRA (Khodadadeh et al. 2019): N-way K-shot tasks from unlabelled images, each drawn image a class.

Per task, ``n_way`` distinct images are drawn uniformly from the pool (labels, if the pool has any,
are ignored: an unlabelled folder is a pool of one class). Image ``i`` is class ``i``: its first support
shot is the image itself, its other ``k_shot - 1`` shots and its ``n_query`` queries are augmented
copies (the paper's recipe for Omniglot: the image as support, an augmented copy as query). With many
more images than ways, two draws rarely share a true class, which is what makes the tasks useful.

Everything comes from the pool it is given, so a source built from the training split never sees
validation or test images. All randomness (the draws and the augmentation) comes from the source's one
generator.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from metadl.augment.registry import compose
from metadl.augment.transforms import Transform
from metadl.data.base import FewShotDataset
from metadl.tasks.source import SeededSource, TaskKind, TaskSourceError, seeded_generator
from metadl.tasks.task import Task, TaskBatch

# The default augmentation: small shifts, rotations, shears and a smooth wobble of the strokes.
DEFAULT_TRANSFORMS: tuple[dict[str, Any], ...] = (
    {"name": "affine", "degrees": 15, "translate": 0.1, "scale": [0.85, 1.15], "shear": 10},
    {"name": "elastic", "alpha": 1.5, "sigma": 3.0},
)


class UMTRASource(SeededSource):
    """Tasks whose classes are single unlabelled images and whose other examples are their augmentations.

    Args:
        dataset: the unlabelled pool (one split; its labels are not used).
        n_way: images (classes) per task.
        k_shot: support examples per class: the image, then ``k_shot - 1`` augmented copies.
        n_query: augmented copies per class in the query set.
        transforms: a :class:`~metadl.augment.Transform` or a list of ``{name: ..., **kwargs}`` transform
            specs (``metadl.augment.list_transforms()``); default :data:`DEFAULT_TRANSFORMS`.
        seed: an int or a ``torch.Generator``.

    Example:
        >>> ds = FewShotDataset(torch.rand(50, 1, 12, 12), torch.zeros(50, dtype=torch.long), ["unlabelled"])
        >>> task = UMTRASource(ds, n_way=5, k_shot=1, n_query=2, seed=0).sample()
        >>> tuple(task.support_x.shape), task.query_y.tolist()
        ((5, 1, 12, 12), [0, 0, 1, 1, 2, 2, 3, 3, 4, 4])
    """

    kind: TaskKind = "classification"
    batchable = True

    def __init__(
        self,
        dataset: FewShotDataset,
        *,
        n_way: int,
        k_shot: int = 1,
        n_query: int = 1,
        transforms: Transform | Sequence[Mapping[str, Any]] | None = None,
        seed: int | torch.Generator = 0,
    ) -> None:
        for key, value, low in (("n_way", n_way, 1), ("k_shot", k_shot, 1), ("n_query", n_query, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise TaskSourceError(f"{key} = {value!r}: must be an int >= {low}")
        if len(dataset.x_shape) != 3:
            raise TaskSourceError(f"UMTRA augments images (C, H, W); {dataset.name} holds {dataset.x_shape}")
        if n_way > len(dataset):
            raise TaskSourceError(f"n_way = {n_way} but {dataset.name} has only {len(dataset)} images")
        self.dataset, self.n_way, self.k_shot, self.n_query = dataset, n_way, k_shot, n_query
        self.transforms = compose(DEFAULT_TRANSFORMS if transforms is None else transforms)
        self.generator = seeded_generator(seed)

    def indices(self, n_tasks: int) -> torch.Tensor:
        """``(T, N)`` pool indices of the images that are the classes of ``n_tasks`` tasks (distinct per task)."""
        return torch.rand(n_tasks, len(self.dataset), generator=self.generator).argsort(1)[:, : self.n_way]

    def sample_batch(self, n_tasks: int) -> TaskBatch:
        if n_tasks < 1:
            raise TaskSourceError(f"n_tasks must be >= 1, got {n_tasks}")
        images = self.dataset.gather(self.indices(n_tasks))  # (T, N, C, H, W)
        t, n, k, q = n_tasks, self.n_way, self.k_shot, self.n_query
        copies = images.unsqueeze(2).expand(t, n, k - 1 + q, *self.dataset.x_shape)
        augmented = self.transforms(copies.reshape(-1, *self.dataset.x_shape), self.generator)
        augmented = augmented.view(t, n, k - 1 + q, *self.dataset.x_shape)
        support = torch.cat([images.unsqueeze(2), augmented[:, :, : k - 1]], 2)
        labels = torch.arange(n).view(1, n, 1)
        return TaskBatch(
            support.reshape(t, n * k, *self.dataset.x_shape),
            labels.expand(t, n, k).reshape(t, n * k),
            augmented[:, :, k - 1 :].reshape(t, n * q, *self.dataset.x_shape),
            labels.expand(t, n, q).reshape(t, n * q),
        )

    def sample(self) -> Task:
        return self.sample_batch(1)[0]
