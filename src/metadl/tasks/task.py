"""A task is a support set and a query set; a TaskBatch stacks tasks of equal shape.

Classification tasks carry integer labels remapped to ``0..n_way-1``; regression tasks carry float
targets of shape ``(n, out_features)``. Everything downstream decides "classification or regression"
from the dtype of the labels, so there is one source of truth.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields

import torch
from torch import Tensor


def is_classification(y: Tensor) -> bool:
    """True for integer class labels, False for float regression targets."""
    return not torch.is_floating_point(y)


@dataclass(frozen=True)
class Task:
    """One few-shot task.

    Attributes:
        support_x: ``(S, *x_shape)`` examples the learner adapts on.
        support_y: ``(S,)`` int64 labels in ``0..n_way-1``, or ``(S, out)`` float targets.
        query_x: ``(Q, *x_shape)`` examples the adapted learner is scored on.
        query_y: ``(Q,)`` or ``(Q, out)``, same kind as ``support_y``.

    Example:
        >>> t = Task(torch.zeros(5, 1, 28, 28), torch.arange(5), torch.zeros(10, 1, 28, 28), torch.arange(5).repeat(2))
        >>> t.n_way, t.is_classification
        (5, True)
    """

    support_x: Tensor
    support_y: Tensor
    query_x: Tensor
    query_y: Tensor

    def __post_init__(self) -> None:
        if len(self.support_x) != len(self.support_y):
            raise ValueError(
                f"support_x has {len(self.support_x)} examples but support_y has {len(self.support_y)}"
            )
        if len(self.query_x) != len(self.query_y):
            raise ValueError(f"query_x has {len(self.query_x)} examples but query_y has {len(self.query_y)}")
        if self.support_x.shape[1:] != self.query_x.shape[1:]:
            raise ValueError(
                f"support and query examples differ in shape: {tuple(self.support_x.shape[1:])} "
                f"vs {tuple(self.query_x.shape[1:])}"
            )

    @property
    def is_classification(self) -> bool:
        return is_classification(self.support_y)

    @property
    def n_way(self) -> int:
        """Number of classes (labels are 0..n_way-1); raises for regression tasks."""
        if not self.is_classification:
            raise ValueError("n_way is defined for classification tasks only (support_y is float)")
        return int(self.support_y.max()) + 1

    def to(self, device: torch.device | str) -> Task:
        return Task(*(getattr(self, f.name).to(device) for f in fields(self)))


@dataclass(frozen=True)
class TaskBatch:
    """T tasks of equal shape stacked along a leading task dimension.

    Attributes:
        support_x: ``(T, S, *x_shape)``; support_y: ``(T, S)`` or ``(T, S, out)``.
        query_x: ``(T, Q, *x_shape)``; query_y: ``(T, Q)`` or ``(T, Q, out)``.

    Example:
        >>> t = Task(torch.zeros(5, 3), torch.arange(5), torch.zeros(5, 3), torch.arange(5))
        >>> TaskBatch.stack([t, t]).support_x.shape
        torch.Size([2, 5, 3])
    """

    support_x: Tensor
    support_y: Tensor
    query_x: Tensor
    query_y: Tensor

    def __post_init__(self) -> None:
        sizes = {f.name: getattr(self, f.name).shape[0] for f in fields(self)}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"all fields of a TaskBatch need the same number of tasks, got {sizes}")
        if self.support_x.dim() < 3 or self.query_x.dim() < 3:
            raise ValueError(
                "TaskBatch expects support_x (T, S, *x_shape) and query_x (T, Q, *x_shape); "
                f"got {tuple(self.support_x.shape)} and {tuple(self.query_x.shape)}. "
                "For a single task use Task, or add a leading task dimension with .unsqueeze(0)."
            )

    @classmethod
    def stack(cls, tasks: Sequence[Task]) -> TaskBatch:
        if not tasks:
            raise ValueError("cannot stack an empty list of tasks")
        shapes = {(t.support_x.shape, t.query_x.shape) for t in tasks}
        if len(shapes) != 1:
            raise ValueError(
                f"tasks in a TaskBatch must have equal shapes, got {sorted(map(str, shapes))}; "
                "variable-way/variable-shot episodes are processed one Task at a time"
            )
        return cls(*(torch.stack([getattr(t, f.name) for t in tasks]) for f in fields(Task)))

    @classmethod
    def from_task(cls, task: Task) -> TaskBatch:
        return cls(*(getattr(task, f.name).unsqueeze(0) for f in fields(Task)))

    def __len__(self) -> int:
        return self.support_x.shape[0]

    def __getitem__(self, i: int) -> Task:
        return Task(*(getattr(self, f.name)[i] for f in fields(self)))

    def __iter__(self) -> Iterator[Task]:
        return (self[i] for i in range(len(self)))

    @property
    def is_classification(self) -> bool:
        return is_classification(self.support_y)

    @property
    def n_way(self) -> int:
        if not self.is_classification:
            raise ValueError("n_way is defined for classification tasks only (support_y is float)")
        return int(self.support_y.max()) + 1

    def to(self, device: torch.device | str, non_blocking: bool = False) -> TaskBatch:
        return TaskBatch(*(getattr(self, f.name).to(device, non_blocking=non_blocking) for f in fields(self)))

    def chunks(self, size: int) -> list[TaskBatch]:
        """Split into consecutive TaskBatches of at most ``size`` tasks (memory-bounded processing)."""
        parts = [getattr(self, f.name).split(size) for f in fields(self)]
        return [TaskBatch(*p) for p in zip(*parts, strict=True)]


def as_task_batch(tasks: Task | TaskBatch) -> TaskBatch:
    """Accept a single Task or a TaskBatch where a batch is expected."""
    return TaskBatch.from_task(tasks) if isinstance(tasks, Task) else tasks
