"""The per-group clustering protocol: grouping, k modes, scores per group and their mean ± CI."""

from __future__ import annotations

import pytest
import torch

from metadl.algorithms import create_learner
from metadl.algorithms.clustering_steps import ClusteringError
from metadl.data.base import FewShotDataset
from metadl.evaluation.cluster_protocol import class_groups, evaluate_clustering, parse_k
from metadl.evaluation.confidence import mean_ci95
from metadl.models import create_backbone


def grouped_blobs(sizes: dict[str, int], per: int = 6, dim: int = 32) -> FewShotDataset:
    """Groups of well-separated classes named ``group/cI``; directions nearly orthogonal in 32 dims."""
    g = torch.Generator().manual_seed(0)
    names = [f"{group}/c{i}" for group, n in sizes.items() for i in range(n)]
    centres = 10 * torch.randn(len(names), dim, generator=g)
    x = centres.repeat_interleave(per, 0) + 0.1 * torch.randn(len(names) * per, dim, generator=g)
    return FewShotDataset(x, torch.arange(len(names)).repeat_interleave(per), names, "blobs")


class Recorder:
    """A clusterer that puts every example in cluster ``i % k`` and records what it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int | None]] = []

    def cluster(self, x: torch.Tensor, k: int | None = None, *, seed: int = 0) -> torch.Tensor:
        self.calls.append((len(x), k))
        return torch.arange(len(x)) % (k or 1)


def test_each_group_is_clustered_alone_with_its_own_true_k() -> None:
    data = grouped_blobs({"Greek": 3, "Latin": 5})
    rec = Recorder()
    evaluate_clustering(rec, data, k="true")
    assert rec.calls == [(18, 3), (30, 5)]
    evaluate_clustering(rec, data, k=4)
    assert rec.calls[2:] == [(18, 4), (30, 4)]


def test_perfect_partitions_score_one_and_the_ci_is_over_groups() -> None:
    data = grouped_blobs({"A": 3, "B": 4, "C": 2})
    net = create_learner("softkmeans", backbone=create_backbone("identity", in_features=32), n_way=3)
    result = evaluate_clustering(net, data, k="true")
    assert (result.mean, result.ci95, round(result.nmi, 9), result.ari) == (1.0, 0.0, 1.0, 1.0)
    # k = 6 everywhere: group C (2 classes) has 4 unmatched clusters; its accuracy is what is left matched.
    result = evaluate_clustering(net, data, k=6)
    per_group = [g.scores.accuracy for g in result.groups]
    assert result.mean == pytest.approx(mean_ci95(per_group)[0])
    assert result.ci95 == pytest.approx(mean_ci95(per_group)[1])
    assert all(g.scores.k == 6 for g in result.groups) and per_group[2] < 1.0


def test_estimated_k_is_reported_with_how_often_it_is_right() -> None:
    data = grouped_blobs({"A": 3, "B": 5})
    net = create_learner("pairwise", backbone=create_backbone("identity", in_features=32), n_way=3)
    result = evaluate_clustering(net, data, k="estimate")
    assert result.k_exact == 1.0 and result.k_relative_error == 0.0
    report = result.to_dict()
    assert (
        report["metric"] == "clustering_accuracy" and report["k"] == "estimate" and report["k_exact"] == 1.0
    )
    assert "k exact in 100% of groups" in str(result)


def test_k_larger_than_a_group_is_a_one_line_error() -> None:
    with pytest.raises(ClusteringError, match="k = 100 clusters but group 'A'"):
        evaluate_clustering(Recorder(), grouped_blobs({"A": 2}), k=100)


def test_parse_k_and_groups() -> None:
    assert [parse_k(v) for v in (None, "true", "True", "estimate", "100", 7)] == ["true"] * 3 + [
        "estimate",
        100,
        7,
    ]
    for bad in ("0", "-2", "many"):
        with pytest.raises(ClusteringError, match="positive integer"):
            parse_k(bad)
    assert class_groups(["a/x", "b/y", "a/z"]) == {"a": [0, 2], "b": [1]}
