"""Transformer encoder (Vaswani et al. 2017, pre-norm) over token ids or vector sequences, pooled to ``(B, D)``.

Built on the blocks of :mod:`metadl.models.attention` rather than ``nn.TransformerEncoderLayer``: the
stock layer switches to a fused fast path in eval mode and calls fused attention kernels, while these
blocks are plain tensor ops that run the same under ``torch.func.vmap`` and second-order gradients.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from metadl.models.attention import AttentionStack, SequenceInput
from metadl.models.base import Backbone

POSITIONALS = ("sinusoidal", "learned")


def sinusoidal_positions(length: int, dim: int, *, dtype: torch.dtype = torch.float32, device=None) -> Tensor:
    """The fixed ``(length, dim)`` encoding: ``sin(p / 10000^(2i/dim))`` at even, ``cos`` at odd columns.

    Example:
        >>> pe = sinusoidal_positions(3, 4)
        >>> pe.shape, pe[0].tolist()
        (torch.Size([3, 4]), [0.0, 1.0, 0.0, 1.0])
    """
    position = torch.arange(length, dtype=torch.float64, device=device).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float64, device=device) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim, dtype=torch.float64, device=device)
    pe[:, 0::2] = torch.sin(position * freq)
    pe[:, 1::2] = torch.cos(position * freq)[:, : dim // 2]
    return pe.to(dtype)


class TransformerEncoder(Backbone):
    """Embedding + positional encoding + ``num_layers`` pre-norm encoder blocks + pooling -> ``(B, d_model)``.

    Inputs are token ids ``(B, L)`` int64 (with ``vocab_size``; id ``padding_idx``, 0 by default, is
    padding and is masked out of attention and pooling) or vectors ``(B, L, in_features)`` (linearly
    projected to ``d_model``; all positions real unless ``forward(x, mask)`` gets a ``(B, L)`` bool mask,
    True = real). Appending padding never changes the output (tested).

    Args:
        vocab_size / in_features: exactly one, for token ids or vectors.
        d_model: width; num_heads must divide it. ff_dim: feed-forward width (default 4 * d_model).
        num_layers: encoder blocks. pool: ``"mean"`` over real positions or ``"cls"`` (a learned
            vector prepended to the sequence). positional: ``"sinusoidal"`` (any length) or ``"learned"``
            (up to ``max_len`` positions). dropout: in [0, 1); dropout > 0 in training mode under
            ``vmap`` needs ``randomness="different"`` (or ``"same"``).

    Example:
        >>> enc = TransformerEncoder(vocab_size=100, d_model=16, num_heads=2, num_layers=2)
        >>> tokens = torch.tensor([[5, 7, 9, 0, 0], [3, 4, 0, 0, 0]])  # 0 = padding
        >>> enc(tokens).shape
        torch.Size([2, 16])
    """

    def __init__(
        self,
        *,
        vocab_size: int | None = None,
        in_features: int | None = None,
        d_model: int = 128,
        num_heads: int = 4,
        num_layers: int = 2,
        ff_dim: int | None = None,
        dropout: float = 0.0,
        pool: str = "mean",
        positional: str = "sinusoidal",
        max_len: int = 512,
        padding_idx: int | None = 0,
    ) -> None:
        super().__init__()
        name = "TransformerEncoder"
        if positional not in POSITIONALS:
            raise ValueError(f"{name}: unknown positional={positional!r}; choose one of {list(POSITIONALS)}")
        if max_len < 1:
            raise ValueError(f"{name}: max_len={max_len} must be >= 1")
        self.input = SequenceInput(
            vocab_size=vocab_size, in_features=in_features, dim=d_model, padding_idx=padding_idx, owner=name
        )
        self.positional, self.max_len = positional, max_len
        self.position = (
            nn.Parameter(torch.randn(max_len, d_model) * 0.02) if positional == "learned" else None
        )
        self.stack = AttentionStack(
            d_model,
            num_layers=num_layers,
            num_heads=num_heads,
            ff_dim=ff_dim or 4 * d_model,
            dropout=dropout,
            pool=pool,
            owner=name,
        )
        self.input_kind = self.input.input_kind
        self.out_features = d_model

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        h, mask = self.input(x, mask)  # (B, L, d_model), (B, L)
        length = h.shape[1]
        if self.position is not None:
            if length > self.max_len:
                raise ValueError(
                    f"sequence length {length} exceeds max_len={self.max_len} of the learned positions; "
                    f"build with a larger max_len or positional='sinusoidal'"
                )
            h = h + self.position[:length].to(h.dtype)
        else:
            h = h + sinusoidal_positions(length, h.shape[-1], dtype=h.dtype, device=h.device)
        return self.stack(h, mask)
