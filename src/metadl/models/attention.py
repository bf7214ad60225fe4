"""Self-attention over sequences and sets, written from primitives so it is exact under ``torch.func``.

The pieces here are shared by the sequence backbones:

- ``SequenceInput``: token ids ``(B, L)`` (embedded) or vectors ``(B, L, F)`` -> ``(B, L, D)`` and the
  padding mask ``(B, L)`` (True at real positions). Token id ``padding_idx`` (0 by default) is padding.
- ``MultiHeadSelfAttention`` and ``SelfAttentionBlock`` (pre-norm: ``x + MHA(LN(x))``, ``x + FF(LN(x))``).
- ``AttentionStack``: blocks, a final LayerNorm and pooling to ``(B, D)`` by masked mean or a learned
  ``[CLS]`` vector.
- ``SelfAttentionEncoder``: the ``"attention"`` backbone. It has no positional encoding, so it is a
  permutation-invariant set encoder for vector sets ``(B, L, F)`` as well as a bag-of-tokens encoder.

Attention is ``softmax(q k^T / sqrt(d) + mask) v`` with plain tensor ops instead of
``nn.MultiheadAttention`` / ``scaled_dot_product_attention``: the result is the same, and it runs under
``vmap`` and double backward (second-order MAML) without depending on which fused kernel is picked.
Padded keys get the most negative finite score, so their weight is exactly 0 and padding cannot
change the features of the real positions (tested). LayerNorm is :class:`metadl.models.layers.LayerNorm`,
built from primitives: ``nn.LayerNorm``'s second-order gradient is wrong under ``vmap`` on torch 2.13.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from metadl.models.base import Backbone
from metadl.models.layers import LayerNorm

POOLS = ("mean", "cls")


def masked_mean(h: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``h`` ``(B, L, D)`` over the positions where ``mask`` ``(B, L)`` is True; 0 for empty rows."""
    m = mask.unsqueeze(-1).to(h.dtype)
    return (h * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)


class SequenceInput(nn.Module):
    """Token ids or vector sequences -> ``(B, L, dim)`` features and a ``(B, L)`` bool mask of real positions.

    Exactly one of ``vocab_size`` (token ids ``(B, L)`` int64, embedded to ``dim``) and ``in_features``
    (vectors ``(B, L, in_features)``, projected to ``dim`` by a linear layer, or passed through when
    ``dim`` is None) must be given. For tokens, positions equal to ``padding_idx`` are padding (None:
    no padding); vectors are all real unless an explicit ``mask`` is passed to ``forward``.

    Example:
        >>> inp = SequenceInput(vocab_size=10, dim=4)
        >>> h, mask = inp(torch.tensor([[3, 5, 0]]))
        >>> h.shape, mask.tolist()
        (torch.Size([1, 3, 4]), [[True, True, False]])
    """

    def __init__(
        self,
        *,
        vocab_size: int | None = None,
        in_features: int | None = None,
        dim: int | None = None,
        padding_idx: int | None = 0,
        owner: str = "SequenceInput",
    ) -> None:
        super().__init__()
        if (vocab_size is None) == (in_features is None):
            raise ValueError(
                f"{owner} needs exactly one of vocab_size (token ids (B, L)) or in_features "
                f"(vectors (B, L, F)), got vocab_size={vocab_size}, in_features={in_features}"
            )
        self.owner, self.padding_idx = owner, padding_idx
        if vocab_size is not None:
            if vocab_size < 1 or dim is None or dim < 1:
                raise ValueError(
                    f"{owner} needs vocab_size >= 1 and an embedding size >= 1, got {vocab_size}, {dim}"
                )
            if padding_idx is not None and not 0 <= padding_idx < vocab_size:
                raise ValueError(
                    f"{owner}: padding_idx={padding_idx} must be in [0, vocab_size={vocab_size}) or None"
                )
            self.input_kind, self.out_dim = "tokens", dim
            self.embed: nn.Module = nn.Embedding(vocab_size, dim, padding_idx=padding_idx)
            self.in_features = None
        else:
            assert in_features is not None
            if in_features < 1 or (dim is not None and dim < 1):
                raise ValueError(
                    f"{owner} needs in_features >= 1 (and a size >= 1), got {in_features}, {dim}"
                )
            self.input_kind, self.out_dim = "sequence", in_features if dim is None else dim
            self.embed = nn.Identity() if dim is None else nn.Linear(in_features, dim)
            self.in_features = in_features

    def forward(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self.input_kind == "tokens":
            if x.dim() != 2 or x.is_floating_point():
                raise ValueError(
                    f"{self.owner} was built for token ids of shape (B, L) int64, got shape {tuple(x.shape)} "
                    f"dtype {x.dtype}; for vector sequences build it with in_features=F instead of vocab_size"
                )
            if mask is None:
                mask = (
                    x != self.padding_idx
                    if self.padding_idx is not None
                    else torch.ones_like(x, dtype=torch.bool)
                )
        else:
            if x.dim() != 3 or x.shape[-1] != self.in_features or not x.is_floating_point():
                raise ValueError(
                    f"{self.owner} was built for float vectors of shape (B, L, {self.in_features}), got shape "
                    f"{tuple(x.shape)} dtype {x.dtype}; for token ids build it with vocab_size instead"
                )
            if mask is None:
                mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        if mask.shape != x.shape[:2] or mask.dtype != torch.bool:
            raise ValueError(
                f"mask must be bool of shape {tuple(x.shape[:2])}, got {mask.dtype} {tuple(mask.shape)}"
            )
        return self.embed(x), mask


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention ``(B, L, d_model) -> (B, L, d_model)`` that ignores padded keys."""

    def __init__(self, d_model: int, num_heads: int, *, dropout: float = 0.0) -> None:
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} must be divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        b, length, d = x.shape
        q, k, v = self.qkv(x).view(b, length, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-2, -1) / math.sqrt(d // self.num_heads)  # (B, heads, L, L)
        scores = scores.masked_fill(~mask[:, None, None, :], torch.finfo(scores.dtype).min)
        attn = self.dropout(scores.softmax(dim=-1))
        return self.out((attn @ v).transpose(1, 2).reshape(b, length, d))


class SelfAttentionBlock(nn.Module):
    """Pre-norm encoder block: ``x + MHA(LN(x))`` then ``x + FF(LN(x))`` with a GELU feed-forward."""

    def __init__(self, d_model: int, num_heads: int, ff_dim: int, *, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = LayerNorm(d_model)
        self.attn = MultiHeadSelfAttention(d_model, num_heads, dropout=dropout)
        self.norm2 = LayerNorm(d_model)
        self.ff = nn.Sequential(
            nn.Linear(d_model, ff_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff_dim, d_model)
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = x + self.dropout(self.attn(self.norm1(x), mask))
        return x + self.dropout(self.ff(self.norm2(x)))


class AttentionStack(nn.Module):
    """``num_layers`` blocks, a final LayerNorm and pooling: ``(B, L, d_model), mask -> (B, d_model)``.

    ``pool="mean"`` averages the real positions; ``pool="cls"`` prepends a learned vector, always
    real, and returns its output.
    """

    def __init__(
        self,
        d_model: int,
        *,
        num_layers: int,
        num_heads: int,
        ff_dim: int,
        dropout: float,
        pool: str,
        owner: str,
    ) -> None:
        super().__init__()
        if d_model < 1 or num_layers < 1 or num_heads < 1 or ff_dim < 1:
            raise ValueError(
                f"{owner} needs d_model, num_layers, num_heads, ff_dim >= 1, got {d_model}, {num_layers}, "
                f"{num_heads}, {ff_dim}"
            )
        if d_model % num_heads:
            raise ValueError(f"{owner}: d_model={d_model} must be divisible by num_heads={num_heads}")
        if pool not in POOLS:
            raise ValueError(f"{owner}: unknown pool={pool!r}; choose one of {list(POOLS)}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"{owner}: dropout={dropout} must be in [0, 1)")
        self.pool = pool
        self.cls = nn.Parameter(torch.randn(d_model) * 0.02) if pool == "cls" else None
        self.blocks = nn.ModuleList(
            SelfAttentionBlock(d_model, num_heads, ff_dim, dropout=dropout) for _ in range(num_layers)
        )
        self.norm = LayerNorm(d_model)

    def forward(self, h: Tensor, mask: Tensor) -> Tensor:
        if self.cls is not None:
            h = torch.cat([self.cls.to(h.dtype).expand(h.shape[0], 1, -1), h], dim=1)
            mask = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)
        for block in self.blocks:
            h = block(h, mask)
        h = self.norm(h)
        return h[:, 0] if self.cls is not None else masked_mean(h, mask)


class SelfAttentionEncoder(Backbone):
    """Self-attention set/sequence encoder without positional encoding -> ``(B, d_model)``.

    Inputs are vector sets ``(B, L, in_features)`` or token ids ``(B, L)`` (with ``vocab_size``; id
    ``padding_idx`` is padding). ``forward(x, mask=None)`` also takes an explicit ``(B, L)`` bool mask
    (True = real) for variable-size vector sets. The output does not depend on the order of the
    elements nor on padding.

    Args:
        in_features / vocab_size: exactly one, for vectors or token ids.
        d_model: width; num_heads must divide it. ff_dim: feed-forward width (default 4 * d_model).
        num_layers: number of blocks. pool: ``"mean"`` (masked) or ``"cls"``. dropout: in [0, 1);
            dropout > 0 in training mode under ``vmap`` needs ``randomness="different"`` (or ``"same"``).

    Example:
        >>> enc = SelfAttentionEncoder(in_features=3, d_model=8, num_heads=2)
        >>> x = torch.randn(4, 5, 3)
        >>> enc(x).shape
        torch.Size([4, 8])
        >>> torch.allclose(enc(x), enc(x.flip(1)), atol=1e-6)  # a set encoder: order does not matter
        True
    """

    def __init__(
        self,
        *,
        in_features: int | None = None,
        vocab_size: int | None = None,
        d_model: int = 64,
        num_heads: int = 4,
        num_layers: int = 1,
        ff_dim: int | None = None,
        dropout: float = 0.0,
        pool: str = "mean",
        padding_idx: int | None = 0,
    ) -> None:
        super().__init__()
        name = "SelfAttentionEncoder"
        self.input = SequenceInput(
            vocab_size=vocab_size, in_features=in_features, dim=d_model, padding_idx=padding_idx, owner=name
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
        h, mask = self.input(x, mask)
        return self.stack(h, mask)
