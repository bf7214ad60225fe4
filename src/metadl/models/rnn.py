"""LSTM / GRU sequence encoders over token ids or vector sequences, pooled to ``(B, D)``.

The recurrences are written out (one matrix product for all input projections, a Python loop over
time steps for the hidden ones) instead of calling ``nn.LSTM``/``nn.GRU``: the fused modules fail
under ``torch.func.vmap`` on torch 2.13 (a shape error inside ``aten::lstm``) and need
``pack_padded_sequence`` for padding, which cannot be vmapped either. Padding is handled by masking:
at a padded step the state is carried over unchanged, so the forward direction ends on the last real
token and the backward direction starts on it, exactly as with packed sequences. The equations, gate
order and initialisation follow ``nn.LSTM``/``nn.GRU``, and the tests check equality with them (packed)
after copying weights.
"""

from __future__ import annotations

import math
from typing import Any, cast

import torch
from torch import Tensor, nn

from metadl.models.attention import SequenceInput, masked_mean
from metadl.models.base import Backbone

CELLS = {"lstm": 4, "gru": 3}  # cell -> number of gates
POOLS = ("last", "mean")


class RecurrentLayer(nn.Module):
    """One direction of one LSTM/GRU layer: ``(B, L, in), mask (B, L) -> outputs (B, L, H), final h (B, H)``.

    Parameters mirror ``nn.LSTM``/``nn.GRU``: ``input_proj`` holds ``weight_ih``/``bias_ih`` and
    ``hidden_proj`` holds ``weight_hh``/``bias_hh``, gates in PyTorch's order (LSTM i, f, g, o; GRU r, z, n).
    """

    def __init__(self, cell: str, in_features: int, hidden_size: int, *, reverse: bool) -> None:
        super().__init__()
        self.cell, self.hidden_size, self.reverse = cell, hidden_size, reverse
        self.input_proj = nn.Linear(in_features, CELLS[cell] * hidden_size)
        self.hidden_proj = nn.Linear(hidden_size, CELLS[cell] * hidden_size)
        bound = 1.0 / math.sqrt(hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        xp = self.input_proj(x)  # (B, L, gates * H): input projections of all steps at once
        h = x.new_zeros(x.shape[0], self.hidden_size)
        c = torch.zeros_like(h)
        steps = range(x.shape[1] - 1, -1, -1) if self.reverse else range(x.shape[1])
        outputs: list[Tensor] = []
        for t in steps:
            real = mask[:, t, None]  # (B, 1): a padded step keeps the state
            hp = self.hidden_proj(h)
            if self.cell == "lstm":
                i, f, g, o = (xp[:, t] + hp).chunk(4, dim=-1)
                c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h_new = torch.sigmoid(o) * torch.tanh(c_new)
                c = torch.where(real, c_new, c)
            else:
                xr, xz, xn = xp[:, t].chunk(3, dim=-1)
                hr, hz, hn = hp.chunk(3, dim=-1)
                r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
                h_new = (1 - z) * torch.tanh(xn + r * hn) + z * h
            h = torch.where(real, h_new, h)
            outputs.append(h)
        if self.reverse:
            outputs.reverse()
        return torch.stack(outputs, dim=1), h


class RNNEncoder(Backbone):
    """Multi-layer, optionally bidirectional LSTM or GRU encoder -> ``(B, hidden_size * directions)``.

    Inputs are token ids ``(B, L)`` int64 (with ``vocab_size`` and ``embed_dim``; id ``padding_idx``,
    0 by default, is padding wherever it occurs) or vectors ``(B, L, in_features)`` (all real unless
    ``forward(x, mask)`` gets a ``(B, L)`` bool mask, True = real).

    Output (``pool``): ``"last"`` concatenates the final hidden state of each direction of the top layer
    (forward: after the last real token; backward: after the first), like ``h_n`` of a packed
    ``nn.LSTM``; ``"mean"`` averages the top layer's outputs over real positions. Padding never changes
    the features. ``dropout`` (between layers, like ``nn.LSTM``) > 0 in training mode under ``vmap``
    needs ``randomness="different"`` (or ``"same"``).

    Example:
        >>> enc = RNNEncoder(cell="gru", vocab_size=50, embed_dim=8, hidden_size=16, bidirectional=True)
        >>> tokens = torch.tensor([[4, 9, 2, 0], [7, 0, 0, 0]])  # 0 = padding
        >>> enc(tokens).shape
        torch.Size([2, 32])
        >>> torch.allclose(enc(tokens), enc(tokens[:, :3]))  # trailing padding changes nothing
        True
    """

    def __init__(
        self,
        *,
        cell: str = "lstm",
        vocab_size: int | None = None,
        embed_dim: int = 64,
        in_features: int | None = None,
        hidden_size: int = 128,
        num_layers: int = 1,
        bidirectional: bool = False,
        pool: str = "last",
        dropout: float = 0.0,
        padding_idx: int | None = 0,
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"RNNEncoder: unknown cell={cell!r}; choose one of {list(CELLS)}")
        if pool not in POOLS:
            raise ValueError(f"RNNEncoder: unknown pool={pool!r}; choose one of {list(POOLS)}")
        if hidden_size < 1 or num_layers < 1:
            raise ValueError(
                f"RNNEncoder needs hidden_size >= 1 and num_layers >= 1, got {hidden_size}, {num_layers}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"RNNEncoder: dropout={dropout} must be in [0, 1)")
        self.input = SequenceInput(
            vocab_size=vocab_size,
            in_features=in_features,
            dim=embed_dim if vocab_size is not None else None,
            padding_idx=padding_idx,
            owner="RNNEncoder",
        )
        self.cell, self.pool = cell, pool
        directions = 2 if bidirectional else 1
        widths = [self.input.out_dim] + [hidden_size * directions] * (num_layers - 1)
        self.layers = nn.ModuleList(
            nn.ModuleList(RecurrentLayer(cell, w, hidden_size, reverse=d == 1) for d in range(directions))
            for w in widths
        )
        self.dropout = nn.Dropout(dropout)
        self.input_kind = self.input.input_kind
        self.out_features = hidden_size * directions

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        h, mask = self.input(x, mask)  # (B, L, E), (B, L)
        finals: list[Tensor] = []
        for k, layer in enumerate(self.layers):
            if k:
                h = self.dropout(h)
            runs = [direction(h, mask) for direction in cast(nn.ModuleList, layer)]  # one per direction
            h = torch.cat([out for out, _ in runs], dim=-1)  # (B, L, H * directions)
            finals = [last for _, last in runs]
        return torch.cat(finals, dim=-1) if self.pool == "last" else masked_mean(h, mask)


def _preset(cell: str, kwargs: dict[str, Any]) -> RNNEncoder:
    if "cell" in kwargs:
        raise TypeError(f"the {cell!r} backbone fixes cell={cell!r}; use RNNEncoder(cell=...) to choose it")
    return RNNEncoder(cell=cell, **kwargs)


def lstm_encoder(**kwargs: Any) -> RNNEncoder:
    """``RNNEncoder(cell="lstm", **kwargs)``, registered as ``"lstm"``.

    Example:
        >>> lstm_encoder(in_features=3, hidden_size=5)(torch.randn(2, 4, 3)).shape
        torch.Size([2, 5])
    """
    return _preset("lstm", kwargs)


def gru_encoder(**kwargs: Any) -> RNNEncoder:
    """``RNNEncoder(cell="gru", **kwargs)``, registered as ``"gru"``.

    Example:
        >>> gru_encoder(in_features=3, hidden_size=5)(torch.randn(2, 4, 3)).shape
        torch.Size([2, 5])
    """
    return _preset("gru", kwargs)
