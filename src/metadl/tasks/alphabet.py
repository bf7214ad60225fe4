"""Within-alphabet episodes with support and query drawn by different people (Lake et al. 2015).

Omniglot's own one-shot challenge is harder than random N-way episodes: the N characters of an
episode all come from **one alphabet** (within-alphabet discrimination), the support images are drawn
by one person and the query images by another. :class:`AlphabetEpisodeSampler` draws such episodes
from any :class:`~metadl.data.base.FewShotDataset` given two labellings:

- a **group** per class (the alphabet; by default the part of the class name before the first ``/``,
  so ``"Greek/character03"`` and ``"Greek/character03/rot090"`` are both ``"Greek"``);
- a **drawer** per example (who drew it; by default the example's position within its class, which is
  the drawer for Omniglot, whose ``[c, k]`` image is drawer ``k + 1``).

Per episode: a group uniformly among those with at least ``n_way`` classes; ``n_way`` of its classes
without replacement; then ``k_shot + n_query`` distinct drawers among those who drew every chosen
class: the first ``k_shot`` give the support of every class, the other ``n_query`` the queries. So a
drawer never appears in both the support and the query of an episode, and an episode never mixes
groups. Lake's 20-way 1-shot protocol is ``n_way=20, k_shot=1, n_query=1``.

Example:
    >>> from metadl.data.base import FewShotDataset
    >>> names = [f"{a}/character{i:02d}" for a in ("Greek", "Latin") for i in range(1, 4)]
    >>> ds = FewShotDataset(torch.zeros(6 * 4, 2), torch.arange(6).repeat_interleave(4), names)
    >>> task = AlphabetEpisodeSampler(ds, n_way=3, k_shot=1, n_query=2, seed=0).sample()
    >>> task.name in ("Greek", "Latin"), all(c.startswith(task.name + "/") for c in task.classes)
    (True, True)
    >>> tuple(task.support_x.shape), tuple(task.query_y.tolist())
    ((3, 2), (0, 0, 1, 1, 2, 2))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from metadl.data.base import FewShotDataset
from metadl.tasks.source import NamedTask, SeededSource, TaskKind, TaskSourceError, seeded_generator


def class_groups(class_names: Sequence[str]) -> list[str]:
    """The group of each class: its name up to the first ``/`` (Omniglot's alphabet).

    Example:
        >>> class_groups(["Greek/character01", "Latin/character02/rot090"])
        ['Greek', 'Latin']
    """
    return [name.partition("/")[0] for name in class_names]


def position_drawers(dataset: FewShotDataset) -> Tensor:
    """``(N,)`` the position of each example within its class (Omniglot's drawer index, 0..19).

    Example:
        >>> ds = FewShotDataset(torch.zeros(5, 1), torch.tensor([0, 0, 0, 1, 1]), ["a", "b"])
        >>> position_drawers(ds).tolist()
        [0, 1, 2, 0, 1]
    """
    return torch.arange(len(dataset)) - dataset.class_offsets[dataset.labels]


@dataclass(frozen=True)
class AlphabetEpisode:
    """Where one episode came from: its group, classes (dataset class ids, in label order) and drawers.

    ``index`` holds the dataset indices ``(n_way, k_shot + n_query)``: support first, by drawer.
    """

    group: str
    classes: tuple[int, ...]
    support_drawers: tuple[int, ...]
    query_drawers: tuple[int, ...]
    index: Tensor


class AlphabetEpisodeSampler(SeededSource):
    """N-way K-shot episodes within one group (alphabet), support and query by different drawers.

    Args:
        dataset: the split to draw from (e.g. Omniglot's Lake ``"evaluation"`` alphabets).
        n_way, k_shot, n_query: classes per episode; support drawers and query drawers per episode
            (every class of the episode is drawn by the same ``k_shot`` + ``n_query`` people).
        seed: an int or a ``torch.Generator``.
        groups: the group of each class (default :func:`class_groups` of the class names).
        drawers: ``(N,)`` int drawer id of each example (default :func:`position_drawers`). A class may
            hold at most one example per drawer.

    Registered as the task source ``"alphabet_episodes"``; ``sample()`` returns a :class:`NamedTask`
    named after the episode's group, and :meth:`sample_episode` says which drawers were used.
    """

    kind: TaskKind = "classification"
    batchable = True

    def __init__(
        self,
        dataset: FewShotDataset,
        *,
        n_way: int,
        k_shot: int,
        n_query: int,
        seed: int | torch.Generator = 0,
        groups: Sequence[str] | None = None,
        drawers: Tensor | None = None,
    ) -> None:
        for key, value in (("n_way", n_way), ("k_shot", k_shot), ("n_query", n_query)):
            if value < 1:
                raise TaskSourceError(f"{key} must be >= 1, got {value}")
        groups = class_groups(dataset.class_names) if groups is None else list(groups)
        if len(groups) != dataset.num_classes:
            raise TaskSourceError(
                f"groups has {len(groups)} entries but {dataset.name} has {dataset.num_classes} classes"
            )
        drawers = position_drawers(dataset) if drawers is None else torch.as_tensor(drawers, dtype=torch.long)
        if drawers.shape != (len(dataset),):
            raise TaskSourceError(
                f"drawers must have shape ({len(dataset)},), one per example; got {tuple(drawers.shape)}"
            )
        self.dataset = dataset
        self.n_way, self.k_shot, self.n_query = n_way, k_shot, n_query
        self.generator = seeded_generator(seed)
        self._drawer_ids, drawer_col = torch.unique(drawers, return_inverse=True)
        # slots[c, d]: the index of class c's example by drawer d, or -1 when d did not draw c.
        self._slots = torch.full((dataset.num_classes, len(self._drawer_ids)), -1, dtype=torch.long)
        self._slots[dataset.labels, drawer_col] = torch.arange(len(dataset))
        per_class = torch.zeros_like(self._slots).index_put_(
            (dataset.labels, drawer_col), torch.ones(len(dataset), dtype=torch.long), accumulate=True
        )
        if bool((per_class > 1).any()):
            c = int((per_class > 1).any(dim=1).nonzero()[0])
            raise TaskSourceError(
                f"class '{dataset.class_names[c]}' of {dataset.name} has two examples by one drawer"
            )
        members: dict[str, list[int]] = {}
        for c, g in enumerate(groups):
            members.setdefault(g, []).append(c)
        self.groups = tuple(sorted(g for g, cs in members.items() if len(cs) >= n_way))
        if not self.groups:
            largest = max(len(cs) for cs in members.values())
            raise TaskSourceError(
                f"n_way = {n_way} but the largest group of {dataset.name} has {largest} classes; use n_way <= {largest}"
            )
        self._members = [torch.tensor(members[g]) for g in self.groups]
        need = k_shot + n_query
        drawn_by = (self._slots >= 0).sum(dim=1)
        if int(drawn_by.min()) < need:
            c = int(drawn_by.argmin())
            raise TaskSourceError(
                f"k_shot + n_query = {need} drawers are needed but class '{dataset.class_names[c]}' of "
                f"{dataset.name} was drawn by {int(drawn_by[c])}; lower k_shot or n_query"
            )

    def sample_episode(self) -> AlphabetEpisode:
        """One episode's group, classes, drawers and dataset indices (the stream :meth:`sample` uses)."""
        g = self.generator
        group = int(torch.randint(len(self.groups), (1,), generator=g))
        members = self._members[group]
        classes = members[torch.randperm(len(members), generator=g)[: self.n_way]]
        slots = self._slots[classes]  # (n_way, D)
        common = (slots >= 0).all(dim=0).nonzero().flatten()  # drawers who drew every chosen class
        need = self.k_shot + self.n_query
        if len(common) < need:
            raise TaskSourceError(
                f"only {len(common)} drawers drew all {self.n_way} classes chosen in group "
                f"{self.groups[group]!r}; k_shot + n_query = {need} are needed"
            )
        chosen = common[torch.randperm(len(common), generator=g)[:need]]
        ids = self._drawer_ids[chosen].tolist()
        return AlphabetEpisode(
            group=self.groups[group],
            classes=tuple(classes.tolist()),
            support_drawers=tuple(ids[: self.k_shot]),
            query_drawers=tuple(ids[self.k_shot :]),
            index=slots[:, chosen],
        )

    def sample(self) -> NamedTask:
        episode = self.sample_episode()
        n, k, q = self.n_way, self.k_shot, self.n_query
        x = self.dataset.gather(episode.index)  # (n_way, k_shot + n_query, *x_shape)
        labels = torch.arange(n)
        return NamedTask(
            x[:, :k].reshape(n * k, *self.dataset.x_shape),
            labels.repeat_interleave(k),
            x[:, k:].reshape(n * q, *self.dataset.x_shape),
            labels.repeat_interleave(q),
            name=episode.group,
            classes=tuple(self.dataset.class_names[c] for c in episode.classes),
        )
