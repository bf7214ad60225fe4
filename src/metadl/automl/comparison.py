"""Paired comparison of two selectors on the same held-out datasets, with a bootstrap over families.

Two selectors evaluated by the same leave-one-family-out protocol share every held-out dataset, its
single best and its oracle, so the noise of which families happen to be in the collection largely
cancels in their *difference*: the interval below is on the difference itself (each bootstrap sample
draws families once and scores both selectors on them), which is narrower and more honest than
comparing two separate intervals.

- **gap difference** = (a - b) / (oracle - single best), on family means: the gap closed of ``a``
  minus that of ``b``, the denominator computed on the same resampled families;
- **score difference** = mean over families of a's minus b's balanced accuracy (report scores);
- **families better / worse**: families where a's mean report score is above / below b's.

Example (two families, hand-computable):
    >>> from metadl.automl.protocol import Choice
    >>> a = [Choice("x", "X", 0, 0.8, 0.6, 0.9, 1.0, False), Choice("y", "Y", 0, 0.7, 0.7, 0.8, 1.0, False)]
    >>> b = [Choice("x", "X", 1, 0.6, 0.6, 0.9, 2.0, False), Choice("y", "Y", 1, 0.8, 0.7, 0.8, 1.0, True)]
    >>> d = paired_difference("a", a, "b", b, n_boot=0)
    >>> round(d.gap_difference, 3), round(d.score_difference, 3), d.better, d.worse
    (0.25, 0.05, 1, 1)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from metadl.automl.protocol import Choice
from metadl.automl.tabular import AutoMLError


@dataclass(frozen=True)
class PairedDifference:
    """``a`` minus ``b`` on the same held-out families, with 95% percentile bootstrap intervals."""

    a: str
    b: str
    gap_a: float
    gap_b: float
    gap_difference: float
    gap_ci: tuple[float, float]
    score_difference: float
    score_ci: tuple[float, float]
    better: int
    worse: int
    n_families: int

    @property
    def verdict(self) -> str:
        """'a ahead', 'b ahead' when the gap interval excludes 0, else 'no clear difference'."""
        if self.gap_ci[0] > 0:
            return f"{self.a} ahead"
        if self.gap_ci[1] < 0:
            return f"{self.b} ahead"
        return "no clear difference"


def _family_means(choices: Sequence[Choice], families: list[str]) -> np.ndarray:
    """``(families, 3)``: per family the mean of score, single best and oracle."""
    rows: dict[str, list[tuple[float, float, float]]] = {f: [] for f in families}
    for c in choices:
        rows[c.family].append((c.score, c.single_best, c.oracle))
    return np.array([np.mean(rows[f], axis=0) for f in families])


def _interval(values: list[float]) -> tuple[float, float]:
    finite = [v for v in values if np.isfinite(v)]
    if not finite:
        return (float("nan"), float("nan"))
    return (float(np.percentile(finite, 2.5)), float(np.percentile(finite, 97.5)))


def paired_difference(
    name_a: str,
    a: Sequence[Choice],
    name_b: str,
    b: Sequence[Choice],
    *,
    n_boot: int = 2000,
    seed: int = 0,
) -> PairedDifference:
    """Compare two selectors' choices on the same datasets (see the module docstring)."""
    if sorted(c.dataset for c in a) != sorted(c.dataset for c in b):
        raise AutoMLError(
            f"{name_a!r} and {name_b!r} were scored on different datasets; pair them on the same ones"
        )
    families = sorted({c.family for c in a})
    ma, mb = _family_means(a, families), _family_means(b, families)
    if not np.allclose(ma[:, 1:], mb[:, 1:]):
        raise AutoMLError(
            f"{name_a!r} and {name_b!r} disagree on single best or oracle; use one ground truth"
        )
    sa, sb, single, oracle = ma[:, 0], mb[:, 0], ma[:, 1], ma[:, 2]

    def gaps(rows: np.ndarray) -> tuple[float, float]:
        denominator = oracle[rows].mean() - single[rows].mean()
        if denominator <= 1e-12:
            return float("nan"), float("nan")
        return (
            float((sa[rows].mean() - single[rows].mean()) / denominator),
            float((sb[rows].mean() - single[rows].mean()) / denominator),
        )

    everything = np.arange(len(families))
    gap_a, gap_b = gaps(everything)
    draws = np.random.default_rng(seed).integers(0, len(families), size=(n_boot, len(families)))
    boot_gap = [ga - gb for ga, gb in (gaps(rows) for rows in draws)]
    boot_score = [float((sa[rows] - sb[rows]).mean()) for rows in draws]
    return PairedDifference(
        name_a,
        name_b,
        gap_a,
        gap_b,
        gap_a - gap_b,
        _interval(boot_gap),
        float((sa - sb).mean()),
        _interval(boot_score),
        int((sa > sb + 1e-12).sum()),
        int((sa < sb - 1e-12).sum()),
        len(families),
    )
