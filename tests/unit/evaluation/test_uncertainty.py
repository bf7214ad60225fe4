"""``metadl eval``'s scores for learners that predict a variance, against a brute-force recomputation."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from metadl.algorithms import create_learner
from metadl.evaluation.uncertainty import evaluate_uncertainty
from metadl.models import create_backbone
from metadl.tasks import GroupedTable, GroupedTableSource, create_task_source

pytestmark = pytest.mark.usefixtures("one_thread")


def cnp():
    torch.manual_seed(0)
    return create_learner(
        "cnp", backbone=create_backbone("mlp", in_features=1, hidden=[8]), out_features=1, hidden=8
    )


def source(seed: int = 0) -> GroupedTableSource:
    keys = [f"g{i % 4}" for i in range(80)]
    x = torch.linspace(-2, 2, 80).unsqueeze(-1)
    y = torch.sin(3 * x).squeeze(-1) + 0.1 * torch.arange(80).remainder(4)
    return GroupedTableSource(GroupedTable.from_columns(keys, x=x, y=y), k_shot=4, n_query=6, seed=seed)


def test_scores_are_per_group_means_of_hand_computed_gaussian_scores_with_t_intervals():
    learner = cnp().eval()
    report = evaluate_uncertainty(learner, source(), episodes=10, baselines=False)
    by_group: dict[str, list[tuple[float, float, float]]] = {}
    again = source()
    for task in (again.sample() for _ in range(10)):  # the same ten tasks
        with torch.no_grad():
            predictor = learner.adapt(task.support_x, task.support_y)
            mean, var = (
                predictor.predict(task.query_x).double(),
                predictor.predict_variance(task.query_x).double(),
            )
        y = task.query_y.double()
        nll = (0.5 * torch.log(2 * math.pi * var) + (y - mean) ** 2 / (2 * var)).mean()
        inside = ((y - mean).abs() <= 1.959963984540054 * var.sqrt()).double().mean()
        by_group.setdefault(task.name, []).append(
            (float(((mean - y) ** 2).mean()), float(nll), float(inside))
        )
    means = torch.tensor([[sum(c) / len(c) for c in zip(*rows, strict=True)] for rows in by_group.values()])
    assert report.groups == len(by_group) == 4
    for j, got in enumerate((report.model.mse, report.model.nll, report.model.coverage)):
        column = means[:, j].double()
        half = stats.t.ppf(0.975, len(column) - 1) * column.std().item() / math.sqrt(len(column))
        assert got.mean == pytest.approx(column.mean().item(), rel=1e-5)
        assert got.half == pytest.approx(half, rel=1e-4)
    assert report.baselines == {} and report.to_dict()["baselines"] == {}


def test_baselines_are_scored_on_the_same_tasks_with_a_paired_margin():
    report = evaluate_uncertainty(
        cnp(), create_task_source("sinusoid", k_shot=8, n_query=10, seed=0), episodes=6
    )
    assert set(report.baselines) == {"ridge", "gp"}
    for name, scores in report.baselines.items():
        assert scores.per_group.keys() == report.model.per_group.keys()
        margin = report.margin(name)
        assert margin.mean == pytest.approx(scores.mse.mean - report.model.mse.mean, rel=1e-6, abs=1e-9)
    # An untrained CNP predicts about the mean of the support set; the GP fits 8 points of a sinusoid.
    assert report.margin("gp").mean < 0


def test_learners_without_a_variance_and_classification_sources_are_refused():
    maml = create_learner("maml", backbone=create_backbone("mlp", in_features=1, hidden=[8]), out_features=1)
    with pytest.raises(ValueError, match="predicts no variance"):
        evaluate_uncertainty(maml, source(), episodes=2)
    with pytest.raises(ValueError, match="episodes must be >= 1"):
        evaluate_uncertainty(cnp(), source(), episodes=0)
