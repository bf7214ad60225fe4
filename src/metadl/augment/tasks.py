"""Task-level augmentation: new classes from rotated / flipped classes, and MLTI's mixing of classes across tasks.

Both act on a whole :class:`~metadl.tasks.TaskBatch` of image tasks and keep every class of every task
consistent: whatever is done to a class is done to all of its support and query examples alike, so a
transformed class is a new class, and no example ever takes another class's label.

- :class:`ClassRotation` (task augmentation; Omniglot's rotations as classes, Santoro et al. 2016, and
  "task augmentation by rotation", Liu et al. 2020): each class of each task is, with probability ``p``,
  rotated by a multiple of 90 degrees and/or mirrored.
- :class:`TaskMix` (MLTI, Yao et al. 2021, "Meta-learning with fewer tasks through task interpolation"):
  each task is, with probability ``p``, replaced by its interpolation with a partner task: class ``c``
  becomes ``lam_c * x_c + (1 - lam_c) * x'_{pi(c)}`` with ``lam_c ~ Beta(alpha, alpha)`` shared by the
  class's support and query examples, ``pi`` a random matching of the partner's classes. MLTI mixes at a
  random layer; this is its input-layer variant, which any learner can use unchanged.

Randomness comes from the generator passed in. Beta draws are made with NumPy's generator seeded from
that torch generator, so the torch generator's state alone determines (and resumes) them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from metadl.augment.checks import AugmentError, check_number
from metadl.tasks.task import TaskBatch

ROTATIONS = (0, 90, 180, 270)


def class_blocks(y: Tensor) -> Tensor:
    """``(T, N, K)`` positions of each class's examples in ``y (T, S)`` (labels 0..N-1, K per class).

    Example:
        >>> class_blocks(torch.tensor([[1, 0, 1, 0]])).tolist()
        [[[1, 3], [0, 2]]]
    """
    t, s = y.shape
    n = int(y.max()) + 1
    counts = torch.stack([torch.bincount(row, minlength=n) for row in y])
    if bool((counts != counts[0, 0]).any()):
        raise AugmentError(
            "task augmentation needs the same number of examples per class in every task "
            f"(counts {counts[0].tolist()}); use it with N-way K-shot episodes"
        )
    return torch.argsort(y, dim=1, stable=True).view(t, n, s // n)


def _seeded_numpy(generator: torch.Generator) -> np.random.Generator:
    return np.random.default_rng(int(torch.randint(2**62, (1,), generator=generator)))


class ClassRotation:
    """Each class of each task, with probability ``p``, rotated by one of ``rotations`` and mirrored with ``flip``.

    Args:
        rotations: the angles (multiples of 90 degrees) to choose from, uniformly.
        flip: probability that a chosen class is also mirrored left-right.
        p: probability that a class is transformed at all.

    Example:
        >>> b = TaskBatch(torch.rand(1, 2, 1, 3, 3), torch.tensor([[0, 1]]), torch.rand(1, 2, 1, 3, 3), torch.tensor([[0, 1]]))
        >>> out = ClassRotation(rotations=[90], p=1.0)(b, torch.Generator().manual_seed(0))
        >>> torch.equal(out.support_x[0, 0], torch.rot90(b.support_x[0, 0], 1, (-2, -1)))
        True
    """

    def __init__(self, *, rotations: Sequence[int] = ROTATIONS, flip: float = 0.0, p: float = 0.5) -> None:
        if isinstance(rotations, str) or not isinstance(rotations, Sequence) or not rotations:
            raise AugmentError(
                f"rotations = {rotations!r} is not allowed: give a list such as [0, 90, 180, 270]"
            )
        bad = [r for r in rotations if isinstance(r, bool) or r not in ROTATIONS]
        if bad:
            raise AugmentError(
                f"rotations = {list(rotations)} is not allowed: each must be one of {list(ROTATIONS)}"
            )
        self.quarters = torch.tensor([r // 90 for r in rotations])
        self.flip = check_number("flip", flip, 0, 1)
        self.p = check_number("p", p, 0, 1)

    def __call__(self, batch: TaskBatch, generator: torch.Generator) -> TaskBatch:
        sx, qx = batch.support_x, batch.query_x
        if sx.dim() != 5 or sx.shape[-1] != sx.shape[-2]:
            raise AugmentError(f"class rotation needs square images (T, S, C, H, H); got {tuple(sx.shape)}")
        t, n = len(batch), batch.n_way
        chosen = torch.rand(t, n, generator=generator) < self.p
        quarter = self.quarters[torch.randint(len(self.quarters), (t, n), generator=generator)]
        mirror = torch.rand(t, n, generator=generator) < self.flip
        quarter = torch.where(chosen, quarter, 0)
        mirror &= chosen
        return TaskBatch(
            self._apply(sx, batch.support_y, quarter, mirror),
            batch.support_y,
            self._apply(qx, batch.query_y, quarter, mirror),
            batch.query_y,
        )

    @staticmethod
    def _apply(x: Tensor, y: Tensor, quarter: Tensor, mirror: Tensor) -> Tensor:
        """Per example, its class's rotation and mirror: four rot90 variants, picked by index."""
        q = torch.gather(quarter, 1, y)  # (T, S)
        m = torch.gather(mirror, 1, y)
        x = torch.where(m.view(*m.shape, 1, 1, 1), x.flip(-1), x)
        out = x.clone()
        for k in range(1, 4):
            mask = q == k
            if bool(mask.any()):
                out[mask] = torch.rot90(x[mask], k, (-2, -1))
        return out


class TaskMix:
    """MLTI: each task, with probability ``p``, interpolated class by class with a partner task.

    Args:
        alpha: the Beta(alpha, alpha) concentration of the mixing weights (small: near one of the two).
        p: probability that a task is replaced by its mixture.

    Example:
        >>> y = torch.tensor([[0, 1]])
        >>> a = TaskBatch(torch.zeros(1, 2, 1, 2, 2), y, torch.zeros(1, 2, 1, 2, 2), y)
        >>> b = TaskBatch(torch.ones(1, 2, 1, 2, 2), y, torch.ones(1, 2, 1, 2, 2), y)
        >>> out = TaskMix(alpha=0.5, p=1.0)(a, b, torch.Generator().manual_seed(0))
        >>> bool(((out.support_x > 0) & (out.support_x < 1)).all())       # strictly between the two tasks
        True
    """

    def __init__(self, *, alpha: float = 0.5, p: float = 0.5) -> None:
        self.alpha = check_number("alpha", alpha, 0.01, 100)
        self.p = check_number("p", p, 0, 1)

    def __call__(self, batch: TaskBatch, partner: TaskBatch, generator: torch.Generator) -> TaskBatch:
        if batch.support_x.shape != partner.support_x.shape or batch.query_x.shape != partner.query_x.shape:
            raise AugmentError("task mixing needs a partner batch of the same shape")
        t, n = len(batch), batch.n_way
        chosen = torch.rand(t, generator=generator) < self.p
        matching = torch.rand(t, n, generator=generator).argsort(dim=1)  # partner class of each class
        lam = torch.from_numpy(_seeded_numpy(generator).beta(self.alpha, self.alpha, (t, n))).float()
        lam = torch.where(chosen.unsqueeze(1), lam, 1.0)
        return TaskBatch(
            self._mix(batch.support_x, batch.support_y, partner.support_x, partner.support_y, matching, lam),
            batch.support_y,
            self._mix(batch.query_x, batch.query_y, partner.query_x, partner.query_y, matching, lam),
            batch.query_y,
        )

    @staticmethod
    def _mix(x: Tensor, y: Tensor, px: Tensor, py: Tensor, matching: Tensor, lam: Tensor) -> Tensor:
        """Example ``i`` of class ``c`` mixed with example ``i`` of the partner's class ``matching[c]``."""
        own, other = class_blocks(y), class_blocks(py)  # (T, N, K)
        t, n, k = own.shape
        rows = torch.arange(t).view(t, 1, 1)
        source = other[rows, matching.unsqueeze(-1), torch.arange(k).view(1, 1, k)]  # (T, N, K)
        out = x.clone()
        weight = lam.view(t, n, 1, *([1] * (x.dim() - 2)))
        mixed = weight * x[rows, own] + (1 - weight) * px[rows, source]
        out[rows, own] = mixed
        return out
