"""Rating and ranking metrics for one user: MAE, RMSE, tie-aware nDCG@k and Recall@k.

Ties. A recommender may score several items the same (a global mean scores every item alike). A
ranking of tied items is then arbitrary, so the metrics here are their **expectation over a uniformly
random order of tied items** (McSherry & Najork, ECIR 2008): within a block of tied items occupying
ranks ``a..b-1``, every rank gets the block's mean gain. A constant scorer thus scores exactly what a
random order scores on average, and the metric does not depend on how a sort breaks ties.

Gains. ``ndcg_at_k(..., gain="exp")`` uses ``2^rating - 1`` (the convention of the cold-start papers
for ranking the query items by rating), ``gain="linear"`` uses the relevance as given (binary 0/1 for
full-catalogue ranking). Discount ``1 / log2(rank + 2)`` for ranks from 0. The ideal DCG sorts the true
gains; a user whose ideal DCG is 0 has no defined nDCG (``nan``).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike


def mae(predicted: ArrayLike, actual: ArrayLike) -> float:
    """Mean absolute error.

    Example:
        >>> mae([3.0, 4.0], [4.0, 4.0])
        0.5
    """
    return float(np.mean(np.abs(np.asarray(predicted, float) - np.asarray(actual, float))))


def rmse(predicted: ArrayLike, actual: ArrayLike) -> float:
    """Root mean squared error.

    Example:
        >>> rmse([3.0, 4.0], [5.0, 4.0])
        1.4142135623730951
    """
    return float(np.sqrt(np.mean((np.asarray(predicted, float) - np.asarray(actual, float)) ** 2)))


def _discounts(n: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(n) + 2.0)


def _tie_averaged(scores: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` in descending score order, each replaced by the mean over its block of tied scores."""
    order = np.argsort(-scores, kind="stable")
    s, v = scores[order], values[order].astype(float)
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    sums = np.add.reduceat(v, starts)
    sizes = np.diff(np.r_[starts, len(s)])
    return np.repeat(sums / sizes, sizes)


def dcg_at_k(scores: ArrayLike, gains: ArrayLike, k: int) -> float:
    """Expected DCG@k of ranking items by ``scores`` (ties in random order) with the given ``gains``.

    Example: two items tied at the top, gains 3 and 1, then an item of gain 0: both top ranks get
    gain 2, so DCG@2 = 2/log2(2) + 2/log2(3).

        >>> round(dcg_at_k([0.5, 0.5, 0.1], [3.0, 1.0, 0.0], k=2), 4)
        3.2619
    """
    s, g = np.asarray(scores, float), np.asarray(gains, float)
    if s.shape != g.shape or s.ndim != 1:
        raise ValueError(f"scores and gains must be 1-d of the same length, got {s.shape} and {g.shape}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    top = _tie_averaged(s, g)[:k]
    return float(np.sum(top * _discounts(len(top))))


def ndcg_at_k(
    scores: ArrayLike, relevance: ArrayLike, k: int, gain: Literal["exp", "linear"] = "exp"
) -> float:
    """nDCG@k of ranking by ``scores``; gains ``2^relevance - 1`` (``"exp"``) or ``relevance`` (``"linear"``).

    Example: ratings 5, 3, 4 ranked in the order 3, 5, 4: DCG = 7 + 31/log2(3) + 15/2, ideal
    31 + 15/log2(3) + 7/2:

        >>> round(ndcg_at_k([0.2, 0.9, 0.1], [5.0, 3.0, 4.0], k=3), 4)
        0.7747
    """
    r = np.asarray(relevance, float)
    g = np.power(2.0, r) - 1.0 if gain == "exp" else r
    ideal = np.sort(g)[::-1][:k]
    best = float(np.sum(ideal * _discounts(len(ideal))))
    if best <= 0.0:
        return math.nan
    return dcg_at_k(scores, g, k) / best


def recall_at_k(scores: ArrayLike, relevant: ArrayLike, k: int) -> float:
    """Expected share of the relevant items (boolean mask) ranked in the top k, ties in random order.

    Example: the top score is relevant, then three items tie for ranks 1-3 with one relevant among
    them; with k = 2 that one is in the top 2 with probability 1/3, so recall = (1 + 1/3) / 2.

        >>> round(recall_at_k([0.9, 0.5, 0.5, 0.5], [True, True, False, False], k=2), 4)
        0.6667
    """
    rel = np.asarray(relevant, bool)
    if not rel.any():
        return math.nan
    hits = _tie_averaged(np.asarray(scores, float), rel.astype(float))[:k].sum()
    return float(hits / rel.sum())
