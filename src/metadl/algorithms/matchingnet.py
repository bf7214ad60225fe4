"""Matching Networks (Vinyals et al. 2016): attention over the labelled support set.

``P(y | x) = sum_i a(x, x_i) y_i`` with ``a`` the softmax over the support set of cosine similarities
between embeddings; the loss is ``-log P(y | x)``, so the logits are ``log P``.

Full-context embeddings (``fce=True``, paper sec. 2.1.2 and appendix A.2): the support embeddings are
re-read by a bidirectional LSTM over the support sequence, ``g(x_i) = g'(x_i) + h_fwd_i + h_bwd_i``,
and each query embedding by an attention LSTM run for ``fce_steps`` steps,
``h_k, c_k = LSTM(f'(x), [h_{k-1} + r_{k-1}], c_{k-1})`` with ``h_k <- h_k + f'(x)`` and the read-out
``r_{k-1} = sum_i softmax(h_{k-1} . g(x_i)) g(x_i)``. As in most re-implementations, the hidden state and
read-out are summed rather than concatenated, so the LSTM keeps the embedding width D. The support
order matters for the bidirectional LSTM (episodes list support class by class).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metadl.algorithms.heads import HeadLearner, one_hot, register_log_scale
from metadl.models.base import Backbone


def matching_log_probs(
    query_z: Tensor, support_z: Tensor, support_onehot: Tensor, scale: Tensor | float
) -> Tensor:
    """``log sum_i softmax_i(scale * cos(q, s_i)) y_i``: (T, Q, D), (T, S, D), (T, S, N) -> (T, Q, N).

    Example:
        >>> s = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
        >>> matching_log_probs(torch.tensor([[[2.0, 0.0]]]), s, torch.eye(2)[None], 1.0).exp()
        tensor([[[0.7311, 0.2689]]])
    """
    cos = F.normalize(query_z, dim=-1) @ F.normalize(support_z, dim=-1).transpose(1, 2)  # (T, Q, S)
    probs = (scale * cos).softmax(-1) @ support_onehot  # (T, Q, N)
    return probs.clamp(min=torch.finfo(probs.dtype).tiny).log()


class FullContextEmbedding(nn.Module):
    """The FCE of Matching Networks: a bidirectional LSTM over the support set, an attention LSTM for queries."""

    def __init__(self, dim: int, steps: int) -> None:
        super().__init__()
        self.support_lstm = nn.LSTM(dim, dim, batch_first=True, bidirectional=True)
        self.query_cell = nn.LSTMCell(dim, dim)
        self.steps = steps

    def support(self, z: Tensor) -> Tensor:
        """``g``: (T, S, D) -> (T, S, D)."""
        out, _ = self.support_lstm(z)
        forward, backward = out.chunk(2, dim=-1)
        return z + forward + backward

    def query(self, z: Tensor, support_g: Tensor) -> Tensor:
        """``f``: (T, Q, D) queries attending to (T, S, D) support -> (T, Q, D)."""
        t, q, d = z.shape
        flat = z.reshape(t * q, d)
        h, c = torch.zeros_like(flat), torch.zeros_like(flat)
        for _ in range(self.steps):
            attention = (h.view(t, q, d) @ support_g.transpose(1, 2)).softmax(-1)  # (T, Q, S)
            readout = (attention @ support_g).reshape(t * q, d)
            h, c = self.query_cell(flat, (h + readout, c))
            h = h + flat
        return h.view(t, q, d)


class MatchingNet(HeadLearner):
    """Matching network over any backbone.

    Args:
        backbone: feature extractor.
        n_way: classes per episode (kept for the common constructor; an episode may have any number).
        scale: multiplies the cosine similarities before the softmax (1 in the paper);
            ``learn_scale`` meta-learns it.
        fce: use full-context embeddings; ``fce_steps`` attention-LSTM steps for the queries.

    Example:
        >>> from metadl.models import create_backbone
        >>> from metadl.tasks import TaskBatch
        >>> net = MatchingNet(backbone=create_backbone("mlp", in_features=4, hidden=[8]), n_way=3, fce=True)
        >>> b = TaskBatch(torch.randn(2, 6, 4), torch.arange(3).repeat(2).expand(2, 6), torch.randn(2, 3, 4), torch.arange(3).expand(2, 3))
        >>> net(b).logits.shape
        torch.Size([2, 3, 3])
    """

    log_scale: Tensor  # registered by register_log_scale: a parameter or a buffer

    def __init__(
        self,
        *,
        backbone: Backbone,
        n_way: int,
        scale: float = 1.0,
        learn_scale: bool = False,
        fce: bool = False,
        fce_steps: int = 3,
    ) -> None:
        super().__init__()
        if n_way < 2:
            raise ValueError(f"n_way must be >= 2, got {n_way}")
        if fce_steps < 1:
            raise ValueError(f"fce_steps must be >= 1, got {fce_steps}")
        self.backbone, self.n_way = backbone, n_way
        self.fce = FullContextEmbedding(backbone.out_features, fce_steps) if fce else None
        register_log_scale(self, scale, learn_scale)

    def fit_head(self, support_z: Tensor, support_y: Tensor, n_way: int) -> tuple[Tensor, Tensor]:
        if self.fce is not None:
            support_z = self.fce.support(support_z)
        return support_z, one_hot(support_y, n_way, support_z)

    def score_head(self, state: tuple[Tensor, Tensor], query_z: Tensor) -> Tensor:
        support_g, support_onehot = state
        if self.fce is not None:
            query_z = self.fce.query(query_z, support_g)
        return matching_log_probs(query_z, support_g, support_onehot, self.log_scale.exp())
