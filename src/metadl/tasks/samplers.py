"""Episode samplers: N-way K-shot classification, variable-way variable-shot, sinusoid regression.

Every sampler owns a ``torch.Generator`` seeded explicitly: the same seed gives the same episodes,
bit for bit, and ``state_dict()`` / ``load_state_dict()`` let a checkpoint resume the stream exactly.
Episodes are built with vectorised index gathers over the dataset tensor (no Python loop over
examples), so a meta-batch of 32 Omniglot episodes costs well under a millisecond of indexing.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from metadl.data.base import FewShotDataset
from metadl.tasks.source import NamedTask, SeededSource, TaskKind, seeded_generator
from metadl.tasks.task import Task, TaskBatch


class EpisodeSampler(SeededSource):
    """N-way K-shot classification episodes over one split of a dataset.

    Classes are drawn without replacement from ``dataset`` (one split, so no class leaks across
    splits) and relabelled 0..N-1 in random order; each class contributes K support and Q query
    examples drawn without replacement. Support and query are ordered class by class.

    Args:
        dataset: the split to draw from.
        n_way, k_shot, n_query: classes per episode, support and query examples per class.
        seed: an int or a ``torch.Generator``.

    Registered as the task source ``"episodes"``; ``sample()`` returns a :class:`NamedTask` whose
    ``classes`` name the drawn classes in label order (the stream is the same as ``sample_batch(1)``'s).

    Example:
        >>> from metadl.data.base import FewShotDataset
        >>> ds = FewShotDataset(torch.randn(60, 3), torch.arange(6).repeat_interleave(10), list("abcdef"))
        >>> batch = EpisodeSampler(ds, n_way=5, k_shot=1, n_query=2, seed=0).sample_batch(4)
        >>> tuple(batch.support_x.shape), tuple(batch.query_y.shape)
        ((4, 5, 3), (4, 10))
        >>> len(EpisodeSampler(ds, n_way=5, k_shot=1, n_query=2, seed=0).sample().classes)
        5
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
    ) -> None:
        for key, value in (("n_way", n_way), ("k_shot", k_shot)):
            if value < 1:
                raise ValueError(f"{key} must be >= 1, got {value}")
        if n_query < 0:
            raise ValueError(f"n_query must be >= 0, got {n_query}")
        if n_way > dataset.num_classes:
            raise ValueError(
                f"n_way = {n_way} but {dataset.name} has only {dataset.num_classes} classes; "
                f"use n_way <= {dataset.num_classes}"
            )
        need = k_shot + n_query
        short = (dataset.class_counts < need).nonzero().flatten()
        if len(short):
            worst = int(short[dataset.class_counts[short].argmin()])
            raise ValueError(
                f"k_shot + n_query = {need} but class '{dataset.class_names[worst]}' of {dataset.name} has "
                f"{int(dataset.class_counts[worst])} examples ({len(short)} classes have fewer than {need}); "
                f"lower k_shot or n_query, or drop those classes"
            )
        self.dataset = dataset
        self.n_way, self.k_shot, self.n_query = n_way, k_shot, n_query
        self.generator = seeded_generator(seed)
        self._uniform_counts = bool((dataset.class_counts == dataset.class_counts[0]).all())

    def _indices(self, n_tasks: int) -> Tensor:
        """Dataset indices ``(T, N, K + Q)`` for T episodes."""
        ds, g = self.dataset, self.generator
        # Random N of C classes per task: argsort of uniform noise is a batched randperm.
        classes = torch.rand(n_tasks, ds.num_classes, generator=g).argsort(dim=1)[:, : self.n_way]
        counts = ds.class_counts[classes]  # (T, N)
        max_count = int(counts.max())
        noise = torch.rand(n_tasks, self.n_way, max_count, generator=g)
        if not self._uniform_counts:  # positions past a class's size sort last and are never chosen
            noise.masked_fill_(torch.arange(max_count) >= counts.unsqueeze(-1), 2.0)
        within = noise.argsort(dim=-1)[..., : self.k_shot + self.n_query]
        return ds.class_offsets[classes].unsqueeze(-1) + within

    def sample_batch(self, n_tasks: int) -> TaskBatch:
        """``n_tasks`` episodes stacked: support ``(T, N*K, *x)``, query ``(T, N*Q, *x)``."""
        return self._assemble(self._indices(n_tasks))

    def _assemble(self, idx: Tensor) -> TaskBatch:
        """The episodes of dataset indices ``idx`` ``(T, N, K + Q)``."""
        x = self.dataset.gather(idx)  # (T, N, K+Q, *x_shape)
        k, t, n = self.k_shot, idx.shape[0], self.n_way
        x_shape = self.dataset.x_shape
        labels = torch.arange(n).view(1, n, 1)
        return TaskBatch(
            support_x=x[:, :, :k].reshape(t, n * k, *x_shape),
            support_y=labels.expand(t, n, k).reshape(t, n * k),
            query_x=x[:, :, k:].reshape(t, n * self.n_query, *x_shape),
            query_y=labels.expand(t, n, self.n_query).reshape(t, n * self.n_query),
        )

    def sample(self) -> NamedTask:
        idx = self._indices(1)
        task = self._assemble(idx)[0]
        chosen = self.dataset.labels[idx[0, :, 0]].tolist()  # the source class of each episode label
        return NamedTask(
            task.support_x,
            task.support_y,
            task.query_x,
            task.query_y,
            name=self.dataset.name,
            classes=tuple(self.dataset.class_names[c] for c in chosen),
        )


class VariableEpisodeSampler(SeededSource):
    """Variable-way variable-shot episodes, following Meta-Dataset (Triantafillou et al. 2020, sec. 3.2).

    Per episode: ways ~ U[min_ways, min(max_ways, C)]; query per class
    ``q = min(max_query, floor(query_fraction * smallest chosen class))``; a support budget
    ``min(max_support, sum_c ceil(beta * min(max_support_per_class, n_c - q)))`` with beta ~ U(0, 1),
    split across classes in proportion to ``exp(alpha_c) * (n_c - q)``, alpha_c ~ U[log 0.5, log 2],
    at least one shot per class. Shapes differ between episodes (``batchable`` is False): draw single
    tasks with ``sample()``, a :class:`NamedTask` whose ``classes`` name the drawn classes. Registered
    as the task source ``"variable_episodes"``.
    """

    kind: TaskKind = "classification"
    batchable = False

    def __init__(
        self,
        dataset: FewShotDataset,
        *,
        min_ways: int = 5,
        max_ways: int = 50,
        max_query: int = 10,
        max_support: int = 500,
        max_support_per_class: int = 100,
        query_fraction: float = 0.5,
        seed: int | torch.Generator = 0,
    ) -> None:
        if not 2 <= min_ways <= max_ways:
            raise ValueError(f"need 2 <= min_ways <= max_ways, got min_ways={min_ways}, max_ways={max_ways}")
        if min_ways > dataset.num_classes:
            raise ValueError(
                f"min_ways = {min_ways} but {dataset.name} has only {dataset.num_classes} classes"
            )
        small = int(dataset.class_counts.min())
        if small < 2:
            worst = int(dataset.class_counts.argmin())
            raise ValueError(
                f"class '{dataset.class_names[worst]}' of {dataset.name} has {small} example; "
                "variable-shot episodes need at least 2 per class (one support, one query)"
            )
        self.dataset = dataset
        self.min_ways, self.max_ways = min_ways, min(max_ways, dataset.num_classes)
        self.max_query, self.max_support = max_query, max_support
        self.max_support_per_class, self.query_fraction = max_support_per_class, query_fraction
        self.generator = seeded_generator(seed)

    def _uniform(self, low: float, high: float, *shape: int) -> Tensor:
        return low + (high - low) * torch.rand(*shape, generator=self.generator, dtype=torch.float64)

    def sample(self) -> NamedTask:
        ds, g = self.dataset, self.generator
        n_way = int(torch.randint(self.min_ways, self.max_ways + 1, (1,), generator=g))
        classes = torch.randperm(ds.num_classes, generator=g)[:n_way]
        counts = ds.class_counts[classes]
        n_query = max(1, min(self.max_query, int(self.query_fraction * int(counts.min()))))
        available = counts - n_query  # >= 1 since every class has >= 2 examples
        beta = float(self._uniform(0.0, 1.0, 1))
        capped = available.clamp(max=self.max_support_per_class).double()
        budget = min(self.max_support, int(torch.ceil(beta * capped).sum()))
        budget = max(budget, n_way)
        weights = torch.exp(self._uniform(math.log(0.5), math.log(2.0), n_way)) * available.double()
        shots = torch.floor(weights / weights.sum() * (budget - n_way)).long() + 1
        shots = torch.minimum(shots, available)

        support_idx, query_idx, support_y = [], [], []
        for label, (c, k) in enumerate(zip(classes.tolist(), shots.tolist(), strict=True)):
            perm = torch.randperm(int(ds.class_counts[c]), generator=g) + int(ds.class_offsets[c])
            support_idx.append(perm[:k])
            query_idx.append(perm[k : k + n_query])
            support_y.append(torch.full((k,), label, dtype=torch.long))
        query_y = torch.arange(n_way).repeat_interleave(n_query)
        return NamedTask(
            ds.gather(torch.cat(support_idx)),
            torch.cat(support_y),
            ds.gather(torch.cat(query_idx)),
            query_y,
            name=ds.name,
            classes=tuple(ds.class_names[c] for c in classes.tolist()),
        )


class SinusoidSampler(SeededSource):
    """Sinusoid regression tasks as in MAML (Finn et al. 2017, sec. 5.1).

    Each task is ``y = A sin(x - phi)`` with A ~ U[0.1, 5], phi ~ U[0, pi], x ~ U[-5, 5];
    x and y have shape ``(T, n, 1)``. Registered as the task source ``"sinusoid"``.

    Example:
        >>> b = SinusoidSampler(k_shot=10, n_query=10, seed=0).sample_batch(25)
        >>> tuple(b.support_x.shape), b.support_y.dtype
        ((25, 10, 1), torch.float32)
    """

    kind: TaskKind = "regression"
    batchable = True

    def __init__(
        self,
        *,
        k_shot: int,
        n_query: int,
        amplitude: tuple[float, float] = (0.1, 5.0),
        phase: tuple[float, float] = (0.0, math.pi),
        x_range: tuple[float, float] = (-5.0, 5.0),
        seed: int | torch.Generator = 0,
    ) -> None:
        if k_shot < 1 or n_query < 1:
            raise ValueError(f"k_shot and n_query must be >= 1, got k_shot={k_shot}, n_query={n_query}")
        for key, (low, high) in (("amplitude", amplitude), ("phase", phase), ("x_range", x_range)):
            if not low <= high:
                raise ValueError(f"{key} must be (low, high) with low <= high, got {(low, high)}")
        self.k_shot, self.n_query = k_shot, n_query
        self.amplitude, self.phase, self.x_range = amplitude, phase, x_range
        self.generator = seeded_generator(seed)

    def _uniform(self, bounds: tuple[float, float], *shape: int) -> Tensor:
        low, high = bounds
        return low + (high - low) * torch.rand(*shape, generator=self.generator)

    def sample_batch(self, n_tasks: int) -> TaskBatch:
        amp = self._uniform(self.amplitude, n_tasks, 1, 1)
        phase = self._uniform(self.phase, n_tasks, 1, 1)
        x = self._uniform(self.x_range, n_tasks, self.k_shot + self.n_query, 1)
        y = amp * torch.sin(x - phase)
        k = self.k_shot
        return TaskBatch(x[:, :k], y[:, :k], x[:, k:], y[:, k:])

    def sample(self) -> Task:
        return self.sample_batch(1)[0]
