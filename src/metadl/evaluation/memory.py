"""How much memory an evaluation episode takes, measured before it is run.

``metadl eval RUN --ways 1000`` on Omniglot is a valid request (the test split has 1,692 classes), but
one 1000-way 15-query episode through a Conv-4 holds about 10 GB of activations, and the default batch
of 16 episodes would be killed by the kernel with no word. :func:`plan_episode_batch` measures what one
example costs (the outputs of every layer of the learner's backbone, on one example, through forward
hooks), scales it to the episode's examples, and returns how many episodes fit in the memory budget
together; when not even one does, :class:`EvalMemoryError` says how much it would need and how to ask
for less. The sum of all layer outputs bounds what a forward pass keeps alive, so the estimate errs
on the safe side.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor, nn

from metadl.models.base import Backbone

BUDGET_FRACTION = 0.8  # of the memory available when the evaluation starts


class EvalMemoryError(ValueError):
    """An evaluation episode would not fit in memory; the message gives the size it would need."""


def available_memory() -> int:
    """Bytes the system can give this process now (``MemAvailable``), or its physical memory."""
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def bytes_per_example(learner: nn.Module, example: Tensor) -> int:
    """Bytes of every layer (leaf module) output of the learner's backbone for one example ``(1, *x_shape)``, plus the
    example itself. A learner without a :class:`Backbone` counts its input only.

    Example:
        >>> from metadl.algorithms import create_learner
        >>> from metadl.models import create_backbone
        >>> learner = create_learner("protonet", backbone=create_backbone("mlp", in_features=4, hidden=[8]), n_way=2)
        >>> bytes_per_example(learner, torch.zeros(1, 4))  # float32: input 4 + Linear 8 + ReLU 8
        80
    """
    backbone = next((m for m in learner.modules() if isinstance(m, Backbone)), None)
    total = example.numel() * example.element_size()
    if backbone is None:
        return total
    sizes: list[int] = []

    def count(_module: nn.Module, _inputs: object, output: object) -> None:
        if isinstance(output, Tensor):
            sizes.append(output.numel() * output.element_size())

    leaves = [m for m in backbone.modules() if next(m.children(), None) is None]  # containers repeat them
    handles = [m.register_forward_hook(count) for m in leaves]
    try:
        with torch.no_grad():
            backbone(example)
    finally:
        for handle in handles:
            handle.remove()
    return total + sum(sizes)


def plan_episode_batch(per_example: int, examples: int, wanted: int, budget: int, shape: str) -> int:
    """Episodes to run together (at most ``wanted``) so that their ``examples`` each fit in ``budget``.

    Example:
        >>> plan_episode_batch(1000, 100, 16, 10**6, "5-way")
        10
        >>> plan_episode_batch(10**6, 16000, 16, 8 * 2**30, "1000-way 1-shot 15-query")
        Traceback (most recent call last):
        ...
        metadl.evaluation.memory.EvalMemoryError: one 1000-way 1-shot 15-query episode needs about 14.9 GiB, more than the 8.0 GiB available; evaluate fewer ways or queries (e.g. --ways 536)
    """
    episode = per_example * examples
    fits = budget // max(1, episode)
    if fits < 1:
        ways = shape.split("-way")[0]
        hint = f" (e.g. --ways {max(1, int(ways) * budget // episode)})" if ways.isdigit() else ""
        raise EvalMemoryError(
            f"one {shape} episode needs about {_size(episode)}, more than the {_size(budget)} available; "
            f"evaluate fewer ways or queries{hint}"
        )
    return int(min(wanted, fits))


def _size(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"
