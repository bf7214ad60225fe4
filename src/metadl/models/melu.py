"""MeLU's network (Lee et al., KDD 2019): embeddings of user and item features, then decision layers.

Input ``x``: int64 ``(B, 2)`` rows ``(user index, item index)``. The network looks the features up in
tables it holds as buffers (categorical codes, with 0 for "unknown"; genres as multi-hot), embeds each
categorical column (``embed_dim`` each), embeds the genres as the mean of their embeddings and,
optionally (``item_ids=True``, for items seen in meta-training), the item's own id, concatenates all
of it and runs the **decision layers** (``self.decision``: Linear + ReLU per width in ``hidden``). Output
``(B, hidden[-1])``; a learner's linear head turns it into a rating. MeLU adapts only the decision
layers and the head per user (``metadl.algorithms.melu``); the embeddings are meta-learned.
User index ``n_users`` (one past the table) is a new user whose features are all unknown.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from metadl.data.ratings import Features
from metadl.models.base import Backbone


class MeLUNet(Backbone):
    """User and item feature embeddings -> decision MLP.

    Args:
        user_features, item_features: the tables (one row per user / item index).
        embed_dim: width of each feature embedding.
        hidden: widths of the decision layers.
        item_ids: also embed the item index (warm items; users are the cold side).

    Example:
        >>> f = Features.build(["a", "b"], {"a": {"sex": "F"}}, ["sex"])
        >>> items = Features.build(["x", "y", "z"], {}, [], {"x": ["Drama"]})
        >>> net = MeLUNet(user_features=f, item_features=items, embed_dim=4, hidden=[8, 6])
        >>> net(torch.tensor([[0, 0], [1, 2]])).shape
        torch.Size([2, 6])
    """

    input_kind = "tokens"
    user_codes: Tensor
    item_codes: Tensor
    item_tags: Tensor

    def __init__(
        self,
        *,
        user_features: Features,
        item_features: Features,
        embed_dim: int = 16,
        hidden: Sequence[int] = (64, 64),
        item_ids: bool = True,
    ) -> None:
        super().__init__()
        if embed_dim < 1 or not hidden or min(hidden) < 1:
            raise ValueError(
                f"MeLUNet needs embed_dim >= 1 and positive hidden widths, got {embed_dim}, {hidden}"
            )
        unknown_user = torch.zeros(
            1, user_features.codes.shape[1], dtype=torch.long
        )  # index n_users: a new user
        self.register_buffer("user_codes", torch.cat([user_features.codes, unknown_user]), persistent=False)
        self.register_buffer("item_codes", item_features.codes.clone(), persistent=False)
        tags = item_features.multi_hot
        self.register_buffer("item_tags", tags / tags.sum(1, keepdim=True).clamp(min=1), persistent=False)
        self.user_embeddings = nn.ModuleList(nn.Embedding(s, embed_dim) for s in user_features.sizes)
        self.item_embeddings = nn.ModuleList(nn.Embedding(s, embed_dim) for s in item_features.sizes)
        self.tag_embedding = nn.Linear(tags.shape[1], embed_dim, bias=False) if tags.shape[1] else None
        self.item_id_embedding = nn.Embedding(len(item_features.codes), embed_dim) if item_ids else None
        n_parts = len(self.user_embeddings) + len(self.item_embeddings)
        n_parts += (self.tag_embedding is not None) + (self.item_id_embedding is not None)
        if n_parts == 0:
            raise ValueError("MeLUNet has nothing to embed: give user or item features, or item_ids=True")
        layers: list[nn.Module] = []
        width = n_parts * embed_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.decision = nn.Sequential(*layers)
        self.out_features = width

    def embed(self, x: Tensor) -> Tensor:
        """``(B, 2)`` (user, item) indices -> ``(B, n_parts * embed_dim)`` concatenated embeddings."""
        user, item = x[:, 0], x[:, 1]
        u_codes, i_codes = self.user_codes[user], self.item_codes[item]
        parts = [e(u_codes[:, j]) for j, e in enumerate(self.user_embeddings)]
        parts += [e(i_codes[:, j]) for j, e in enumerate(self.item_embeddings)]
        if self.tag_embedding is not None:
            parts.append(self.tag_embedding(self.item_tags[item]))
        if self.item_id_embedding is not None:
            parts.append(self.item_id_embedding(item))
        return torch.cat(parts, dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        return self.decision(self.embed(x))
