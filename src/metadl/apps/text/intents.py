"""The intent-detection protocol: all-way K-shot, the full test set, seeded draws, mean ± 95% CI.

For every draw (seed ``s``), K examples of *every* intent are drawn from the training split with a
``torch.Generator`` seeded ``s``; a head is fitted on their frozen embeddings and scores the whole test
split. For CLINC150 the out-of-scope queries are also scored: the head abstains ("oos") when its top
probability is below a threshold chosen **on the validation split** (in-scope val + out-of-scope val)
to maximise the mean of in-scope accuracy and out-of-scope recall there; the test set is never used to
choose anything. Reported per draw: in-scope accuracy without abstaining (all-way accuracy), and, with
the threshold, in-scope accuracy (correct and not abstained) and out-of-scope recall.

Heads (:data:`HEADS`): ``prototype`` (ProtoNet with cosine distance on the ``identity`` backbone: class
means of normalised embeddings) and ``logreg`` (scikit-learn's multinomial ``LogisticRegression``, L2;
its inverse regularisation ``C`` is 1 unless chosen on training data with :func:`choose_logreg_c`).

Example:
    >>> y = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
    >>> idx = kshot_indices(y, 2, torch.Generator().manual_seed(0))
    >>> y[idx].tolist()
    [0, 0, 1, 1, 2, 2]
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from torch import Tensor

from metadl.algorithms.protonet import ProtoNet
from metadl.evaluation.confidence import format_ci, mean_ci95
from metadl.models.identity import Identity

Scorer = Callable[[Tensor], Tensor]  # (B, D) embeddings -> (B, C) probabilities
Head = Callable[[Tensor, Tensor, int], Scorer]  # fit on (S, D), (S,) labels in 0..C-1, C classes


def prototype_head(x: Tensor, y: Tensor, n_classes: int) -> Scorer:
    """Nearest class mean by cosine similarity (ProtoNet, ``distance="cosine"``)."""
    net = ProtoNet(backbone=Identity(in_features=x.shape[1]), n_way=n_classes, distance="cosine").eval()
    predictor = net.adapt(x, y)
    return predictor.predict_proba


def logreg_head(c: float = 1.0) -> Head:
    """scikit-learn ``LogisticRegression(C=c)`` (multinomial, L2) on the embeddings, as a :data:`Head`."""

    def fit(x: Tensor, y: Tensor, n_classes: int) -> Scorer:
        model = LogisticRegression(C=c, max_iter=2000).fit(x.double().numpy(), y.numpy())
        return lambda q: torch.from_numpy(model.predict_proba(q.double().numpy())).float()

    return fit


HEADS: dict[str, Head] = {"prototype": prototype_head, "logreg": logreg_head()}
LOGREG_C_GRID = (0.1, 1.0, 10.0, 100.0, 1000.0)


def choose_logreg_c(
    train: Split, k_shot: int, seeds: Sequence[int] = (100, 101, 102), grid: Sequence[float] = LOGREG_C_GRID
) -> float:
    """The ``C`` of :func:`logreg_head` with the best mean accuracy on validation draws carved from ``train``.

    Each draw (seeds apart from the protocol's) takes ``k_shot`` rows of every class as the support and
    scores the class's other rows, so the choice sees training data only. Equal accuracies (common: a
    tiny ``C`` shrinks the weights but often keeps their argmax) are broken by the mean log-likelihood of
    the true labels. Every class needs more than ``k_shot`` rows.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> y = torch.arange(3).repeat_interleave(8)
        >>> x = torch.nn.functional.one_hot(y).float() + 0.3 * torch.randn(24, 3, generator=g)
        >>> choose_logreg_c(Split(x, y), 2, grid=(1e-4, 10.0))
        10.0
    """
    draws = []  # (support, query) per seed, the same for every C
    for seed in seeds:
        support = kshot_indices(train.y, k_shot, torch.Generator().manual_seed(seed))
        query = torch.ones(len(train.y), dtype=torch.bool)
        query[support] = False
        if not bool(query.any()):
            raise ValueError(f"choose_logreg_c needs more than k_shot = {k_shot} rows of some class")
        draws.append((support, query))
    scores: list[tuple[float, float]] = []
    for c in grid:
        accuracies, log_likelihoods = [], []
        for support, query in draws:
            scorer = logreg_head(c)(train.x[support], train.y[support], int(train.y.max()) + 1)
            proba, truth = scorer(train.x[query]), train.y[query]
            accuracies.append((proba.argmax(-1) == truth).float().mean().item())
            picked = proba.gather(1, truth[:, None]).clamp_min(1e-12)
            log_likelihoods.append(picked.log().mean().item())
        scores.append((round(mean(accuracies), 6), mean(log_likelihoods)))
    return float(grid[max(range(len(grid)), key=scores.__getitem__)])


def kshot_indices(labels: Tensor, k_shot: int, generator: torch.Generator) -> Tensor:
    """``k_shot`` random example indices of every class in ``labels`` (class by class)."""
    parts = []
    for c in range(int(labels.max()) + 1):
        members = (labels == c).nonzero().flatten()
        if len(members) < k_shot:
            raise ValueError(f"class {c} has {len(members)} examples but k_shot = {k_shot}")
        parts.append(members[torch.randperm(len(members), generator=generator)[:k_shot]])
    return torch.cat(parts)


@dataclass(frozen=True)
class Split:
    """Embeddings ``(N, D)`` and labels ``(N,)`` of one split; ``oos`` ``(M, D)``: its out-of-scope queries."""

    x: Tensor
    y: Tensor
    oos: Tensor | None = None


@dataclass(frozen=True)
class DrawScore:
    """One seeded draw: accuracy without abstaining; with the validation threshold, in-scope accuracy and
    out-of-scope recall (None without out-of-scope data); seconds to fit and to score the test set."""

    accuracy: float
    in_scope_accuracy: float | None
    oos_recall: float | None
    threshold: float | None
    adapt_seconds: float
    predict_seconds: float


@dataclass
class IntentResult:
    """Draws of one (dataset, head, K) cell of the table, with mean ± 95% CI over draws."""

    dataset: str
    method: str
    k_shot: int
    draws: list[DrawScore] = field(default_factory=list)

    def ci(self, metric: str) -> str:
        values = [getattr(d, metric) for d in self.draws]
        if not values or values[0] is None:
            return "-"
        return format_ci(*mean_ci95(values), percent=True)


def choose_threshold(in_scope_proba: Tensor, in_scope_y: Tensor, oos_proba: Tensor) -> float:
    """The abstain threshold on the top probability that maximises (in-scope accuracy + OOS recall) / 2."""
    top, pred = in_scope_proba.max(-1)
    correct = pred == in_scope_y
    oos_top = oos_proba.max(-1).values
    candidates = torch.cat([top, oos_top, torch.tensor([0.0])]).unique()
    best, best_score = 0.0, -1.0
    for t in candidates.tolist():
        score = ((correct & (top >= t)).float().mean() + (oos_top < t).float().mean()).item() / 2
        if score > best_score:
            best, best_score = t, score
    return best


def run_draw(
    head: Head, train: Split, test: Split, k_shot: int, seed: int, val: Split | None = None
) -> DrawScore:
    """One draw of the protocol (see the module docstring)."""
    idx = kshot_indices(train.y, k_shot, torch.Generator().manual_seed(seed))
    n_classes = int(train.y.max()) + 1
    start = time.perf_counter()
    scorer = head(train.x[idx], train.y[idx], n_classes)
    adapt_s = time.perf_counter() - start
    start = time.perf_counter()
    proba = scorer(test.x)
    predict_s = time.perf_counter() - start
    accuracy = (proba.argmax(-1) == test.y).float().mean().item()
    if val is None or val.oos is None or test.oos is None:
        return DrawScore(accuracy, None, None, None, adapt_s, predict_s)
    threshold = choose_threshold(scorer(val.x), val.y, scorer(val.oos))
    top, pred = proba.max(-1)
    in_scope = ((pred == test.y) & (top >= threshold)).float().mean().item()
    recall = (scorer(test.oos).max(-1).values < threshold).float().mean().item()
    return DrawScore(accuracy, in_scope, recall, threshold, adapt_s, predict_s)


def run_protocol(
    dataset: str,
    method: str,
    train: Split,
    test: Split,
    *,
    k_shot: int,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    val: Split | None = None,
    head: Head | None = None,
) -> IntentResult:
    """All draws of one cell, with ``head`` (default: ``HEADS[method]``) named ``method`` in the table."""
    if head is None and method not in HEADS:
        raise ValueError(f"unknown head {method!r}; choose one of {sorted(HEADS)}")
    result = IntentResult(dataset, method, k_shot)
    for seed in seeds:
        result.draws.append(run_draw(head or HEADS[method], train, test, k_shot, seed, val))
    return result


def mean(values: Sequence[float]) -> float:
    return float(np.mean(values))
