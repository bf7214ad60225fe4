"""Harder synthetic regression families than MAML's sinusoid: step functions and 2-D sinusoids.

* ``step_functions`` (:class:`StepFunctionSampler`): ``y`` is piecewise constant in ``x ~ U[-5, 5]``,
  with ``n_steps ~ U{1..max_steps}`` jumps at uniform positions and a level ``~ U[-2, 2]`` on every piece,
  plus Gaussian noise of ``noise`` std. Discontinuities defeat smooth interpolators (a per-task GP, the
  mean-aggregating CNP), and where a jump lies between two support points the answer is ambiguous: a
  learner that predicts a variance should be unsure there.
* ``sinusoid_2d`` (:class:`Sinusoid2DSampler`): plane waves ``y = A sin(w . x - phi)`` on ``x ~ U[-5, 5]^2``,
  ``A ~ U[0.1, 5]``, ``phi ~ U[0, pi]``, ``w`` of length ``U[0.5, 1.5]`` in a uniform direction: the
  sinusoid with a direction to find from the same few points.

Both draw whole batches with one generator (the same seed gives the same tasks) and return float
targets ``(T, n, 1)``.
"""

from __future__ import annotations

import math

import torch

from metadl.tasks.source import SeededSource, TaskKind, TaskSourceError, seeded_generator
from metadl.tasks.task import Task, TaskBatch


def _check_sizes(k_shot: int, n_query: int) -> None:
    if k_shot < 1 or n_query < 1:
        raise TaskSourceError(f"k_shot and n_query must be >= 1, got k_shot={k_shot}, n_query={n_query}")


class StepFunctionSampler(SeededSource):
    """Piecewise-constant regression tasks (see the module docstring); task source ``"step_functions"``.

    Args:
        k_shot, n_query: support and query points per task.
        max_steps: most jumps per function (at least 1 each).
        noise: standard deviation of the Gaussian noise on ``y``.
        seed: an int or a ``torch.Generator``.

    Example:
        >>> b = StepFunctionSampler(k_shot=5, n_query=3, noise=0.0, seed=0).sample_batch(2)
        >>> tuple(b.support_x.shape), tuple(b.query_y.shape), bool(b.support_y.abs().max() <= 2)
        ((2, 5, 1), (2, 3, 1), True)
    """

    kind: TaskKind = "regression"
    batchable = True
    x_range = (-5.0, 5.0)

    def __init__(
        self,
        *,
        k_shot: int,
        n_query: int,
        max_steps: int = 3,
        noise: float = 0.05,
        seed: int | torch.Generator = 0,
    ) -> None:
        _check_sizes(k_shot, n_query)
        if max_steps < 1:
            raise TaskSourceError(f"max_steps must be >= 1, got {max_steps}")
        if noise < 0:
            raise TaskSourceError(f"noise must be >= 0, got {noise}")
        self.k_shot, self.n_query, self.max_steps, self.noise = k_shot, n_query, max_steps, noise
        self.generator = seeded_generator(seed)

    def sample_batch(self, n_tasks: int) -> TaskBatch:
        if n_tasks < 1:
            raise TaskSourceError(f"n_tasks must be >= 1, got {n_tasks}")
        g, (low, high), n = self.generator, self.x_range, self.k_shot + self.n_query
        steps = torch.randint(1, self.max_steps + 1, (n_tasks, 1), generator=g)
        jumps = low + (high - low) * torch.rand(n_tasks, self.max_steps, generator=g)
        jumps = jumps.masked_fill(torch.arange(self.max_steps) >= steps, math.inf)  # unused jumps never pass
        levels = -2 + 4 * torch.rand(n_tasks, self.max_steps + 1, generator=g)
        x = low + (high - low) * torch.rand(n_tasks, n, generator=g)
        piece = (x.unsqueeze(-1) > jumps.unsqueeze(1)).sum(-1)  # (T, n): jumps to the left of x
        y = levels.gather(1, piece) + self.noise * torch.randn(n_tasks, n, generator=g)
        x, y = x.unsqueeze(-1), y.unsqueeze(-1)
        k = self.k_shot
        return TaskBatch(x[:, :k], y[:, :k], x[:, k:], y[:, k:])

    def sample(self) -> Task:
        return self.sample_batch(1)[0]


class Sinusoid2DSampler(SeededSource):
    """Plane-wave regression tasks on the plane (see the module docstring); task source ``"sinusoid_2d"``.

    Example:
        >>> b = Sinusoid2DSampler(k_shot=10, n_query=5, seed=0).sample_batch(3)
        >>> tuple(b.support_x.shape), tuple(b.support_y.shape)
        ((3, 10, 2), (3, 10, 1))
    """

    kind: TaskKind = "regression"
    batchable = True

    def __init__(self, *, k_shot: int, n_query: int, seed: int | torch.Generator = 0) -> None:
        _check_sizes(k_shot, n_query)
        self.k_shot, self.n_query = k_shot, n_query
        self.generator = seeded_generator(seed)

    def sample_batch(self, n_tasks: int) -> TaskBatch:
        if n_tasks < 1:
            raise TaskSourceError(f"n_tasks must be >= 1, got {n_tasks}")
        g, n = self.generator, self.k_shot + self.n_query
        amp = 0.1 + 4.9 * torch.rand(n_tasks, 1, generator=g)
        phase = math.pi * torch.rand(n_tasks, 1, generator=g)
        angle = 2 * math.pi * torch.rand(n_tasks, generator=g)
        freq = 0.5 + torch.rand(n_tasks, generator=g)
        w = freq.unsqueeze(-1) * torch.stack([angle.cos(), angle.sin()], -1)  # (T, 2)
        x = -5 + 10 * torch.rand(n_tasks, n, 2, generator=g)
        y = (amp * torch.sin((x * w.unsqueeze(1)).sum(-1) - phase)).unsqueeze(-1)
        k = self.k_shot
        return TaskBatch(x[:, :k], y[:, :k], x[:, k:], y[:, k:])

    def sample(self) -> Task:
        return self.sample_batch(1)[0]
