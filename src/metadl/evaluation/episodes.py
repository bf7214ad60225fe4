"""Episodic evaluation on a fixed, seeded set of test episodes.

The episodes depend only on the dataset, the episode shape and the seed, so every learner evaluated
with the same arguments sees exactly the same tasks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from metadl.evaluation.confidence import format_ci, mean_ci95
from metadl.evaluation.memory import BUDGET_FRACTION, available_memory, bytes_per_example, plan_episode_batch
from metadl.tasks.task import Task, TaskBatch


@dataclass
class EvalResult:
    """Mean metric over episodes with its 95% CI; ``metric`` is ``"accuracy"`` or ``"mse"``."""

    metric: str
    mean: float
    ci95: float
    episodes: int
    per_episode: list[float]

    def __str__(self) -> str:
        return f"{self.metric} {format_ci(self.mean, self.ci95, percent=self.metric == 'accuracy')} over {self.episodes} episodes"

    def to_dict(self, *, with_episodes: bool = False) -> dict:
        d = asdict(self)
        if not with_episodes:
            d.pop("per_episode")
        return d


def evaluate(
    learner: nn.Module,
    sampler,
    *,
    episodes: int = 1000,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    progress: bool = False,
    memory_budget: int | None = None,
) -> EvalResult:
    """Score ``learner`` on ``episodes`` tasks drawn from ``sampler`` (anything with ``sample_batch(T)``).

    The learner runs in eval mode; learners that adapt by gradient steps enable gradients for their
    own inner loop. Returns the per-episode accuracy (classification) or MSE (regression).

    At most ``batch_size`` episodes run together, fewer when their activations would not fit in
    ``memory_budget`` bytes (default: 80% of the memory available now); an episode that does not fit
    alone raises :class:`~metadl.evaluation.memory.EvalMemoryError` before it is run (see
    :mod:`metadl.evaluation.memory`).
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    was_training = learner.training
    learner.eval()
    values: list[np.ndarray] = []
    metric = "accuracy"
    first = sampler.sample_batch(1)[0]
    batch_size = _fitting_batch(learner, first, batch_size, memory_budget, device)
    pending: list[Task] = [first]
    with tqdm(total=episodes, desc="eval", disable=not progress, leave=False) as bar:
        done = 0
        while done < episodes:
            n = min(batch_size, episodes - done)
            # Drawn one episode at a time, so episode i is the same whatever the batch size.
            tasks = pending + [sampler.sample_batch(1)[0] for _ in range(n - len(pending))]
            pending = []
            batch = TaskBatch.stack(tasks).to(device)
            with torch.no_grad():
                out = learner(batch)
            metric = "accuracy" if out.is_classification else "mse"
            values.append(out.per_task_metric.cpu().double().numpy())
            done += n
            bar.update(n)
    learner.train(was_training)
    per_episode = np.concatenate(values)
    mean, half = mean_ci95(per_episode)
    return EvalResult(metric, mean, half, len(per_episode), per_episode.tolist())


def _fitting_batch(
    learner: nn.Module, episode: Task, wanted: int, budget: int | None, device: str | torch.device
) -> int:
    """Episodes per batch such that their activations fit in ``budget`` (see :mod:`.memory`)."""
    if budget is None:
        budget = int(BUDGET_FRACTION * available_memory()) if torch.device(device).type == "cpu" else None
    if budget is None:  # accelerators report their own out-of-memory errors, without killing the host
        return wanted
    x = episode.support_x
    examples = len(episode.support_x) + len(episode.query_x)
    ways = len(torch.unique(episode.support_y)) if not episode.support_y.is_floating_point() else None
    shots = len(episode.support_x) // ways if ways else len(episode.support_x)
    shape = (
        f"{ways}-way {shots}-shot {len(episode.query_x) // (ways or 1)}-query" if ways else f"{shots}-shot"
    )
    per_example = bytes_per_example(learner, x[:1].to(next(learner.parameters(), x).device))
    return plan_episode_batch(per_example, examples, wanted, budget, shape)
