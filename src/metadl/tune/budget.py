"""What every generated task distribution shares: the trial budget, the protocol, and the trial config.

A trial trains one point of the search space on one distribution for a tiny budget (:class:`TrialBudget`),
so that a search of many trials takes minutes. A distribution (:class:`Distribution`) is anything with a
name, an episode shape, a modality (which decides the backbones that apply, see
:func:`metadl.tune.space.grid`), its train/val/test splits, and a config for a trial on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from metadl.data.base import FewShotDataset


@dataclass(frozen=True)
class TrialBudget:
    """How long one trial trains and how it is judged: tiny, so that a search of many trials takes minutes."""

    iterations: int = 30
    meta_batch: int = 2
    queries: int = 5
    val_every: int = 10
    val_episodes: int = 10
    test_episodes: int = 40


class Distribution(Protocol):
    """A few-shot task distribution the tuning database learns from."""

    @property
    def name(self) -> str: ...

    @property
    def ways(self) -> int: ...

    @property
    def shots(self) -> int: ...

    @property
    def modality(self) -> str:
        """``"image"`` or ``"vector"``."""
        ...

    def split(self, split: str) -> FewShotDataset:
        """One split: ``"train"``, ``"val"`` or ``"test"``."""
        ...

    def splits(self) -> dict[str, FewShotDataset]:
        """The three splits, by name."""
        ...

    def config(self, budget: TrialBudget | None = None, *, seed: int = 0) -> dict[str, Any]:
        """A config mapping for a trial on this distribution."""
        ...


def trial_config(
    dataset: dict[str, Any],
    *,
    ways: int,
    shots: int,
    backbone: str,
    budget: TrialBudget | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """The config mapping of a trial: ``dataset`` section, episode shape, and the budget's training and test."""
    budget = budget or TrialBudget()
    return {
        "seed": seed,
        "device": "cpu",
        "dataset": dataset,
        "sampler": {"ways": ways, "shots": shots, "queries": budget.queries, "meta_batch": budget.meta_batch},
        "backbone": {"name": backbone},
        "learner": {"name": "protonet"},
        "optimizer": {"name": "adam", "lr": 0.001},
        "train": {
            "iterations": budget.iterations,
            "val_every": budget.val_every,
            "checkpoint_every": budget.iterations,
            "val_episodes": budget.val_episodes,
        },
        "eval": {"episodes": budget.test_episodes, "queries": budget.queries, "split": "test", "seed": 0},
    }
