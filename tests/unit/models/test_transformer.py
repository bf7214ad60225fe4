"""Transformer encoder: padding invariance, positions matter, positional encodings."""

from __future__ import annotations

import math

import pytest
import torch

from metadl.models import TransformerEncoder, create_backbone
from metadl.models.transformer import sinusoidal_positions

DT = torch.float64
TOKENS = torch.tensor([[3, 7, 2, 9, 4], [5, 1, 6, 0, 0], [8, 0, 0, 0, 0]])


@pytest.mark.parametrize("positional", ["sinusoidal", "learned"])
@pytest.mark.parametrize("pool", ["mean", "cls"])
def test_padding_does_not_change_features(pool: str, positional: str) -> None:
    torch.manual_seed(0)
    enc = TransformerEncoder(
        vocab_size=12, d_model=8, num_heads=2, num_layers=2, pool=pool, positional=positional
    )
    enc = enc.to(DT)
    out = enc(TOKENS)
    more = torch.cat([TOKENS, torch.zeros(3, 4, dtype=torch.long)], dim=1)
    torch.testing.assert_close(enc(more), out, rtol=1e-12, atol=1e-12)
    for i, n in enumerate([5, 3, 1]):  # each sequence alone, unpadded
        torch.testing.assert_close(enc(TOKENS[i : i + 1, :n]), out[i : i + 1], rtol=1e-12, atol=1e-12)


def test_order_matters() -> None:
    torch.manual_seed(0)
    enc = TransformerEncoder(vocab_size=12, d_model=8, num_heads=2).to(DT)
    x = TOKENS[:1]
    assert not torch.allclose(enc(x), enc(x.flip(1)), atol=1e-6)


def test_vector_sequences_with_a_mask() -> None:
    torch.manual_seed(0)
    enc = create_backbone("transformer", in_features=3, d_model=8, num_heads=2).to(DT)
    assert enc.input_kind == "sequence" and enc.out_features == 8
    x = torch.randn(2, 4, 3, dtype=DT)
    mask = torch.tensor([[True] * 4, [True, True, False, False]])
    torch.testing.assert_close(enc(x, mask)[1:], enc(x[1:, :2]), rtol=1e-12, atol=1e-12)


def test_sinusoidal_closed_form() -> None:
    pe = sinusoidal_positions(7, 5, dtype=DT)
    assert pe.shape == (7, 5)
    for p in (0, 3, 6):
        for i in range(5):
            angle = p / 10000 ** ((i - i % 2) / 5)
            assert pe[p, i].item() == pytest.approx(
                math.sin(angle) if i % 2 == 0 else math.cos(angle), abs=1e-12
            )


def test_learned_positions_have_a_max_len() -> None:
    enc = TransformerEncoder(vocab_size=12, d_model=8, num_heads=2, positional="learned", max_len=4)
    with pytest.raises(ValueError, match="max_len=4"):
        enc(TOKENS)
    with pytest.raises(ValueError, match="positional"):
        TransformerEncoder(vocab_size=12, positional="rotary")
