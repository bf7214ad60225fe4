"""Classification heads of the detector: per-class heatmap logits from the embedding map.

One head, :class:`CosineHead`, serves all three recipes. Its logit for class ``c`` at a location with
embedding ``e`` is

    logit_c = scale * cos(e, w_c) + bias,

a cosine-similarity classifier (TFA, Wang et al. 2020; Gidaris & Komodakis 2018) with one learned
scale and one shared bias. Each class is scored by its own sigmoid (CenterNet's per-class heatmaps),
so a class's score depends on its own weight only:

- base training learns ``w_c`` for the base classes with the rest of the detector;
- TFA fine-tuning trains a head with base + novel rows on K shots while everything else is frozen;
- prototypes append rows ``w_c = mean of the support instances' embeddings`` with no gradient step
  (:meth:`CosineHead.with_classes`), which leaves every base-class logit exactly as it was.

Example:
    >>> head = CosineHead(n_classes=2, dim=4)
    >>> emb = torch.randn(1, 4, 3, 3)
    >>> bigger = head.with_classes(torch.randn(1, 4))
    >>> bigger(emb).shape, torch.equal(bigger(emb)[:, :2], head(emb))
    (torch.Size([1, 3, 3, 3]), True)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

PRIOR = 0.01  # initial probability of every class at every location (RetinaNet's focal-loss prior)


class CosineHead(nn.Module):
    """Cosine-similarity classifier over an embedding map (module docstring).

    ``scale`` starts at 10 and is learned; the bias starts at ``logit(PRIOR)``.
    """

    def __init__(self, *, n_classes: int, dim: int, scale: float = 10.0) -> None:
        super().__init__()
        if n_classes < 1 or dim < 1:
            raise ValueError(f"CosineHead needs n_classes >= 1 and dim >= 1, got {n_classes}, {dim}")
        self.weight = nn.Parameter(torch.randn(n_classes, dim) / math.sqrt(dim))
        self.log_scale = nn.Parameter(torch.tensor(math.log(scale)))
        self.bias = nn.Parameter(torch.tensor(math.log(PRIOR / (1 - PRIOR))))

    @property
    def n_classes(self) -> int:
        return self.weight.shape[0]

    def forward(self, emb: Tensor) -> Tensor:
        """``emb (B, D, H, W)`` -> logits ``(B, C, H, W)``."""
        cos = torch.einsum("bdhw,cd->bchw", F.normalize(emb, dim=1), F.normalize(self.weight, dim=1))
        return self.log_scale.exp() * cos + self.bias

    def with_classes(self, weights: Tensor) -> CosineHead:
        """A new head with rows ``weights (N, D)`` appended after this head's classes (no gradient)."""
        head = CosineHead(n_classes=self.n_classes + weights.shape[0], dim=self.weight.shape[1])
        with torch.no_grad():
            head.weight.copy_(torch.cat([self.weight, weights.to(self.weight)]))
            head.log_scale.copy_(self.log_scale)
            head.bias.copy_(self.bias)
        return head
