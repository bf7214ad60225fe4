"""The top layers of a BERT-style sentence encoder (MiniLM) as a backbone, fed by cached lower-layer states.

Episodic fine-tuning of a pretrained encoder on 2 cores: the lower layers stay frozen and their token
states are computed once per sentence (:class:`metadl.models.text.layers.LowerLayerEncoder`, with an
on-disk cache), and only the top ``num_layers`` layers run, and learn, inside episodes. Those layers are
written out here (post-LayerNorm BERT blocks, as in Devlin et al. 2019 and ``transformers``'
``BertLayer``, with metadl's ``LayerNorm``, exact under ``vmap`` second-order gradients) so the backbone needs no ``transformers`` import, runs under ``functional_call``/``vmap``
like every backbone, and loads the pretrained blocks with :func:`bert_layer_state` (the same weights,
renamed).

Input ``(B, max_length * (hidden_size + 1))``: per token, its ``hidden_size`` lower-layer state followed
by its attention-mask value (1 for a real token, 0 for padding), flattened, so the cached inputs are
plain vectors. Output ``(B, hidden_size)``: the mean over real tokens of the top layer's states
(sentence-transformers' mean pooling), L2-normalised when ``normalize`` (all-MiniLM-L6-v2's last module).

Example:
    >>> net = BertTop(max_length=3, hidden_size=4, num_layers=1, num_heads=2, intermediate_size=8)
    >>> tokens = torch.randn(2, 3, 4)
    >>> mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    >>> x = torch.cat([tokens, mask[..., None]], -1).flatten(1)
    >>> torch.allclose(net.eval()(x).norm(dim=-1), torch.ones(2))
    True
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metadl.models.base import Backbone
from metadl.models.layers import LayerNorm

# transformers' BertLayer parameter names -> BertBlock's
HF_NAMES = {
    "attention.self.query": "query",
    "attention.self.key": "key",
    "attention.self.value": "value",
    "attention.output.dense": "attn_out",
    "attention.output.LayerNorm": "attn_norm",
    "intermediate.dense": "intermediate",
    "output.dense": "output",
    "output.LayerNorm": "out_norm",
}


class BertBlock(nn.Module):
    """One post-LayerNorm transformer block: self-attention, add & norm, GELU feed-forward, add & norm."""

    def __init__(
        self,
        *,
        hidden_size: int,
        num_heads: int,
        intermediate_size: int,
        layer_norm_eps: float,
        dropout: float,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key = nn.Linear(hidden_size, hidden_size)
        self.value = nn.Linear(hidden_size, hidden_size)
        self.attn_out = nn.Linear(hidden_size, hidden_size)
        self.attn_norm = LayerNorm(hidden_size, eps=layer_norm_eps)
        self.intermediate = nn.Linear(hidden_size, intermediate_size)
        self.output = nn.Linear(intermediate_size, hidden_size)
        self.out_norm = LayerNorm(hidden_size, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, h: Tensor, bias: Tensor) -> Tensor:
        """``h`` ``(B, L, H)`` token states, ``bias`` ``(B, 1, 1, L)`` (0 for real tokens, very negative for padding)."""
        b, length, width = h.shape
        heads = self.num_heads

        def split(t: Tensor) -> Tensor:  # (B, L, H) -> (B, heads, L, H / heads)
            return t.reshape(b, length, heads, width // heads).transpose(1, 2)

        q, k, v = split(self.query(h)), split(self.key(h)), split(self.value(h))
        scores = q @ k.transpose(-1, -2) / math.sqrt(width // heads) + bias  # (B, heads, L, L)
        context = self.dropout(scores.softmax(-1)) @ v
        context = context.transpose(1, 2).reshape(b, length, width)
        h = self.attn_norm(h + self.dropout(self.attn_out(context)))
        return self.out_norm(h + self.dropout(self.output(F.gelu(self.intermediate(h)))))


class BertTop(Backbone):
    """The top ``num_layers`` blocks of a BERT-style encoder, mean pooling and optional normalisation.

    Args:
        max_length: tokens per input (the lower-layer encoder pads or truncates to it).
        hidden_size, num_heads, intermediate_size, layer_norm_eps: the encoder's (MiniLM-L6: 384, 12, 1536, 1e-12).
        num_layers: blocks run here (0: pooling only).
        dropout: inside the blocks while training (BERT used 0.1; 0 keeps the forward deterministic, as
            ``vmap``-ed gradient learners such as MAML need).
        normalize: L2-normalise the pooled vector.
    """

    input_kind = "vector"

    def __init__(
        self,
        *,
        max_length: int,
        hidden_size: int = 384,
        num_layers: int = 2,
        num_heads: int = 12,
        intermediate_size: int = 1536,
        layer_norm_eps: float = 1e-12,
        dropout: float = 0.0,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        for key, value in (
            ("max_length", max_length),
            ("hidden_size", hidden_size),
            ("num_heads", num_heads),
        ):
            if value < 1:
                raise ValueError(f"BertTop needs {key} >= 1, got {key}={value}")
        if num_layers < 0 or intermediate_size < 1:
            raise ValueError(
                f"BertTop needs num_layers >= 0 and intermediate_size >= 1, got {num_layers}, {intermediate_size}"
            )
        if hidden_size % num_heads:
            raise ValueError(f"BertTop: num_heads={num_heads} must divide hidden_size={hidden_size}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"BertTop needs 0 <= dropout < 1, got dropout={dropout}")
        self.max_length, self.hidden_size, self.normalize = max_length, hidden_size, normalize
        self.in_features = max_length * (hidden_size + 1)
        self.out_features = hidden_size
        self.layers = nn.ModuleList(
            BertBlock(
                hidden_size=hidden_size,
                num_heads=num_heads,
                intermediate_size=intermediate_size,
                layer_norm_eps=layer_norm_eps,
                dropout=dropout,
            )
            for _ in range(num_layers)
        )

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ValueError(
                f"BertTop(max_length={self.max_length}, hidden_size={self.hidden_size}) got shape "
                f"{tuple(x.shape)}; expected (B, {self.in_features}) = (B, max_length * (hidden_size + 1))"
            )
        tokens = x.reshape(x.shape[0], self.max_length, self.hidden_size + 1)
        h, mask = tokens[..., : self.hidden_size], (tokens[..., self.hidden_size] > 0.5).to(x.dtype)
        bias = (1.0 - mask)[:, None, None, :] * torch.finfo(x.dtype).min  # (B, 1, 1, L)
        for layer in self.layers:
            h = layer(h, bias)
        pooled = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp_min(1.0)
        return F.normalize(pooled, dim=-1) if self.normalize else pooled


def bert_layer_state(hf_state: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """The weights of a ``transformers`` ``BertLayer`` (keys under ``prefix``) renamed for :class:`BertBlock`.

    Example:
        >>> block = BertBlock(hidden_size=4, num_heads=2, intermediate_size=8, layer_norm_eps=1e-12, dropout=0.0)
        >>> ours = block.state_dict()
        >>> hf = {f"l.{hf}.{p}": ours[f"{name}.{p}"] for hf, name in HF_NAMES.items() for p in ("weight", "bias")}
        >>> sorted(bert_layer_state(hf, "l.")) == sorted(ours)
        True
    """
    out = {}
    for hf, ours in HF_NAMES.items():
        for param in ("weight", "bias"):
            key = f"{prefix}{hf}.{param}"
            if key not in hf_state:
                raise ValueError(f"the encoder's weights have no {key!r}; it is not a BERT-style encoder")
            out[f"{ours}.{param}"] = hf_state[key]
    return out
