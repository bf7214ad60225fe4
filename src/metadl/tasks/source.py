"""The task-source contract: anything that yields few-shot tasks, seeded and resumable.

A *task source* is the one abstraction behind every way metadl gets tasks: N classes drawn from a
labelled pool (:class:`~metadl.tasks.EpisodeSampler`), sinusoids, a folder of task files each with its
own label space, the rows of one user in a ratings table, a whole dataset. It provides:

- ``kind``: ``"classification"`` (``support_y`` int64 in ``0..n_way-1``) or ``"regression"``
  (``support_y`` float, ``(S, out)``), declared so a consumer checks it before drawing anything;
- ``batchable``: True when every task has the same shapes, so ``sample_batch(T)`` stacks them;
- ``sample()`` -> :class:`~metadl.tasks.Task`, ``sample_batch(T)`` -> :class:`~metadl.tasks.TaskBatch`;
- ``state_dict()`` / ``load_state_dict()``: all randomness comes from one ``torch.Generator`` owned by
  the source, so the same seed gives the same tasks bit for bit and a restored state continues the
  stream exactly (the state holds tensors only: it loads with ``torch.load(weights_only=True)``).

Sources whose tasks are *given* rather than drawn (task files, users, datasets) return a
:class:`NamedTask`: a ``Task`` that also knows its name and its label space (``classes[i]`` names
label ``i``). Text stays text until an encoder sees it: the ``x`` of a text task is an int64 column
``(S, 1)`` of indices into ``texts`` (the source's example strings, shared, not copied). Why indices and
not lists of strings: tasks keep one tensor type, so ``TaskBatch`` stacking, sharding and ``.to(device)``
work unchanged; a frozen encoder embeds ``texts`` once and every episode becomes an index gather into
the embedding table (no re-encoding); an encoder being fine-tuned looks the strings up per episode.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from torch import Tensor

from metadl.tasks.task import Task, TaskBatch

TaskKind = Literal["classification", "regression"]


class TaskSourceError(ValueError):
    """A task source cannot be built from what it was given (the message names the value and the fix)."""


@runtime_checkable
class TaskSource(Protocol):
    """What every entry of the task-source registry provides (see the module docstring)."""

    @property
    def kind(self) -> TaskKind: ...

    @property
    def batchable(self) -> bool: ...

    def sample(self) -> Task: ...

    def sample_batch(self, n_tasks: int) -> TaskBatch: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class NamedTask(Task):
    """A :class:`Task` that knows where it came from.

    Attributes:
        name: the task's name (a file stem such as ``"apparel.t2"``, a user id, a dataset name).
        classes: ``classes[i]`` is the name of label ``i``; empty for regression tasks.
        texts: for text tasks, the strings that ``x`` indexes (``x`` is int64 ``(S, 1)``); else None.

    Example:
        >>> t = NamedTask(torch.tensor([[0], [1]]), torch.tensor([0, 1]), torch.tensor([[2]]), torch.tensor([1]),
        ...               name="reviews", classes=("neg", "pos"), texts=("bad", "good", "great"))
        >>> t.support_texts(), t.query_texts(), t.classes[int(t.query_y[0])]
        (['bad', 'good'], ['great'], 'pos')
    """

    name: str = ""
    classes: tuple[str, ...] = ()
    texts: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.classes and self.is_classification:
            top = int(torch.cat([self.support_y, self.query_y]).max())
            if top >= len(self.classes):
                raise ValueError(f"task {self.name!r}: label {top} has no name in classes {self.classes}")
        if self.texts is not None and (
            self.support_x.dtype != torch.long or self.support_x.shape[1:] != (1,)
        ):
            raise ValueError(f"task {self.name!r}: a text task's x must be int64 indices of shape (n, 1)")

    def support_texts(self) -> list[str]:
        """The support examples as strings (text tasks only)."""
        return self._lookup(self.support_x)

    def query_texts(self) -> list[str]:
        """The query examples as strings (text tasks only)."""
        return self._lookup(self.query_x)

    def _lookup(self, x: Tensor) -> list[str]:
        if self.texts is None:
            raise ValueError(f"task {self.name!r} holds feature tensors, not texts")
        texts = self.texts
        return [texts[i] for i in x.flatten().tolist()]

    def to(self, device: torch.device | str) -> NamedTask:
        return NamedTask(
            self.support_x.to(device),
            self.support_y.to(device),
            self.query_x.to(device),
            self.query_y.to(device),
            name=self.name,
            classes=self.classes,
            texts=self.texts,
        )


def seeded_generator(seed: int | torch.Generator) -> torch.Generator:
    """A ``torch.Generator`` seeded with ``seed``, or ``seed`` itself when it already is one."""
    if isinstance(seed, torch.Generator):
        return seed
    g = torch.Generator()
    g.manual_seed(int(seed))
    return g


class SeededSource(ABC):
    """Holds the source's generator; gives checkpointable state and a default ``sample_batch``.

    Subclasses set ``self.generator`` and implement ``sample()``; sources that can draw a whole batch at
    once (index gathers over one tensor) override ``sample_batch``.
    """

    generator: torch.Generator

    @abstractmethod
    def sample(self) -> Task:
        """One task, drawn with ``self.generator``."""

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])

    def sample_batch(self, n_tasks: int) -> TaskBatch:
        """``n_tasks`` tasks from ``sample()`` stacked; raises when their shapes differ (``batchable`` False)."""
        if n_tasks < 1:
            raise TaskSourceError(f"n_tasks must be >= 1, got {n_tasks}")
        tasks = [self.sample() for _ in range(n_tasks)]
        try:
            return TaskBatch.stack(tasks)
        except ValueError as err:
            raise TaskSourceError(
                f"{type(self).__name__}: {err}; this source's tasks differ in shape, draw them with sample()"
            ) from None


def pick(names: tuple[str, ...], name: str | None, generator: torch.Generator, source: str) -> int:
    """Index of task ``name`` in ``names``, or a uniformly random one (seeded) when ``name`` is None."""
    if name is None:
        return int(torch.randint(len(names), (1,), generator=generator))
    try:
        return names.index(name)
    except ValueError:
        shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        raise TaskSourceError(f"{source} has no task {name!r}; its tasks are {shown}") from None
