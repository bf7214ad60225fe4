"""Paired comparison: hand-computed differences, a paired interval, and refusal to pair unlike results."""

from __future__ import annotations

import numpy as np
import pytest

from metadl.automl.comparison import paired_difference
from metadl.automl.protocol import Choice
from metadl.automl.tabular import AutoMLError


def _choices(
    scores: list[float], single: list[float], oracle: list[float], families: list[str]
) -> list[Choice]:
    return [
        Choice(f"d{i}", f, 0, s, sb, o, 1.0, False)
        for i, (s, sb, o, f) in enumerate(zip(scores, single, oracle, families, strict=True))
    ]


def test_difference_against_hand_computed_family_means():
    fam = ["A", "A", "B"]
    single, oracle = [0.6, 0.8, 0.6], [0.8, 0.9, 0.9]
    a = _choices([0.7, 0.8, 0.9], single, oracle, fam)
    b = _choices([0.8, 0.8, 0.6], single, oracle, fam)
    d = paired_difference("a", a, "b", b, n_boot=0)
    # families: a (0.75, 0.90) -> 0.825; b (0.80, 0.60) -> 0.70; single (0.70, 0.60) -> 0.65; oracle 0.875
    assert d.gap_a == pytest.approx(0.175 / 0.225) and d.gap_b == pytest.approx(0.05 / 0.225)
    assert d.gap_difference == pytest.approx(0.125 / 0.225)
    assert d.score_difference == pytest.approx(0.125)
    assert (d.better, d.worse, d.n_families) == (1, 1, 2)


def test_the_interval_is_paired():
    # a is b plus 0.01 on every family while the families themselves vary a lot: a paired interval
    # sits tightly above 0, where two separate intervals would overlap widely
    rng = np.random.default_rng(0)
    n = 30
    fam = [f"f{i}" for i in range(n)]
    single = rng.uniform(0.5, 0.8, n)
    oracle = single + 0.1
    b_scores = single + rng.uniform(0.0, 0.08, n)
    a = _choices((b_scores + 0.01).tolist(), single.tolist(), oracle.tolist(), fam)
    b = _choices(b_scores.tolist(), single.tolist(), oracle.tolist(), fam)
    d = paired_difference("a", a, "b", b, n_boot=500)
    assert d.score_ci[0] == pytest.approx(0.01) and d.score_ci[1] == pytest.approx(0.01)
    assert 0 < d.gap_ci[0] <= d.gap_difference <= d.gap_ci[1]
    assert d.verdict == "a ahead" and (d.better, d.worse) == (n, 0)
    swapped = paired_difference("b", b, "a", a, n_boot=500)
    assert swapped.verdict == "a ahead" and swapped.gap_ci[1] < 0


def test_unlike_results_are_not_paired():
    a = _choices([0.7], [0.6], [0.8], ["A"])
    with pytest.raises(AutoMLError, match="different datasets"):
        paired_difference("a", a, "b", _choices([0.7, 0.7], [0.6, 0.6], [0.8, 0.8], ["A", "A"]))
    with pytest.raises(AutoMLError, match="single best or oracle"):
        paired_difference("a", a, "b", _choices([0.7], [0.5], [0.8], ["A"]))
