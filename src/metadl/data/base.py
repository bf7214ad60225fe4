"""The in-memory labelled dataset every sampler draws from.

Examples are held as one tensor and grouped by class, so an episode is an index gather, not a
Python loop over files. Images may be stored as uint8 (a quarter of the memory) and are turned into
float32 in [0, 1] only for the examples an episode gathers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class FewShotDataset:
    """Examples of one split, grouped by class.

    Attributes:
        data: ``(N, *x_shape)`` examples; uint8 images are scaled to [0, 1] float32 on gather.
        labels: ``(N,)`` int64 class index in ``0..num_classes-1``.
        class_names: one name per class (e.g. ``"Greek/character03/rot090"``).
        name: the dataset's name, for messages.

    Example:
        >>> ds = FewShotDataset(torch.zeros(6, 2), torch.tensor([0, 0, 1, 1, 2, 2]), ["a", "b", "c"])
        >>> ds.num_classes, ds.class_counts.tolist()
        (3, [2, 2, 2])
    """

    data: Tensor
    labels: Tensor
    class_names: Sequence[str]
    name: str = "dataset"
    # Filled in __post_init__: examples sorted by class, with per-class offset and count.
    class_offsets: Tensor = field(init=False, repr=False)
    class_counts: Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.data.shape[0] != self.labels.shape[0]:
            raise ValueError(f"{self.name}: {self.data.shape[0]} examples but {self.labels.shape[0]} labels")
        self.labels = self.labels.long()
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.class_names)):
            raise ValueError(
                f"{self.name}: labels must lie in 0..{len(self.class_names) - 1} "
                f"(one per class name), got {int(self.labels.min())}..{int(self.labels.max())}"
            )
        if len(self.labels) > 1 and bool((self.labels[1:] < self.labels[:-1]).any()):  # sort only when needed
            order = torch.argsort(self.labels, stable=True)
            self.data, self.labels = self.data[order], self.labels[order]
        self.class_counts = torch.bincount(self.labels, minlength=len(self.class_names))
        self.class_offsets = torch.cumsum(self.class_counts, 0) - self.class_counts
        empty = (self.class_counts == 0).nonzero().flatten().tolist()
        if empty:
            raise ValueError(
                f"{self.name}: classes without examples: {[self.class_names[i] for i in empty[:5]]}"
            )

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def x_shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape[1:])

    def __len__(self) -> int:
        return self.data.shape[0]

    def gather(self, index: Tensor) -> Tensor:
        """Examples at ``index`` (any shape) as float32: ``(*index.shape, *x_shape)``."""
        x = self.data[index.reshape(-1)]
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        return x.reshape(*index.shape, *self.x_shape)

    def subset(self, classes: Sequence[int], name: str | None = None) -> FewShotDataset:
        """A dataset of the given classes only, relabelled 0..len(classes)-1 in the given order."""
        classes_t = torch.as_tensor(list(classes), dtype=torch.long)
        keep = torch.isin(self.labels, classes_t)
        remap = torch.full((self.num_classes,), -1, dtype=torch.long)
        remap[classes_t] = torch.arange(len(classes_t))
        return FewShotDataset(
            self.data[keep],
            remap[self.labels[keep]],
            [self.class_names[c] for c in classes_t.tolist()],
            name=name or self.name,
        )

    def tensors(self) -> tuple[Tensor, Tensor]:
        """All examples as float32 and their labels, for supervised training."""
        return self.gather(torch.arange(len(self))), self.labels
