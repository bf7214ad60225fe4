"""A task source that augments the tasks of another: the training stream's wrapper.

:class:`AugmentedSource` draws a meta-batch from the source it wraps, then (each step optional)
interpolates it with a second meta-batch from the same source (:class:`~metadl.augment.tasks.TaskMix`),
rotates / mirrors whole classes (:class:`~metadl.augment.tasks.ClassRotation`) and transforms every
support and query image (a :class:`~metadl.augment.transforms.Transform`). Its own generator drives the
augmentation; the wrapped source keeps its own stream, so ``state_dict()`` holds both and a checkpoint
resumes the augmented stream exactly. The engine wraps the training source only: validation and test
episodes are drawn from plain samplers and never see it.
"""

from __future__ import annotations

from typing import Any

import torch

from metadl.augment.checks import AugmentError
from metadl.augment.tasks import ClassRotation, TaskMix
from metadl.augment.transforms import Transform
from metadl.tasks.source import TaskKind, TaskSource, seeded_generator
from metadl.tasks.task import Task, TaskBatch


class AugmentedSource:
    """``source``'s tasks, augmented (see the module docstring).

    Args:
        source: a classification task source of images ``(C, H, W)``.
        transforms: applied to every support and query image (None: none).
        classes: class rotation / mirroring (None: none).
        mix: MLTI task interpolation with a second draw of ``source`` (None: none; needs a batchable source).
        seed: an int or a ``torch.Generator`` for the augmentation only.

    Example:
        >>> from metadl.augment import Affine
        >>> from metadl.data.base import FewShotDataset
        >>> from metadl.tasks import EpisodeSampler
        >>> ds = FewShotDataset(torch.rand(40, 1, 8, 8), torch.arange(4).repeat_interleave(10), list("abcd"))
        >>> src = AugmentedSource(EpisodeSampler(ds, n_way=3, k_shot=1, n_query=2, seed=0), transforms=Affine(degrees=20), seed=1)
        >>> src.sample_batch(2).support_x.shape
        torch.Size([2, 3, 1, 8, 8])
    """

    def __init__(
        self,
        source: TaskSource,
        *,
        transforms: Transform | None = None,
        classes: ClassRotation | None = None,
        mix: TaskMix | None = None,
        seed: int | torch.Generator = 0,
    ) -> None:
        if source.kind != "classification":
            raise AugmentError(f"augmentation applies to image classification tasks, not {source.kind} tasks")
        if mix is not None and not source.batchable:
            raise AugmentError("task mixing needs a source whose tasks all have one shape (batchable)")
        self.source, self.transforms, self.classes, self.mix = source, transforms, classes, mix
        self.generator = seeded_generator(seed)

    @property
    def kind(self) -> TaskKind:
        return self.source.kind

    @property
    def batchable(self) -> bool:
        return self.source.batchable

    def sample_batch(self, n_tasks: int) -> TaskBatch:
        batch = self.source.sample_batch(n_tasks)
        partner = self.source.sample_batch(n_tasks) if self.mix is not None else None
        return self.augment(batch, partner)

    def sample(self) -> Task:
        if self.mix is not None:
            return self.sample_batch(1)[0]
        return self.augment(TaskBatch.from_task(self.source.sample()))[0]

    def augment(self, batch: TaskBatch, partner: TaskBatch | None = None) -> TaskBatch:
        """The augmented batch (``partner``: the batch to mix with, when mixing is on)."""
        g = self.generator
        if self.mix is not None:
            if partner is None:
                raise AugmentError("task mixing needs a partner batch")
            batch = self.mix(batch, partner, g)
        if self.classes is not None:
            batch = self.classes(batch, g)
        if self.transforms is None:
            return batch
        sx, qx = batch.support_x, batch.query_x
        if sx.dim() != 5:
            raise AugmentError(f"image transforms need images (T, S, C, H, W); got {tuple(sx.shape)}")
        return TaskBatch(
            self.transforms(sx.flatten(0, 1), g).view_as(sx),
            batch.support_y,
            self.transforms(qx.flatten(0, 1), g).view_as(qx),
            batch.query_y,
        )

    def state_dict(self) -> dict[str, Any]:
        return {"source": self.source.state_dict(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.source.load_state_dict(state["source"])
        self.generator.set_state(state["generator"])
