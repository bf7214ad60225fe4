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
from metadl.tasks.task import TaskBatch


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
) -> EvalResult:
    """Score ``learner`` on ``episodes`` tasks drawn from ``sampler`` (anything with ``sample_batch(T)``).

    The learner runs in eval mode; learners that adapt by gradient steps enable gradients for their
    own inner loop. Returns the per-episode accuracy (classification) or MSE (regression).
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    was_training = learner.training
    learner.eval()
    values: list[np.ndarray] = []
    metric = "accuracy"
    with tqdm(total=episodes, desc="eval", disable=not progress, leave=False) as bar:
        done = 0
        while done < episodes:
            n = min(batch_size, episodes - done)
            # Drawn one episode at a time, so episode i is the same whatever the batch size.
            batch = TaskBatch.stack([sampler.sample_batch(1)[0] for _ in range(n)]).to(device)
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
