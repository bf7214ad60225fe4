"""The intent protocol's heads: logistic regression's C chosen on training draws, custom heads."""

from __future__ import annotations

import pytest
import torch

from metadl.apps.text.intents import Split, choose_logreg_c, logreg_head, run_protocol


def blobs(n_per_class: int, noise: float, seed: int) -> Split:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(4).repeat_interleave(n_per_class)
    x = torch.nn.functional.one_hot(y, 8).float() + noise * torch.randn(len(y), 8, generator=g)
    return Split(x, y)


def test_choice_prefers_confident_weights_when_accuracy_ties() -> None:
    assert choose_logreg_c(blobs(10, 0.05, 0), 3, grid=(1e-4, 1.0, 100.0)) == 100.0


def test_choice_needs_rows_beyond_the_support() -> None:
    with pytest.raises(ValueError, match="k_shot"):
        choose_logreg_c(blobs(3, 0.1, 0), 3)


def test_logreg_head_c_changes_the_fit() -> None:
    train = blobs(5, 0.1, 2)
    weak = logreg_head(1e-4)(train.x, train.y, 4)(train.x).max(-1).values.mean()
    strong = logreg_head(100.0)(train.x, train.y, 4)(train.x).max(-1).values.mean()
    assert weak < 0.3 < 0.9 < strong


def test_run_protocol_uses_the_given_head() -> None:
    train, test = blobs(10, 0.1, 3), blobs(5, 0.1, 4)

    def always_first(x: torch.Tensor, y: torch.Tensor, n: int):  # noqa: ANN202
        return lambda q: torch.nn.functional.one_hot(torch.zeros(len(q), dtype=torch.long), n).float()

    result = run_protocol("blobs", "constant", train, test, k_shot=2, seeds=(0, 1), head=always_first)
    assert [d.accuracy for d in result.draws] == pytest.approx([0.25, 0.25])
    with pytest.raises(ValueError, match="unknown head"):
        run_protocol("blobs", "nope", train, test, k_shot=2)
