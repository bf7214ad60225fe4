"""The cross-task clustering protocol: partition each group of new classes separately, score, average.

The anchor (Hsu et al., the GT-RIPL/L2C Omniglot protocol): a model meta-trained on the background
alphabets clusters each of the 20 evaluation alphabets on its own (all drawings of all its characters,
unlabelled), once with the true number of characters and once with k = 100 clusters, unmatched clusters
counting as errors. Accuracy, NMI and ARI are averaged over alphabets with a 95% confidence interval.

Groups are read from the class names: the part before the first ``/`` (Omniglot's
``Alphabet/characterNN``); a dataset whose class names have no ``/`` is one group. The number of
clusters per group is ``"true"`` (that group's number of classes), an integer (the same for every
group), or ``"estimate"`` (the clusterer decides; how often it hits the true number is reported).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from metadl.algorithms.clustering_steps import Clusterer, ClusteringError
from metadl.data.base import FewShotDataset
from metadl.evaluation.clustering import ClusteringScores, score_partition
from metadl.evaluation.confidence import format_ci, mean_ci95

TRUE_K, ESTIMATE_K = "true", "estimate"


def parse_k(text: str | int | None) -> int | str:
    """``"true"``, ``"estimate"`` or a positive integer (given as text or int), else a one-line error.

    Example:
        >>> parse_k("100"), parse_k("true"), parse_k(None)
        (100, 'true', 'true')
    """
    if text is None or text in (TRUE_K, "True"):  # `--set eval.clusters=true` reads YAML's True
        return TRUE_K
    if text == ESTIMATE_K:
        return ESTIMATE_K
    try:
        k = int(text)
    except ValueError:
        k = 0
    if k < 1:
        raise ClusteringError(
            f"number of clusters {text!r}: give a positive integer, 'true' (each group's number of classes) "
            "or 'estimate'"
        )
    return k


def class_groups(class_names: Sequence[str]) -> dict[str, list[int]]:
    """Class indices per group (name before the first ``/``), groups in order of first appearance.

    Example:
        >>> class_groups(["Greek/c1", "Greek/c2", "Latin/c1"])
        {'Greek': [0, 1], 'Latin': [2]}
        >>> class_groups(["cat", "dog"])
        {'all': [0, 1]}
    """
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(class_names):
        key = name.split("/", 1)[0] if "/" in name else "all"
        groups.setdefault(key, []).append(i)
    return groups


def alphabet_subset(dataset: FewShotDataset, groups: Sequence[str], name: str) -> FewShotDataset:
    """The classes of the named groups only (e.g. validation alphabets carved out of background)."""
    known = class_groups(dataset.class_names)
    missing = [g for g in groups if g not in known]
    if missing:
        raise ClusteringError(f"{dataset.name} has no group {missing[0]!r}; it has {sorted(known)}")
    return dataset.subset([c for g in groups for c in known[g]], name=name)


@dataclass(frozen=True)
class GroupResult:
    """One group's partition: its scores and the number of clusters asked for or estimated."""

    group: str
    examples: int
    scores: ClusteringScores


@dataclass
class ClusteringEvalResult:
    """Mean ± 95% CI over groups of clustering accuracy, NMI and ARI (``metric`` is the accuracy)."""

    k: int | str
    mean: float
    ci95: float
    nmi: float
    nmi_ci95: float
    ari: float
    ari_ci95: float
    groups: list[GroupResult] = field(default_factory=list)
    metric: str = "clustering_accuracy"

    @property
    def k_exact(self) -> float:
        """Fraction of groups clustered into exactly their number of classes."""
        return float(np.mean([g.scores.k == g.scores.classes for g in self.groups]))

    @property
    def k_relative_error(self) -> float:
        """Mean ``|k - classes| / classes`` over groups."""
        return float(np.mean([abs(g.scores.k - g.scores.classes) / g.scores.classes for g in self.groups]))

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "metric": self.metric,
            "mean": self.mean,
            "ci95": self.ci95,
            "k": self.k,
            "nmi": self.nmi,
            "nmi_ci95": self.nmi_ci95,
            "ari": self.ari,
            "ari_ci95": self.ari_ci95,
            "groups": len(self.groups),
        }
        if self.k == ESTIMATE_K:
            out.update(k_exact=self.k_exact, k_relative_error=self.k_relative_error)
        out["per_group"] = [
            {"group": g.group, "examples": g.examples, **g.scores.to_dict()} for g in self.groups
        ]
        return out

    def __str__(self) -> str:
        text = (
            f"clustering accuracy {format_ci(self.mean, self.ci95, percent=True)}, "
            f"NMI {format_ci(self.nmi, self.nmi_ci95, percent=False)}, "
            f"ARI {format_ci(self.ari, self.ari_ci95, percent=False)} over {len(self.groups)} groups (k = {self.k})"
        )
        if self.k == ESTIMATE_K:
            text += f"; k exact in {100 * self.k_exact:.0f}% of groups, mean relative error {self.k_relative_error:.2f}"
        return text


def evaluate_clustering(
    clusterer: Clusterer,
    dataset: FewShotDataset,
    *,
    k: int | str = TRUE_K,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> ClusteringEvalResult:
    """Cluster every group of ``dataset`` on its own (labels unseen) and score it (module docstring).

    Example:
        >>> from metadl.algorithms import create_learner
        >>> from metadl.models import create_backbone
        >>> x = torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0], [1.0, 0.0], [0.0, 1.0]])
        >>> ds = FewShotDataset(x, torch.tensor([0, 0, 1, 1, 2, 3]), ["A/a", "A/b", "B/a", "B/b"])
        >>> net = create_learner("softkmeans", backbone=create_backbone("identity", in_features=2), n_way=2)
        >>> r = evaluate_clustering(net, ds)
        >>> r.mean, len(r.groups)
        (1.0, 2)
    """
    k = parse_k(k)
    results = []
    for group, classes in class_groups(dataset.class_names).items():
        index = torch.cat([torch.nonzero(dataset.labels == c).flatten() for c in classes])
        x, y = dataset.gather(index).to(device), dataset.labels[index]
        wanted = len(classes) if k == TRUE_K else None if k == ESTIMATE_K else int(k)
        if wanted is not None and wanted > len(index):
            raise ClusteringError(
                f"k = {wanted} clusters but group {group!r} of {dataset.name} has {len(index)} examples; "
                "choose a smaller k"
            )
        labels = clusterer.cluster(x, wanted, seed=seed)
        results.append(GroupResult(group, len(index), score_partition(labels.cpu(), y)))
    acc, nmi, ari = (np.array([getattr(g.scores, m) for g in results]) for m in ("accuracy", "nmi", "ari"))
    (m, h), (mn, hn), (ma, ha) = mean_ci95(acc), mean_ci95(nmi), mean_ci95(ari)
    return ClusteringEvalResult(k, m, h, mn, hn, ma, ha, results)
