"""``metadl eval`` on a learner that predicts a variance: MSE, NLL and 95%-interval coverage, with CIs.

A learner with ``capabilities.uncertainty`` (``cnp``, ``anp``) evaluated on regression tasks is scored
by :func:`metadl.evaluation.regression.score_regressor` on ``episodes`` tasks drawn one by one from the
test source (``sample()``, so a task keeps its name): every score is averaged per *group* (a named
task's name, e.g. the country of a fertility episode; an unnamed task is its own group) and its 95%
interval is over groups. The per-task baselines of :mod:`metadl.evaluation.baselines` (Bayesian ridge,
GP), fitted on each support set alone, are scored on the same tasks, with the paired margin of each
over the learner (baseline MSE minus learner MSE, positive when the learner is better).

Example:
    >>> from metadl.algorithms import create_learner
    >>> from metadl.models import create_backbone
    >>> from metadl.tasks import create_task_source
    >>> _ = torch.manual_seed(0)
    >>> cnp = create_learner("cnp", backbone=create_backbone("mlp", in_features=1, hidden=[8]), out_features=1, hidden=8)
    >>> report = evaluate_uncertainty(cnp, create_task_source("sinusoid", k_shot=5, n_query=10, seed=0), episodes=4)
    >>> sorted(report.to_dict()), report.groups, sorted(report.to_dict()["baselines"]["gp"])
    (['baselines', 'coverage95', 'groups', 'mse', 'nll'], 4, ['coverage95', 'margin_mse', 'mse', 'nll'])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from metadl.algorithms.base import Learner
from metadl.evaluation.baselines import BASELINES
from metadl.evaluation.regression import (
    Interval,
    RegressionScores,
    Regressor,
    learner_regressor,
    paired_difference,
    score_regressor,
)
from metadl.tasks import TaskSource
from metadl.tasks.task import Task


def _interval(i: Interval) -> dict[str, float]:
    return {"mean": i.mean, "ci95": i.half}


def scores_dict(scores: RegressionScores) -> dict[str, dict[str, float]]:
    """``{"mse": {mean, ci95}, "nll": {...}, "coverage95": {...}}`` (the keys of ``metadl eval --json``)."""
    return {
        "mse": _interval(scores.mse),
        "nll": _interval(scores.nll),
        "coverage95": _interval(scores.coverage),
    }


@dataclass(frozen=True)
class UncertaintyReport:
    """The learner's scores and each baseline's on the same tasks (see the module docstring)."""

    model: RegressionScores
    baselines: dict[str, RegressionScores]

    @property
    def groups(self) -> int:
        """How many groups the intervals are over."""
        return len(self.model.per_group)

    def margin(self, baseline: str) -> Interval:
        """Paired MSE margin over groups: the baseline's MSE minus the learner's (positive: learner better)."""
        return paired_difference(self.model, self.baselines[baseline])

    def to_dict(self) -> dict[str, Any]:
        return {
            **scores_dict(self.model),
            "groups": self.groups,
            "baselines": {
                name: {**scores_dict(s), "margin_mse": _interval(self.margin(name))}
                for name, s in self.baselines.items()
            },
        }

    def summary(self) -> str:
        m = self.model
        lines = [
            f"MSE {m.mse}, NLL {m.nll}, 95% coverage {100 * m.coverage.mean:.1f}% ± "
            f"{100 * m.coverage.half:.1f}% (95% CIs over {self.groups} groups, {m.episodes} episodes)"
        ]
        for name, s in self.baselines.items():
            lines.append(
                f"  per-task {name}: MSE {s.mse}, NLL {s.nll}, coverage {100 * s.coverage.mean:.1f}%; "
                f"MSE margin of the learner {self.margin(name)}"
            )
        return "\n".join(lines)


def _on_device(regressor: Regressor, device: torch.device) -> Regressor:
    def fit_predict(support_x: Tensor, support_y: Tensor, query_x: Tensor) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            mean, variance = regressor(support_x.to(device), support_y.to(device), query_x.to(device))
        return mean.cpu(), variance.cpu()

    return fit_predict


def evaluate_uncertainty(
    learner: Learner,
    source: TaskSource,
    *,
    episodes: int,
    baselines: bool = True,
    device: str | torch.device = "cpu",
) -> UncertaintyReport:
    """Score a learner that predicts a variance on ``episodes`` regression tasks from ``source``."""
    if not learner.capabilities.uncertainty:
        raise ValueError(
            f"{type(learner).__name__} predicts no variance: NLL and coverage need cnp, anp or another "
            "learner with capabilities.uncertainty"
        )
    if source.kind != "regression":
        raise ValueError("NLL and coverage are scores of regression tasks; this source yields class labels")
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    tasks: list[Task] = [source.sample() for _ in range(episodes)]
    device = torch.device(device)
    learner.to(device)
    model = score_regressor(_on_device(learner_regressor(learner), device), tasks)
    fitted = {name: score_regressor(fit, tasks) for name, fit in BASELINES.items()} if baselines else {}
    return UncertaintyReport(model, fitted)
