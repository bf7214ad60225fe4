"""Mean and 95% confidence interval over episodes, the way every metadl number is reported."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats


def mean_ci95(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Mean and half-width of the 95% confidence interval of the mean (Student t, n - 1 dof).

    For the 600-10,000 episodes of few-shot papers the t quantile is 1.96-1.964, the figure those
    papers use; for small n it is wider, as it should be. One value gives an infinite interval.

    Example:
        >>> m, h = mean_ci95([0.8, 0.9, 1.0])
        >>> round(m, 3), round(h, 3)
        (0.9, 0.248)
    """
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("mean_ci95 needs at least one value")
    if x.size == 1:
        return float(x[0]), math.inf
    half = stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size)
    return float(x.mean()), float(half)


def format_ci(mean: float, half: float, *, percent: bool) -> str:
    """``"87.40% ± 0.85%"`` for accuracies, ``"0.5123 ± 0.0210"`` for errors."""
    if percent:
        return f"{100 * mean:.2f}% ± {100 * half:.2f}%"
    return f"{mean:.4f} ± {half:.4f}"


def paired_difference_ci95(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray
) -> tuple[float, float]:
    """Mean and 95% half-width of ``a - b`` over paired values (the same users scored by two systems).

    Pairs where either value is NaN (a metric undefined for that user) are dropped. The interval
    excludes zero when ``abs(mean) > half``.

    Example:
        >>> m, h = paired_difference_ci95([0.5, 0.7, 0.9], [0.4, 0.5, 0.8])
        >>> round(m, 3), round(h, 3)
        (0.133, 0.143)
    """
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"paired values need the same shape, got {x.shape} and {y.shape}")
    d = x - y
    return mean_ci95(d[~np.isnan(d)])
